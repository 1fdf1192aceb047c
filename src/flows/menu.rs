//! What a reply asks of the caller, read the way Sinch plays it: the menus of a `runMenu` action
//! (which key does what), the digits a `conferenceDtmfOptions` collects, and what the caller hears.
//!
//! Used by the coverage walk ([`crate::flows::coverage`]) to enumerate every input a caller can give,
//! and by replay and shadowing ([`crate::flows::replay`]) to tell which key a caller pressed from the
//! menu that was sent and the value Sinch reported.

use serde_json::Value;

/// What a menu option does when its key is pressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionAction {
    /// `return(<value>)`: Sinch sends a PIE of type `return` with this value.
    Return(String),
    /// `menu(<id>)`: Sinch plays another menu of the same `runMenu` (no PIE).
    Menu(String),
    /// Anything else (Sinch answers it with an error).
    Other(String),
}

impl OptionAction {
    fn parse(text: &str) -> OptionAction {
        let t = text.trim();
        let inner = |prefix: &str| {
            t.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
                .map(str::to_owned)
        };
        if let Some(v) = inner("return(") {
            OptionAction::Return(v)
        } else if let Some(v) = inner("menu(") {
            OptionAction::Menu(v.trim().to_owned())
        } else {
            OptionAction::Other(t.to_owned())
        }
    }
}

/// One option of a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuOption {
    /// The key (`dtmf`), as a string (Sinch's own examples also use JSON numbers).
    pub dtmf: String,
    /// What pressing it does.
    pub action: OptionAction,
    /// Index of the option in its menu.
    pub index: usize,
}

/// One menu of a `runMenu` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// `id` (one must be `main`).
    pub id: String,
    /// Index of the menu in `menus`.
    pub index: usize,
    /// `maxDigits`: the menu collects digits (PIE type `sequence`).
    pub max_digits: Option<u64>,
    /// The options, in document order.
    pub options: Vec<MenuOption>,
    /// `mainPrompt`.
    pub prompt: Option<String>,
}

impl Menu {
    /// The first option with this key.
    pub fn option(&self, dtmf: &str) -> Option<&MenuOption> {
        self.options.iter().find(|o| o.dtmf == dtmf)
    }

    /// The key of the first option returning `value`.
    pub fn key_of_return(&self, value: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|o| o.action == OptionAction::Return(value.to_owned()))
            .map(|o| o.dtmf.as_str())
    }
}

/// A `runMenu` action as Sinch plays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMenu {
    /// The menus in document order.
    pub menus: Vec<Menu>,
    /// The id of the menu played first: `mainMenu` when given, else `main`.
    pub first: String,
}

