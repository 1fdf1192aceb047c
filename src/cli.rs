//! The command line: `serve` (the default), `migrate`, `prune`, `validate`, `sign`, and the admin API clients
//! `callout` (a TTS call through a running svamlgate) and `diagnose` (Sinch's troubleshooting
//! checklist for one call).

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{DatabaseArgs, LogFormat, Secret, ServeArgs};
use crate::db::store::Store;
use crate::db::Database;
use crate::events::EventKind;
use crate::signature::{self, AppCredential};
use crate::svaml::{Limits, Mode, Target, Validator};

/// Sinch Voice callback gateway.
#[derive(Debug, Parser)]
#[command(name = "svamlgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve callbacks and the admin API (the default).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Validate an SVAML document for an event; exit 0 when there is no error (warnings alone
    /// included), 1 when there are errors, 2 when the input is unreadable or not JSON.
    Validate(ValidateArgs),
    /// Sign a callback body as Sinch does; print the headers, or send it and print the reply.
    Sign(SignArgs),
    /// Place a text-to-speech call through a running svamlgate (POST /admin/callouts); exit 0 placed,
    /// 1 refused (the error envelope is printed), 2 svamlgate unreachable.
    Callout(CalloutArgs),
    /// Walk Sinch's troubleshooting checklist for a call id (or a callout's reference) through a running
    /// svamlgate; exit 0 no failing step, 1 a step failed, 2 not found or svamlgate unreachable.
    Diagnose(DiagnoseArgs),
    /// Check the configuration end to end without starting the service: one line per check (ok,
    /// warning or error, with the fix); exit 1 on any error. `--online` also asks Sinch whether it
    /// accepts the credentials.
    Doctor(crate::doctor::DoctorArgs),
    /// Flows: `check` walks every path of a flow file (coverage, for CI); `replay` re-drives stored
    /// calls against a version through a running svamlgate.
    Flow(flow::FlowArgs),
    /// Delete and mask old records once (retention and redaction; the service does it hourly when
    /// SVAMLGATE_RETENTION_DAYS or SVAMLGATE_REDACT_AFTER_DAYS is set). Without --before or
    /// --redact-before, those settings give the times.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
struct PruneArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Delete records older than this: RFC 3339 (2026-11-01T00:00:00Z) or an age (30d, 12h).
    #[arg(long)]
    before: Option<String>,
    /// Mask phone numbers in records older than this: RFC 3339 or an age (7d).
    #[arg(long)]
    redact_before: Option<String>,
    /// Days records are kept (used when --before is not given).
    #[arg(long, env = "SVAMLGATE_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    retention_days: Option<u32>,
    /// Days after which phone numbers are masked (used when --redact-before is not given).
    #[arg(long, env = "SVAMLGATE_REDACT_AFTER_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    redact_after_days: Option<u32>,
    /// A call counts as in progress (and is kept) this long after its ICE or ACE without a DICE.
    #[arg(long, env = "SINCH_CALL_MAX_AGE_SECS", default_value_t = 14_400)]
    call_max_age_secs: u64,
}

mod flow;
mod stdout;

use stdout::{out, outln};

/// How the CLI reaches a running svamlgate's admin API.
#[derive(Debug, Args)]
struct AdminClientArgs {
    /// Base URL of the running svamlgate.
    #[arg(long, env = "SVAMLGATE_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Admin token.
    #[arg(long, env = "SVAMLGATE_ADMIN_TOKEN", hide_env_values = true)]
    token: Secret,
}

