//! `svamlgate flow`: whole-call coverage of a flow file, offline (for CI), and replay of stored calls
//! against a version through a running svamlgate.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::stdout::{out, outln};
use super::{admin_request, print_json, read_input, AdminClientArgs};
use crate::flows::coverage;
use crate::flows::model::FlowDoc;
use crate::svaml::{Limits, Mode, Validator};

/// `svamlgate flow …`.
#[derive(Debug, Args)]
pub(super) struct FlowArgs {
    #[command(subcommand)]
    command: FlowCommand,
}

#[derive(Debug, Subcommand)]
enum FlowCommand {
    /// Walk every path a caller can take through a flow file and gate every reply; print the
    /// report. Exit 0 when it has no error (warnings alone included), 1 when it has one, 2 when the
    /// file cannot be read or is not a flow document.
    Check(CheckArgs),
    /// Replay stored calls of a flow against one of its versions through a running svamlgate
    /// (POST /admin/flows/{id}/versions/{version}/replay). Exit 0 when every call takes the same
    /// path and no reply would be refused, 1 otherwise, 2 on an error.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Canonical form: spellings other than the one Sinch documents today are errors too.
    #[arg(long)]
    strict: bool,
    /// Longest `say` text, in characters.
    #[arg(long, env = "SVAMLGATE_MAX_SAY_CHARS", default_value_t = crate::svaml::DEFAULT_MAX_SAY_CHARS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    max_say_chars: u32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Flow document to read, or - for standard input.
    file: String,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    #[command(flatten)]
    admin: AdminClientArgs,
    /// Flow id.
    #[arg(long)]
    flow: i64,
    /// The candidate version.
    #[arg(long)]
    version: i32,
    /// The latest N calls (default 100, at most 500).
    #[arg(long)]
    last: Option<i64>,
    /// A call id (repeat for several).
    #[arg(long = "callid")]
    callids: Vec<String>,
    /// Calls that started at or after this (ISO-8601).
    #[arg(long)]
    since: Option<String>,
    /// Calls that started before this (ISO-8601).
    #[arg(long)]
    until: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: FlowArgs) -> ExitCode {
    match args.command {
        FlowCommand::Check(a) => check(a),
        FlowCommand::Replay(a) => super::exit_with(super::run_async_code(replay(a))),
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let bytes = match read_input(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("svamlgate: cannot read {}: {e}", args.file);
            return ExitCode::from(2);
        }
    };
    let flow = match FlowDoc::from_json(&bytes) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("svamlgate: {}: {e}", args.file);
            return ExitCode::from(2);
        }
    };
    let validator = match Validator::with_limits(Limits {
        max_say_chars: args.max_say_chars as usize,
    }) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("svamlgate: {e}");
            return ExitCode::from(2);
        }
    };
    let mode = if args.strict {
        Mode::Strict
    } else {
        Mode::Normal
    };
    let report = coverage::coverage(&validator, mode, &flow);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(t) => outln!("{t}"),
            Err(e) => {
                eprintln!("svamlgate: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        out!("{}", coverage::render_text(&report));
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn replay(args: ReplayArgs) -> anyhow::Result<u8> {
    let mut body = serde_json::json!({});
    if let Some(n) = args.last {
        body["last"] = n.into();
    }
    if !args.callids.is_empty() {
        body["callids"] = args.callids.clone().into();
    }
    if let Some(s) = &args.since {
        body["since"] = s.clone().into();
    }
    if let Some(u) = &args.until {
        body["until"] = u.clone().into();
    }
    let (status, answer) = admin_request(
        &args.admin,
        awc::http::Method::POST,
        &format!(
            "/admin/flows/{}/versions/{}/replay",
            args.flow, args.version
        ),
        Some(&body),
        None,
    )
    .await?;
    if status != 200 {
        eprintln!(
            "svamlgate: HTTP {status} {}: {}",
            answer["errorCode"],
            answer["message"].as_str().unwrap_or("")
        );
        return Ok(2);
    }
    if args.json {
        print_json(&answer);
    } else {
        out!("{}", render_replay(&answer));
    }
    let same_paths = answer["pathDifferent"] == 0 && answer["refused"] == 0;
    Ok(if same_paths { 0 } else { 1 })
}

fn short(v: &serde_json::Value) -> String {
    let (heard, then) = crate::flows::menu::hears(v);
    let words = heard
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(" ");
    if words.is_empty() {
        then
    } else {
        format!("{words} → {then}")
    }
}

/// A call's first difference: the event, the key, and both nodes and replies side by side.
fn write_difference(
    out: &mut String,
    callid: &str,
    d: &serde_json::Map<String, serde_json::Value>,
) {
    use std::fmt::Write as _;
    let what = if d.get("pathDiffers") == Some(&serde_json::Value::Bool(true)) {
        "other path"
    } else {
        "other reply"
    };
    let input = d
        .get("input")
        .map(|i| {
            format!(
                " after key {} (recorded {}, now {})",
                i["key"].as_str().unwrap_or("?"),
                i["recorded"]["value"].as_str().unwrap_or(""),
                i["candidate"]["value"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {what:<11} {callid}: event {} ({}){input}",
        d["index"],
        d["event"].as_str().unwrap_or("")
    );
    for side in ["recorded", "candidate"] {
        let _ = writeln!(
            out,
            "              {side:<9} {}: {}",
            d[side]["node"].as_str().unwrap_or("-"),
            short(&d[side]["reply"])
        );
    }
}

/// The replay report in words: one line per call, the first difference side by side.
pub fn render_replay(r: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Flow {} version {}: {} call(s) replayed: {} the same, {} on another path, {} on the same path with other replies, {} with an input that has no meaning, {} with a reply the gate would refuse",
        r["flowId"], r["version"], r["calls"], r["same"], r["pathDifferent"], r["repliesDifferent"], r["meaningless"], r["refused"]
    );
    if r["shippingLagRecords"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            out,
            "({} record(s) not yet in PostgreSQL: the latest calls may be missing)",
            r["shippingLagRecords"]
        );
    }
    for c in r["items"].as_array().into_iter().flatten() {
        let callid = c["callid"].as_str().unwrap_or("?");
        if c["same"] == true {
            let _ = writeln!(out, "  {:<11} {callid} ({} events)", "same", c["events"]);
            continue;
        }
        let d = if c["firstPathDifference"].is_object() {
            c["firstPathDifference"].as_object()
        } else {
            c["firstDifference"].as_object()
        };
        if let Some(d) = d {
            write_difference(&mut out, callid, d);
        }
        if let Some(m) = c["meaninglessInput"].as_object() {
            let _ = writeln!(
                out,
                "  {:<11} {callid}: event {}: {}",
                "no meaning",
                m["index"],
                m["reason"].as_str().unwrap_or("")
            );
        }
        for f in c["refused"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {:<11} {callid}: event {} node {}: the gate would refuse the reply",
                "refused",
                f["index"],
                f["node"].as_str().unwrap_or("-")
            );
        }
    }
    out
}