fn lower_name(v: &Value) -> Option<String> {
    v.get("name")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl RunMenu {
    /// The menus of a reply whose action is `runMenu` (any casing); `None` for any other reply.
    pub fn of_reply(reply: &Value) -> Option<RunMenu> {
        let action = reply.get("action")?;
        if lower_name(action).as_deref() != Some("runmenu") {
            return None;
        }
        let menus = action
            .get("menus")
            .and_then(Value::as_array)
            .map(|menus| {
                menus
                    .iter()
                    .enumerate()
                    .map(|(index, m)| Menu {
                        id: m
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        index,
                        max_digits: m.get("maxDigits").and_then(Value::as_u64),
                        prompt: m
                            .get("mainPrompt")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        options: m
                            .get("options")
                            .and_then(Value::as_array)
                            .map(|opts| {
                                opts.iter()
                                    .enumerate()
                                    .filter_map(|(index, o)| {
                                        Some(MenuOption {
                                            dtmf: scalar_text(o.get("dtmf")?)?,
                                            action: OptionAction::parse(
                                                o.get("action").and_then(Value::as_str)?,
                                            ),
                                            index,
                                        })
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let first = action
            .get("mainMenu")
            .and_then(Value::as_str)
            .unwrap_or("main")
            .to_owned();
        Some(RunMenu { menus, first })
    }

    /// A menu by id.
    pub fn menu(&self, id: &str) -> Option<&Menu> {
        self.menus.iter().find(|m| m.id == id)
    }

    /// The menus a caller can reach: the first one, then every menu a `menu(...)` option of a
    /// reachable menu opens, in the order they are reached.
    pub fn reachable(&self) -> Vec<&Menu> {
        let mut out: Vec<&Menu> = Vec::new();
        let mut todo = vec![self.first.as_str()];
        while let Some(id) = todo.pop() {
            let Some(m) = self.menu(id) else { continue };
            if out.iter().any(|seen| seen.index == m.index) {
                continue;
            }
            out.push(m);
            for o in m.options.iter().rev() {
                if let OptionAction::Menu(next) = &o.action {
                    todo.push(next);
                }
            }
        }
        out
    }

    /// The key a caller pressed to make Sinch report `return(value)` from menu `menu_id`: the
    /// option of that menu (else of any menu) whose action is `return(value)`.
    pub fn key_of_return(&self, menu_id: Option<&str>, value: &str) -> Option<String> {
        menu_id
            .and_then(|id| self.menu(id))
            .and_then(|m| m.key_of_return(value))
            .or_else(|| self.menus.iter().find_map(|m| m.key_of_return(value)))
            .map(str::to_owned)
    }
}

/// Digits a `connectConf` with `conferenceDtmfOptions` collects (`maxDigits`, default 1); `None`
/// for any other reply.
pub fn conference_digits(reply: &Value) -> Option<u64> {
    let action = reply.get("action")?;
    if lower_name(action).as_deref() != Some("connectconf") {
        return None;
    }
    let opts = action.get("conferenceDtmfOptions")?;
    Some(opts.get("maxDigits").and_then(Value::as_u64).unwrap_or(1))
}

/// Whether Sinch sends a PIE after this reply (a `runMenu`, or a `connectConf` with
/// `conferenceDtmfOptions`).
pub fn expects_pie(reply: &Value) -> bool {
    RunMenu::of_reply(reply).is_some() || conference_digits(reply).is_some()
}

/// The texts of a prompt string: `#tts[...]` and `#ssml[...]` give their text, anything else
/// (a file, a URL) is shown as it is; parts are separated by `;`.
pub fn prompt_texts(prompt: &str) -> Vec<String> {
    prompt
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            for tag in ["#tts[", "#ssml[", "#href["] {
                if let Some(inner) = p.strip_prefix(tag).and_then(|r| r.strip_suffix(']')) {
                    return if tag == "#href[" {
                        format!("(plays {inner})")
                    } else {
                        inner.to_owned()
                    };
                }
            }
            format!("(plays {p})")
        })
        .collect()
}

/// What the caller hears from a reply, in order (instructions, then the action's prompt), and what
/// the action does then, in words.
pub fn hears(reply: &Value) -> (Vec<String>, String) {
    let mut out = instruction_texts(reply);
    let then = action_then(reply, &mut out);
    (out, then)
}

/// What the instructions play: `say` texts, `playFiles` prompts, DTMF sent.
fn instruction_texts(reply: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for i in reply
        .get("instructions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match lower_name(i).as_deref() {
            Some("say") => {
                if let Some(t) = i.get("text").and_then(Value::as_str) {
                    out.push(t.to_owned());
                }
            }
            Some("playfiles") => {
                for id in i
                    .get("ids")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    out.extend(prompt_texts(id));
                }
            }
            Some("senddtmf") => out.push(format!(
                "(DTMF {})",
                i.get("value").and_then(Value::as_str).unwrap_or("")
            )),
            _ => {}
        }
    }
    out
}

/// What the action does, in words (one arm per action: a table); the prompt it plays goes into
/// `heard`.
fn action_then(reply: &Value, heard: &mut Vec<String>) -> String {
    let action = reply.get("action").cloned().unwrap_or(Value::Null);
    let field = |k: &str| {
        action
            .get(k)
            .and_then(|v| v.as_str().map(str::to_owned).or_else(|| scalar_text(v)))
            .unwrap_or_default()
    };
    match lower_name(&action).as_deref() {
        Some("runmenu") => run_menu_then(reply, heard),
        Some("connectpstn") => format!("connects to {}", field("number")),
        Some("connectsip") => format!(
            "connects to SIP {}",
            action
                .pointer("/destination/endpoint")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        Some("connectmxp") => "connects to an app user".to_owned(),
        Some("connectconf") => format!("joins conference {}", field("conferenceId")),
        Some("connectstream") => "connects a media stream".to_owned(),
        Some("park") => {
            if let Some(p) = action.get("introPrompt").and_then(Value::as_str) {
                heard.extend(prompt_texts(p));
            }
            "is parked".to_owned()
        }
        Some("hangup") => "hangs up".to_owned(),
        Some("continue") => "continues".to_owned(),
        Some(other) => other.to_owned(),
        None => "(no action)".to_owned(),
    }
}

/// A runMenu: its first menu's prompt goes into `heard`; the words list the keys it offers.
fn run_menu_then(reply: &Value, heard: &mut Vec<String>) -> String {
    let menu = RunMenu::of_reply(reply);
    let first = menu.as_ref().and_then(|m| m.menu(&m.first));
    if let Some(p) = first.and_then(|m| m.prompt.as_deref()) {
        heard.extend(prompt_texts(p));
    }
    let keys = first
        .map(|m| {
            let mut parts: Vec<String> = m
                .options
                .iter()
                .map(|o| match &o.action {
                    OptionAction::Return(v) => format!("{}={v}", o.dtmf),
                    OptionAction::Menu(v) => format!("{}=menu {v}", o.dtmf),
                    OptionAction::Other(v) => format!("{}={v}", o.dtmf),
                })
                .collect();
            if let Some(n) = m.max_digits {
                parts.push(format!("up to {n} digits"));
            }
            parts.join(", ")
        })
        .unwrap_or_default();
    format!("waits for input ({keys})")
}

/// Whether a reply plays anything to the caller (a `say`, a `playFiles`, a menu prompt).
pub fn is_audible(reply: &Value) -> bool {
    let (heard, then) = hears(reply);
    !heard.is_empty() || then.starts_with("waits")
}

/// Whether a reply's action ends the call (`hangup`).
pub fn is_hangup(reply: &Value) -> bool {
    reply.get("action").and_then(lower_name).as_deref() == Some("hangup")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn menus_keys_and_prompts() {
        let reply = json!({"instructions": [{"name": "say", "text": "Hi"}],
            "action": {"name": "RunMenu", "menus": [
            {"id": "main", "mainPrompt": "#tts[Press 1];#href[http://x/a.wav]", "options": [
                {"dtmf": "1", "action": "return(sales)"},
                {"dtmf": 2, "action": "menu(more)"},
                {"dtmf": "3", "action": "menu(nowhere)"}]},
            {"id": "more", "maxDigits": 4, "options": [{"dtmf": "9", "action": "return(back)"}]},
            {"id": "orphan"}]}});
        let m = RunMenu::of_reply(&reply).unwrap();
        assert_eq!(m.first, "main");
        let ids: Vec<&str> = m.reachable().iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["main", "more"]);
        assert_eq!(m.key_of_return(Some("main"), "sales").as_deref(), Some("1"));
        assert_eq!(m.key_of_return(Some("x"), "back").as_deref(), Some("9"));
        assert_eq!(m.key_of_return(None, "none"), None);
        assert_eq!(
            m.menu("main").unwrap().option("2").unwrap().action,
            OptionAction::Menu("more".into())
        );
        let (heard, then) = hears(&reply);
        assert_eq!(heard, ["Hi", "Press 1", "(plays http://x/a.wav)"]);
        assert_eq!(
            then,
            "waits for input (1=sales, 2=menu more, 3=menu nowhere)"
        );
        assert!(expects_pie(&reply));
        assert!(is_audible(&reply));
        let hang = json!({"action": {"name": "hangup"}});
        assert!(!is_audible(&hang) && is_hangup(&hang) && !expects_pie(&hang));
        let conf = json!({"action": {"name": "connectConf", "conferenceId": "c",
            "conferenceDtmfOptions": {"mode": "detect", "maxDigits": 3}}});
        assert_eq!(conference_digits(&conf), Some(3));
        assert_eq!(hears(&conf).1, "joins conference c");
    }
}