#[derive(Debug, Args)]
struct CalloutArgs {
    #[command(flatten)]
    admin: AdminClientArgs,
    /// Number to call, E.164 (e.g. +14045005000).
    #[arg(long)]
    to: String,
    /// Text to speak.
    #[arg(long)]
    text: String,
    /// Caller id shown, E.164.
    #[arg(long)]
    cli: Option<String>,
    /// TTS locale.
    #[arg(long, default_value = "en-US")]
    locale: String,
    /// Ask Sinch for an ACE when the call is answered (svamlgate then replies to it like any ACE).
    #[arg(long)]
    enable_ace: bool,
    /// Do not ask for the DICE (svamlgate then cannot tell when the call ends).
    #[arg(long)]
    no_dice: bool,
    /// Free text passed to the callbacks (custom).
    #[arg(long)]
    custom: Option<String>,
    /// Idempotency-Key: running the command again with the same key places no second call.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Print the answer as JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DiagnoseArgs {
    #[command(flatten)]
    admin: AdminClientArgs,
    /// Print the diagnosis as JSON.
    #[arg(long)]
    json: bool,
    /// Call id, or the reference of a callout (for callouts refused before Sinch gave a call id).
    id: String,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Event the document replies to: ice, ace, pie, or manage (the Calls API manage-call body).
    /// With --callback: the event the document is (ice, ace, dice, pie or notify).
    #[arg(long)]
    event: String,
    /// The document is a callback event as Sinch sends it, not a reply: check it against the
    /// event's lenient schema and show what svamlgate's reader makes of it (warnings for fields it
    /// ignores or coerces). For payloads a test, a load generator or a customer's app will send.
    #[arg(long, conflicts_with = "strict")]
    callback: bool,
    /// Canonical form (for CI): spellings other than the one Sinch documents today are errors too.
    #[arg(long)]
    strict: bool,
    /// Longest `say` text, in characters (Sinch's default 600; support can raise it per account).
    #[arg(long, env = "SVAMLGATE_MAX_SAY_CHARS", default_value_t = crate::svaml::DEFAULT_MAX_SAY_CHARS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    max_say_chars: u32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// File to read, or - for standard input.
    file: String,
}

#[derive(Debug, Args)]
struct SignArgs {
    /// Application key.
    #[arg(long, env = "SINCH_APPLICATION_KEY")]
    key: String,
    /// Application secret (base64).
    #[arg(long, env = "SINCH_APPLICATION_SECRET", hide_env_values = true)]
    secret: Secret,
    /// Path Sinch signs (the callback path of the URL).
    #[arg(long, default_value = "/sinch/callback")]
    path: String,
    /// x-timestamp to sign (default: now).
    #[arg(long)]
    timestamp: Option<String>,
    /// content-type to sign and send.
    #[arg(long, default_value = "application/json; charset=utf-8")]
    content_type: String,
    /// Send the signed request to this base URL (e.g. http://127.0.0.1:8080) and print the reply.
    #[arg(long)]
    send: Option<String>,
    /// Body file, or - for standard input.
    file: String,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| {
        // A bare `svamlgate` is `svamlgate serve`, with settings from the environment.
        // A bad environment value is reported exactly as for `svamlgate serve`.
        match Cli::try_parse_from(["svamlgate", "serve"]) {
            Ok(Cli { command: Some(c) }) => c,
            Ok(Cli { command: None }) => unreachable_serve(),
            Err(e) => e.exit(),
        }
    });
    match command {
        Command::Serve(args) => report(run_async(serve(*args))),
        Command::Migrate(args) => report(run_async(migrate(args))),
        Command::Validate(args) => validate(args),
        Command::Sign(args) => report(run_async(sign(args))),
        Command::Callout(args) => exit_with(run_async_code(callout(args))),
        Command::Diagnose(args) => exit_with(run_async_code(diagnose(args))),
        Command::Doctor(args) => exit_with(run_async_code(crate::doctor::main(args))),
        Command::Flow(args) => flow::run(args),
        Command::Prune(args) => report(run_async(prune(args))),
    }
}

/// `try_parse_from(["svamlgate", "serve"])` always yields a command; this is clap's own error path
/// should that ever change.
fn unreachable_serve() -> Command {
    clap::Error::raw(
        clap::error::ErrorKind::MissingSubcommand,
        "expected the serve command\n",
    )
    .exit()
}

