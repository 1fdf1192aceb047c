//! The top-level module graph has no cycle, and every edge goes down ARCHITECTURE.md's "Layers".
//!
//! This test reads `src/` the way the compiler finds it: from `src/lib.rs` through every `mod x;`
//! declaration that is not `#[cfg(test)]`. In each file it drops comments, string literals and
//! `#[cfg(test)]` items, then notes every path into another top-level module: `crate::a::…`,
//! grouped imports (`use crate::{a::b, c}`, each entry counted), and `super::…` paths that climb
//! to the crate root, also where a string attribute names them (`#[serde(with = "crate::a::b")]`). `super::` and `self::` paths within one top-level module are internal. An
//! edge `a -> b` means some non-test code in `a` names something in `b`; when the edges form a
//! cycle, the test fails and lists it, with the files that make each edge.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// from -> to -> the files of `from` that name `to`.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn the_top_level_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = crate_graph(&src);
    assert!(
        graph.len() > 10,
        "the module walk found too few modules: {graph:?}"
    );
    let report = cycles(&graph);
    assert!(
        report.is_empty(),
        "the top-level module graph has cycles:\n{report}"
    );
}

#[test]
fn every_module_sits_in_one_documented_layer_and_uses_none_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = crate_graph(&root.join("src"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap_or_default();
    let layers = documented_layers(&doc);
    assert!(
        !layers.is_empty(),
        "ARCHITECTURE.md has no \"## Layers\" list"
    );
    let report = layering(&graph, &layers);
    assert!(
        report.is_empty(),
        "the layers in ARCHITECTURE.md and the code disagree:\n{report}"
    );
}

#[test]
fn the_reader_counts_grouped_imports_and_crate_root_super_paths_but_not_test_code_or_comments() {
    let code = r##"
        use crate::{alpha::One, beta, gamma::{Two, Three}, self as me};
        use super::super::delta::Four; // from a file two levels deep: the crate root's `delta`
        use super::Sibling;
        use self::inner::Five;
        // crate::commented::Out
        /* crate::blocked::Out /* nested */ crate::still_blocked */
        const S: &str = "crate::quoted::Out is text";
        #[serde(deserialize_with = "crate::theta::read")]
        const R: &str = r#"crate::raw::Out"#;
        const C: char = '"';
        fn f<'a>(x: &'a str) -> crate::epsilon::Six { crate::zeta::seven(x) }
        #[cfg(test)]
        mod tests { use crate::testonly::X; fn g() { let _ = '}'; } }
        #[cfg(test)]
        use crate::testonly_use::Y;
        #[cfg(test)]
        fn helper() -> [u8; 2] { crate::testonly_fn::z() }
        mod inline { use super::super::super::eta::Eight; }
        pub(crate) struct Z;
        pub(in crate::own) struct W;
    "##;
    let found = references(
        &strip_test_items(&sanitize(code)),
        &["own".to_string(), "file".to_string()],
    );
    let expected: BTreeSet<String> = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "own",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn a_cycle_is_reported_with_the_files_that_make_it_and_a_layered_graph_is_not() {
    fn edge(graph: &mut Graph, a: &str, b: &str, file: &str) {
        graph
            .entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .insert(file.into());
    }
    let mut graph = Graph::new();
    edge(&mut graph, "app", "db", "app.rs");
    edge(&mut graph, "db", "config", "db/mod.rs");
    edge(&mut graph, "app", "config", "app.rs");
    assert_eq!(cycles(&graph), "");
    edge(&mut graph, "config", "app", "config.rs");
    let report = cycles(&graph);
    assert!(report.contains("app -> config -> app"), "{report}");
    assert!(report.contains("config -> app (config.rs)"), "{report}");
}

// ---- the walk over src/ -------------------------------------------------------------------

fn crate_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut files = Vec::new();
    collect_modules(&src.join("lib.rs"), src, &[], &mut files);
    let tops: BTreeSet<String> = files
        .iter()
        .filter_map(|(path, _)| path.first().cloned())
        .collect();
    for (module_path, file) in files {
        let Some(top) = module_path.first() else {
            continue;
        };
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let code = sanitize(&text);
        if code
            .split_whitespace()
            .collect::<String>()
            .contains("#![cfg(test)]")
        {
            continue;
        }
        let code = strip_test_items(&code);
        let rel = file
            .strip_prefix(src)
            .unwrap_or(&file)
            .display()
            .to_string();
        for target in references(&code, &module_path) {
            if &target != top && tops.contains(&target) {
                graph
                    .entry(top.clone())
                    .or_default()
                    .entry(target)
                    .or_default()
                    .insert(rel.clone());
            }
        }
        graph.entry(top.clone()).or_default();
    }
    graph
}

