//! Latency of the SVAML gate: `Validator::check` for a typical ICE reply and for a large runMenu
//! document, and the whole gate step of the reply path (`Gate::pass`: check plus the verdict that
//! picks reply or fallback), for a valid and an invalid reply. p50/p99 with `std::time::Instant`,
//! no harness: `cargo bench --bench gate`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use std::sync::Arc;

use svamlgate::config::ServeArgs;
use svamlgate::gate::Gate;
use svamlgate::svaml::{Mode, Target, Validator};

fn typical_ice_reply() -> Value {
    json!({
        "instructions": [
            {"name": "say", "text": "Thanks for calling, connecting you now.", "locale": "en-US"}
        ],
        "action": {
            "name": "connectPstn",
            "number": "+46700000000",
            "cli": "+46700000001",
            "maxDuration": 3600,
            "locale": "en-US"
        }
    })
}

fn large_document() -> Value {
    let menus: Vec<Value> = (0..20)
        .map(|m| {
            let id = if m == 0 { "main".to_owned() } else { format!("menu{m}") };
            let options: Vec<Value> = (0..10)
                .map(|o| {
                    let action = if o % 2 == 0 {
                        format!("menu(menu{})", (m + o) % 19 + 1)
                    } else {
                        format!("return(choice_{m}_{o})")
                    };
                    json!({"dtmf": (o + 1).to_string(), "action": action})
                })
                .collect();
            json!({
                "id": id,
                "mainPrompt": format!("#tts[This is menu {m}. Choose an option.];#href[https://media.example.com/m{m}.mp3]"),
                "repeatPrompt": "#tts[Sorry, please try again.]",
                "repeats": 2,
                "maxDigits": 2,
                "timeoutMills": 5000,
                "options": options
            })
        })
        .collect();
    let instructions: Vec<Value> = (0..30)
        .map(|i| match i % 3 {
            0 => json!({"name": "say", "text": format!("Sentence number {i}."), "locale": "en-US/female"}),
            1 => json!({"name": "playFiles", "ids": [format!("#tts[Part {i}]"), "https://media.example.com/beep.wav"], "locale": "en-US"}),
            _ => json!({"name": "setCookie", "key": format!("k{i}"), "value": "v"}),
        })
        .collect();
    json!({
        "instructions": instructions,
        "action": {"name": "runMenu", "barge": true, "locale": "en-US", "mainMenu": "main", "menus": menus}
    })
}

/// Prints p50, p99 and max of the samples.
fn print_percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let n = samples.len();
    let pct = |p: f64| samples[((n as f64 - 1.0) * p).round() as usize];
    println!(
        "{name:<22} n={n:<6} p50={:>9.2?} p99={:>9.2?} max={:>9.2?}",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}

fn measure(validator: &Validator, name: &str, doc: &Value, iterations: usize) {
    let first = validator.check(Target::Ice, doc, Mode::Normal);
    assert!(first.valid, "{name} must be valid:\n{first}");
    for _ in 0..iterations / 10 {
        black_box(validator.check(Target::Ice, black_box(doc), Mode::Normal));
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let report = validator.check(Target::Ice, black_box(doc), Mode::Normal);
        samples.push(start.elapsed());
        black_box(report);
    }
    print_percentiles(name, samples);
}

fn measure_gate(gate: &Gate, name: &str, doc: &Value, iterations: usize) {
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let candidate = doc.clone();
        let start = Instant::now();
        let verdict = gate.pass(Target::Ice, black_box(candidate));
        samples.push(start.elapsed());
        black_box(verdict);
    }
    print_percentiles(name, samples);
}

fn main() {
    let start = Instant::now();
    let validator = Validator::new().expect("schemas compile");
    println!("Validator::new: {:.2?}", start.elapsed());
    measure(
        &validator,
        "typical ICE reply",
        &typical_ice_reply(),
        20_000,
    );
    measure(
        &validator,
        "large runMenu document",
        &large_document(),
        2_000,
    );
    let gate =
        Gate::new(Arc::new(validator), &ServeArgs::for_tests()).expect("built-in fallbacks valid");
    measure_gate(&gate, "gate, valid ICE", &typical_ice_reply(), 20_000);
    let mut invalid = typical_ice_reply();
    invalid["action"]["number"] = json!("46700000000");
    measure_gate(&gate, "gate, invalid ICE", &invalid, 20_000);
}