fn run_async<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(f)
}

fn run_async_code<F: std::future::Future<Output = anyhow::Result<u8>>>(f: F) -> anyhow::Result<u8> {
    actix_web::rt::System::new().block_on(f)
}

/// Exit code from a command that decides it; an error is reported and exits 2.
fn exit_with(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("svamlgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Sends one admin request; returns the status and the JSON answer.
async fn admin_request(
    admin: &AdminClientArgs,
    method: awc::http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
    idempotency_key: Option<&str>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let url = format!("{}{path}", admin.server.trim_end_matches('/'));
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .finish();
    let mut req = client
        .request(method, &url)
        .insert_header(("authorization", format!("Bearer {}", admin.token.expose())));
    if let Some(key) = idempotency_key {
        req = req.insert_header(("idempotency-key", key));
    }
    let sent = match body {
        Some(b) => req.send_json(b).await,
        None => req.send().await,
    };
    let mut res = sent.map_err(|e| anyhow::anyhow!("reaching svamlgate at {url}: {e}"))?;
    let bytes = res
        .body()
        .limit(4 << 20)
        .await
        .map_err(|e| anyhow::anyhow!("reading svamlgate's answer: {e}"))?;
    let json = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "svamlgate answered HTTP {} with a body that is not JSON",
            res.status()
        )
    })?;
    Ok((res.status().as_u16(), json))
}