/// Every file of the crate with its module path (`["db", "store"]` for `src/db/store.rs`), found by
/// following the non-test `mod x;` declarations from `file`.
fn collect_modules(
    file: &Path,
    src: &Path,
    path: &[String],
    out: &mut Vec<(Vec<String>, PathBuf)>,
) {
    out.push((path.to_vec(), file.to_path_buf()));
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let code = strip_test_items(&sanitize(&text));
    let dir = if path.is_empty() || file.file_name().is_some_and(|n| n == "mod.rs") {
        file.parent().unwrap_or(src).to_path_buf()
    } else {
        file.with_extension("")
    };
    for window in tokenize(&code).windows(3) {
        let [Tok::Ident(kw), Tok::Ident(name), Tok::Punct(';')] = window else {
            continue;
        };
        if kw != "mod" {
            continue;
        }
        let flat = dir.join(format!("{name}.rs"));
        let nested = dir.join(name).join("mod.rs");
        let child = if flat.exists() { flat } else { nested };
        assert!(
            child.exists(),
            "`mod {name};` in {} has no file",
            file.display()
        );
        let mut child_path = path.to_vec();
        child_path.push(name.clone());
        collect_modules(&child, src, &child_path, out);
    }
}

// ---- reading one file ---------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
    /// `::`
    Path,
}

/// The top-level modules a file's code names, given the file's module path: `crate::a`, each
/// entry of `crate::{a, b::c}`, and `super::` paths that climb to the crate root. Inline
/// `mod x { … }` blocks count as one more level for `super`.
fn references(code: &str, module_path: &[String]) -> BTreeSet<String> {
    let tokens = tokenize(code);
    let mut found = BTreeSet::new();
    let mut depth = 0usize;
    // Inline modules open at these brace depths.
    let mut inline: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some(Tok::Ident(_)), Some(Tok::Punct('{'))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline.push(depth);
                }
            }
            Tok::Ident(start)
                if (start == "crate" || start == "super")
                    && tokens.get(i + 1) == Some(&Tok::Path) =>
            {
                let after_path = i > 0 && tokens[i - 1] == Tok::Path;
                if !after_path {
                    let mut j = i;
                    let mut climbs = 0usize;
                    let to_root = if start == "crate" {
                        j += 2;
                        true
                    } else {
                        while tokens.get(j) == Some(&Tok::Ident("super".into()))
                            && tokens.get(j + 1) == Some(&Tok::Path)
                        {
                            climbs += 1;
                            j += 2;
                        }
                        climbs >= module_path.len() + inline.len()
                    };
                    if to_root {
                        match tokens.get(j) {
                            Some(Tok::Ident(name)) => {
                                found.insert(name.clone());
                            }
                            Some(Tok::Punct('{')) => found.extend(group_heads(&tokens[j..])),
                            _ => {}
                        }
                    }
                    i = j;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The first name of each entry of a `{ … }` import group that starts at `tokens[0]`.
fn group_heads(tokens: &[Tok]) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut expect_head = false;
    for tok in tokens {
        match tok {
            Tok::Punct('{') => {
                depth += 1;
                expect_head = depth == 1;
            }
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Tok::Punct(',') if depth == 1 => expect_head = true,
            Tok::Ident(name) if expect_head => {
                if name != "self" {
                    heads.push(name.clone());
                }
                expect_head = false;
            }
            _ => expect_head = false,
        }
    }
    heads
}

fn tokenize(code: &str) -> Vec<Tok> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Tok::Ident(chars[start..i].iter().collect()));
            continue;
        }
        if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push(Tok::Path);
            i += 2;
            continue;
        }
        if !c.is_whitespace() {
            tokens.push(Tok::Punct(c));
        }
        i += 1;
    }
    tokens
}