fn print_json(v: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

async fn callout(args: CalloutArgs) -> anyhow::Result<u8> {
    let mut tts = serde_json::json!({
        "destination": {"type": "number", "endpoint": args.to},
        "locale": args.locale,
        "text": args.text,
        "enableDice": !args.no_dice,
    });
    if args.enable_ace {
        tts["enableAce"] = serde_json::json!(true);
    }
    if let Some(cli) = args.cli {
        tts["cli"] = serde_json::json!(cli);
    }
    if let Some(custom) = args.custom {
        tts["custom"] = serde_json::json!(custom);
    }
    let body = serde_json::json!({"method": "ttsCallout", "ttsCallout": tts});
    let (status, answer) = admin_request(
        &args.admin,
        awc::http::Method::POST,
        "/admin/callouts",
        Some(&body),
        args.idempotency_key.as_deref(),
    )
    .await?;
    if args.json {
        print_json(&answer);
    } else if (200..300).contains(&status) {
        outln!(
            "{}: callId {} (reference {})",
            if answer["replayed"] == true {
                "already placed with this idempotency key"
            } else {
                "call placed"
            },
            answer["callId"].as_str().unwrap_or("?"),
            answer["reference"].as_str().unwrap_or("?")
        );
        for w in answer["warnings"].as_array().into_iter().flatten() {
            outln!("warning: {}", w.as_str().unwrap_or_default());
        }
    } else {
        eprintln!(
            "callout refused: HTTP {status} {} {}: {}",
            answer["errorCode"],
            answer["status"].as_str().unwrap_or(""),
            answer["message"].as_str().unwrap_or("")
        );
        eprintln!(
            "reference {} (svamlgate diagnose {} walks the checklist)",
            answer["reference"].as_str().unwrap_or("?"),
            answer["reference"].as_str().unwrap_or("?")
        );
    }
    Ok(if (200..300).contains(&status) { 0 } else { 1 })
}

async fn diagnose(args: DiagnoseArgs) -> anyhow::Result<u8> {
    crate::sinch_api::checks::check_id("id", &args.id)
        .map_err(|r| anyhow::anyhow!("{}", r.message))?;
    let (status, answer) = admin_request(
        &args.admin,
        awc::http::Method::GET,
        &format!("/admin/calls/{}/diagnosis", args.id),
        None,
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
        out!("{}", crate::diagnosis::render_text(&answer));
    }
    Ok(if answer["failingStep"].is_string() {
        1
    } else {
        0
    })
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("svamlgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    crate::telemetry::init(args.log_format);
    let validator =
        Arc::new(Validator::with_limits(args.limits()).context("compiling the SVAML schemas")?);
    let db = Database::connect(&args.db).await?;
    // PostgreSQL away at start does not stop svamlgate: callers are answered from the journal and
    // the local snapshot of routes and flows, and the shipper applies the migrations once it is back.
    match tokio::time::timeout(Duration::from_secs(10), db.migrate()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(
            error = format!("{e:#}"),
            "could not apply the migrations now; retried before shipping"
        ),
        Err(_) => tracing::error!(
            "PostgreSQL did not answer within 10 s; migrations are retried before shipping"
        ),
    }
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let grace = Duration::from_secs(args.shutdown_timeout_secs);
    let callback_path = args.callback_path.clone();
    let store = Store::new(db.pool.clone());
    let app = match crate::http::build(args, store, validator, db.cluster_health(), listener).await
    {
        Ok(app) => app,
        Err(e) => {
            db.shutdown().await;
            return Err(e);
        }
    };
    let (addr, state, server) = (app.addr, app.state, app.server);
    tracing::info!(%addr, callback = %callback_path, "svamlgate listening");
    if let Some(admin) = app.admin_addr {
        tracing::info!(%admin, "operator listener (admin API, console, metrics); the public listener answers only the callback path and /healthz");
    }
    // Stops accepting on SIGINT/SIGTERM and lets in-flight callbacks finish (actix-web), then ships
    // what PostgreSQL takes within the grace period.
    let result = server.await;
    tracing::info!("shutting down: shipping the journal");
    state.shutdown(grace).await;
    db.shutdown().await;
    result.context("HTTP server")
}

async fn migrate(args: DatabaseArgs) -> anyhow::Result<()> {
    crate::telemetry::init(LogFormat::Text);
    let db = Database::connect(&args).await?;
    let result = db.migrate().await;
    db.shutdown().await;
    result?;
    outln!("migrations applied");
    Ok(())
}

async fn prune(args: PruneArgs) -> anyhow::Result<()> {
    crate::telemetry::init(LogFormat::Text);
    let now = time::OffsetDateTime::now_utc();
    let at = |given: &Option<String>, days: Option<u32>| -> anyhow::Result<_> {
        Ok(match (given, days) {
            (Some(t), _) => Some(crate::retention::parse_time(t, now)?),
            (None, Some(d)) => Some(now - time::Duration::days(i64::from(d))),
            (None, None) => None,
        })
    };
    let delete_before = at(&args.before, args.retention_days)?;
    let redact_before = at(&args.redact_before, args.redact_after_days)?;
    if delete_before.is_none() && redact_before.is_none() {
        anyhow::bail!(
            "nothing to do: give --before and/or --redact-before (or set SVAMLGATE_RETENTION_DAYS / SVAMLGATE_REDACT_AFTER_DAYS)"
        );
    }
    let db = Database::connect(&args.db).await?;
    let result = async {
        db.migrate().await?;
        let metrics = crate::metrics::Metrics::new();
        let max_age = Duration::from_secs(args.call_max_age_secs);
        crate::retention::run_once(&db.pool, delete_before, redact_before, max_age, &metrics)
            .await
            .context("pruning")
    }
    .await;
    db.shutdown().await;
    let (deleted, redacted) = result?;
    let line =
        |what: &str, before: Option<time::OffsetDateTime>, counts: &crate::retention::Counts| {
            if let Some(b) = before {
                let total: u64 = counts.values().sum();
                let parts: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
                outln!(
                    "{what} before {b}: {total} rows ({})",
                    if parts.is_empty() {
                        "none".to_owned()
                    } else {
                        parts.join(", ")
                    }
                );
            }
        };
    line("deleted", delete_before, &deleted);
    line("masked", redact_before, &redacted);
    Ok(())
}

fn read_input(file: &str) -> std::io::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(PathBuf::from(file))
    }
}