/// The code with comments removed and the insides of string and character literals blanked, so
/// that neither is read as code.
fn sanitize(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let mut nesting = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        nesting += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        nesting -= 1;
                        i += 2;
                        if nesting == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            'r' | 'b' if raw_string_start(&c, i).is_some() => {
                let (hashes, body) = raw_string_start(&c, i).unwrap_or_default();
                i = body;
                while i < c.len() {
                    if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
                out.push_str("\"\"");
            }
            '"' => {
                let start = i + 1;
                i += 1;
                while i < c.len() && c[i] != '"' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                let text: String = c[start..i.min(c.len())].iter().collect();
                i += 1;
                // A string that is nothing but a path names code (`#[serde(with = "crate::a::b")]`).
                if is_path(&text) {
                    out.push_str(&text);
                } else {
                    out.push_str("\"\"");
                }
            }
            '\'' => {
                // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
                if c.get(i + 1) == Some(&'\\') {
                    // Past the backslash and the escaped character, then to the closing quote.
                    i += 3;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                    out.push_str("' '");
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                    out.push_str("' '");
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// Whether a string literal's text is a path into the crate (`crate::a::b`, `super::x`).
fn is_path(text: &str) -> bool {
    let mut parts = text.split("::");
    matches!(parts.next(), Some("crate" | "super" | "self"))
        && text.contains("::")
        && parts.all(|p| !p.is_empty() && p.chars().all(|ch| ch.is_alphanumeric() || ch == '_'))
}

/// At `c[i]`, a raw string (`r"`, `r#"`, `br#"`) or byte string (`b"`) start: its number of `#`
/// and the index of its first character.
fn raw_string_start(c: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    // A byte string or character (b"…", b'…') is read by the plain string and character rules.
    let mut j = i;
    if c.get(j) == Some(&'b') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some((hashes, j + 1))
}

/// The code without the items marked `#[cfg(test)]` (a `mod tests { … }`, a `use`, a function).
fn strip_test_items(code: &str) -> String {
    let c: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < c.len() {
        if c[i] == '#' {
            if let Some((end, body)) = attribute(&c, i) {
                if body == "cfg(test)" {
                    i = item_end(&c, end);
                    continue;
                }
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// An outer attribute `#[…]` at `c[i]`: the index after it and its text without whitespace.
fn attribute(c: &[char], i: usize) -> Option<(usize, String)> {
    let mut j = i + 1;
    while c.get(j).is_some_and(|ch| ch.is_whitespace()) {
        j += 1;
    }
    if c.get(j) != Some(&'[') {
        return None;
    }
    let mut depth = 0;
    let start = j + 1;
    while j < c.len() {
        match c[j] {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    let body: String = c[start..j]
                        .iter()
                        .filter(|ch| !ch.is_whitespace())
                        .collect();
                    return Some((j + 1, body));
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// The index after the item that starts at `c[i]` (after its attributes): the end of its `{ … }`
/// body or its `;`, whichever closes it.
fn item_end(c: &[char], mut i: usize) -> usize {
    let mut nesting = 0i32;
    while i < c.len() {
        match c[i] {
            '#' if nesting == 0 => {
                if let Some((end, _)) = attribute(c, i) {
                    i = end;
                    continue;
                }
            }
            '(' | '[' => nesting += 1,
            ')' | ']' => nesting -= 1,
            ';' if nesting == 0 => return i + 1,
            '{' if nesting == 0 => {
                let mut depth = 0;
                while i < c.len() {
                    match c[i] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                return i + 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

// ---- layers -------------------------------------------------------------------------------

/// The layers of ARCHITECTURE.md's "## Layers" section, lowest first: each numbered item's
/// backticked names before its " — " explanation.
fn documented_layers(doc: &str) -> Vec<BTreeSet<String>> {
    let Some(start) = doc.find("\n## Layers\n") else {
        return Vec::new();
    };
    let section = &doc[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut items: Vec<String> = Vec::new();
    for line in section.lines() {
        let numbered = line
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if numbered {
            items.push(line.to_string());
        } else if line.starts_with("   ") && !items.is_empty() {
            if let Some(last) = items.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else if !line.trim().is_empty() && !items.is_empty() {
            break;
        }
    }
    items
        .iter()
        .map(|item| {
            let names = item.split(" — ").next().unwrap_or_default();
            names
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// Modules in no layer or in two, layers naming no module, and edges that go up a layer.
fn layering(graph: &Graph, layers: &[BTreeSet<String>]) -> String {
    let mut report = String::new();
    let mut layer_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for name in layer {
            if let Some(other) = layer_of.insert(name, i) {
                let _ = writeln!(
                    report,
                    "  `{name}` is in layers {} and {}",
                    other + 1,
                    i + 1
                );
            }
            if !graph.contains_key(name) {
                let _ = writeln!(
                    report,
                    "  layer {} names `{name}`, which is no top-level module",
                    i + 1
                );
            }
        }
    }
    for (from, edges) in graph {
        let Some(&low) = layer_of.get(from.as_str()) else {
            let _ = writeln!(
                report,
                "  `{from}` is in no layer: add it to one in ARCHITECTURE.md"
            );
            continue;
        };
        for (to, files) in edges {
            if let Some(&high) = layer_of.get(to.as_str()).filter(|&&h| h > low) {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                let _ = writeln!(
                    report,
                    "  {from} (layer {}) -> {to} (layer {}) goes up ({})",
                    low + 1,
                    high + 1,
                    files.join(", ")
                );
            }
        }
    }
    report
}

#[test]
fn the_layers_are_read_from_the_list_and_an_upward_edge_is_reported() {
    let doc = "# A\n\n## Layers\n\nText with `x`.\n\n1. **Low**: `db` — below `app`.\n2. **High**: `app`,\n   `http` — top.\n\nAfter.\n\n## Next\n3. `no`\n";
    let layers = documented_layers(doc);
    let names = |l: &BTreeSet<String>| l.iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        layers.iter().map(names).collect::<Vec<_>>(),
        vec![vec!["db"], vec!["app", "http"]]
    );
    let mut graph = Graph::new();
    graph
        .entry("app".into())
        .or_default()
        .entry("db".into())
        .or_default()
        .insert("app.rs".into());
    graph.entry("http".into()).or_default();
    graph.entry("db".into()).or_default();
    assert_eq!(layering(&graph, &layers), "");
    graph
        .entry("db".into())
        .or_default()
        .entry("http".into())
        .or_default()
        .insert("db/mod.rs".into());
    graph.entry("cli".into()).or_default();
    let report = layering(&graph, &layers);
    assert!(
        report.contains("db (layer 1) -> http (layer 2) goes up (db/mod.rs)"),
        "{report}"
    );
    assert!(report.contains("`cli` is in no layer"), "{report}");
}

// ---- cycles -------------------------------------------------------------------------------

/// Each strongly connected component of more than one module, with one shortest cycle through it
/// and its edges (with the files that make them). Empty when the graph has no cycle.
fn cycles(graph: &Graph) -> String {
    let mut report = String::new();
    for component in components(graph) {
        if component.len() < 2 {
            continue;
        }
        let first = component.iter().next().cloned().unwrap_or_default();
        let cycle = shortest_cycle(graph, &first, &component);
        let _ = writeln!(
            report,
            "modules in one cycle: {}",
            component.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        let _ = writeln!(report, "  for example: {}", cycle.join(" -> "));
        for from in &component {
            for (to, files) in graph.get(from).into_iter().flatten() {
                if component.contains(to) {
                    let files: Vec<&str> = files.iter().map(String::as_str).collect();
                    let _ = writeln!(report, "  {from} -> {to} ({})", files.join(", "));
                }
            }
        }
    }
    report
}

/// Tarjan's strongly connected components.
fn components(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// A shortest path from `start` back to itself inside `component` (breadth first).
fn shortest_cycle(graph: &Graph, start: &str, component: &BTreeSet<String>) -> Vec<String> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flat_map(|m| m.keys()) {
            if !component.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.to_string()];
                let mut at = v;
                while at != start {
                    path.push(at.to_string());
                    at = parent[at];
                }
                path.push(start.to_string());
                path.reverse();
                return path;
            }
            if !parent.contains_key(w.as_str()) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start.to_string()]
}