fn validate(args: ValidateArgs) -> ExitCode {
    let bytes = match read_input(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("svamlgate: cannot read {}: {e}", args.file);
            return ExitCode::from(2);
        }
    };
    let doc: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("svamlgate: {} is not JSON: {e}", args.file);
            return ExitCode::from(2);
        }
    };
    if args.callback {
        return validate_callback(&args, doc);
    }
    let target = match args.event.parse::<Target>() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("svamlgate: {e}");
            return ExitCode::from(2);
        }
    };
    let limits = Limits {
        max_say_chars: args.max_say_chars as usize,
    };
    let validator = match Validator::with_limits(limits) {
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
    let report = validator.check(target, &doc, mode);
    let text = if args.json {
        serde_json::to_string_pretty(&report)
    } else {
        Ok(report.to_string())
    };
    print_report(&report, text)
}

/// Prints a report (as JSON or text) and gives the exit code: 0 when it has no error (warnings
/// alone do not fail: the reply would go out), 1 when it has one, 2 when it cannot be printed.
fn print_report(report: &crate::svaml::Report, text: serde_json::Result<String>) -> ExitCode {
    let text = match text {
        Ok(text) => text,
        Err(e) => {
            eprintln!("svamlgate: {e}");
            return ExitCode::from(2);
        }
    };
    outln!("{text}");
    if report.error_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `validate --callback`: a callback event against its schema, and the reader's warnings.
fn validate_callback(args: &ValidateArgs, doc: serde_json::Value) -> ExitCode {
    let kind = EventKind::parse(&args.event);
    let validator = match Validator::new() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("svamlgate: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match validator.check_event(&kind, &doc) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("svamlgate: {e}");
            return ExitCode::from(2);
        }
    };
    let warnings = match crate::events::parse_value(doc.clone()) {
        Ok(event) => event.warnings,
        Err(e) => {
            eprintln!("svamlgate: {} is not a callback event: {e}", args.file);
            return ExitCode::from(1);
        }
    };
    if args.json {
        let out = serde_json::json!({"report": report, "readerWarnings": warnings});
        print_report(&report, serde_json::to_string_pretty(&out))
    } else {
        let mut text = report.to_string();
        for w in &warnings {
            text.push_str(&format!("\nreader: {} {}", w.pointer, w.message));
        }
        print_report(&report, Ok(text))
    }
}

async fn sign(args: SignArgs) -> anyhow::Result<()> {
    let body = read_input(&args.file).with_context(|| format!("reading {}", args.file))?;
    let cred =
        AppCredential::new(&args.key, args.secret.expose()).context("invalid key or secret")?;
    let timestamp = args
        .timestamp
        .clone()
        .unwrap_or_else(|| signature::format_timestamp(time::OffsetDateTime::now_utc()));
    let authorization = signature::sign(
        &cred,
        "POST",
        &args.path,
        Some(&args.content_type),
        &timestamp,
        &body,
    );
    let Some(base) = args.send else {
        outln!("authorization: {authorization}");
        outln!("x-timestamp: {timestamp}");
        outln!("content-type: {}", args.content_type);
        outln!("content-md5: {}", signature::content_md5(&body));
        return Ok(());
    };
    let url = format!("{}{}", base.trim_end_matches('/'), args.path);
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let mut res = client
        .post(&url)
        .insert_header(("authorization", authorization))
        .insert_header(("x-timestamp", timestamp))
        .insert_header(("content-type", args.content_type))
        .send_body(body)
        .await
        .map_err(|e| anyhow::anyhow!("sending to {url}: {e}"))?;
    let text = res
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| anyhow::anyhow!("reading the reply: {e}"))?;
    outln!("HTTP {}", res.status());
    for (k, v) in res.headers() {
        outln!("{k}: {}", v.to_str().unwrap_or("?"));
    }
    outln!();
    outln!("{}", String::from_utf8_lossy(&text));
    Ok(())
}
