//! Load generator for `benches/load.sh`: sends distinct ICE events, each signed as Sinch signs
//! (HMAC-SHA256 over the verb, Content-MD5, content type, x-timestamp and path), to one callback
//! URL, and prints one line of figures.
//!
//! Closed loop (`--rate 0`): `--connections` senders, each sending its next request when the last
//! is answered; prints requests/s. Open loop (`--rate R`): requests are started on a fixed schedule
//! of R per second whatever the answers do, and each latency is measured from the moment its
//! request was due, so a stall is counted in full (no coordinated omission). The first millisecond
//! of lateness is the timer's granularity, not the server's, and is not counted.
//!
//! Only the given URL is contacted; every run is bounded by `--seconds`.
//!
//! `cargo run --release --example loadgen -- --url http://127.0.0.1:8080/sinch/callback \
//!     --key KEY --secret SECRET --connections 32 --seconds 10 --rate 0 --prefix run1`

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use svamlgate::signature::{self, AppCredential};

struct Args {
    url: String,
    key: String,
    secret: String,
    connections: usize,
    seconds: u64,
    rate: u64,
    prefix: String,
    called: String,
}

fn args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:8080/sinch/callback".into(),
        key: "bench-key".into(),
        secret: "YmVuY2gtc2VjcmV0".into(),
        connections: 32,
        seconds: 10,
        rate: 0,
        prefix: "load".into(),
        called: "+15550100".into(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let (flag, value) = match pair {
            [f, v] => (f.as_str(), v.clone()),
            _ => break,
        };
        match flag {
            "--url" => a.url = value,
            "--key" => a.key = value,
            "--secret" => a.secret = value,
            "--connections" => a.connections = value.parse().unwrap_or(a.connections),
            "--seconds" => a.seconds = value.parse().unwrap_or(a.seconds),
            "--rate" => a.rate = value.parse().unwrap_or(a.rate),
            "--prefix" => a.prefix = value,
            "--called" => a.called = value,
            other => eprintln!("ignoring unknown flag {other}"),
        }
    }
    a
}

struct Signer {
    cred: AppCredential,
    path: String,
}

impl Signer {
    fn request(&self, callid: &str, called: &str) -> (Vec<u8>, String, String) {
        let now = time::OffsetDateTime::now_utc();
        let body = format!(
            r#"{{"event":"ice","callid":"{callid}","timestamp":"{}","version":1,"cli":"46708168731","to":{{"type":"number","endpoint":"{called}"}},"domain":"pstn","originationType":"PSTN","applicationKey":"{}"}}"#,
            signature::format_timestamp(now),
            self.cred.key()
        )
        .into_bytes();
        let ts = signature::format_timestamp(now);
        let auth = signature::sign(
            &self.cred,
            "POST",
            &self.path,
            Some("application/json"),
            &ts,
            &body,
        );
        (body, ts, auth)
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    fallback: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

impl Tally {
    fn add(&mut self, result: Result<bool, String>, us: u64) {
        match result {
            Ok(fallback) => {
                self.ok += 1;
                self.fallback += u64::from(fallback);
                self.latencies_us.push(us);
            }
            Err(_) => self.errors += 1,
        }
    }
}

async fn send(
    client: &awc::Client,
    url: &str,
    signer: &Signer,
    callid: &str,
    called: &str,
) -> Result<bool, String> {
    let (body, ts, auth) = signer.request(callid, called);
    let mut res = client
        .post(url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-timestamp", ts))
        .insert_header(("authorization", auth))
        .send_body(body)
        .await
        .map_err(|e| e.to_string())?;
    let bytes = res.body().await.map_err(|e| e.to_string())?;
    if res.status().as_u16() != 200 {
        return Err(format!("HTTP {}", res.status()));
    }
    // The fallback apologises; a flow's menu does not.
    Ok(memchr(&bytes, b"We are sorry"))
}

fn memchr(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let a = args();
    let path = a
        .url
        .find("://")
        .and_then(|i| {
            a.url[i + 3..]
                .find('/')
                .map(|j| a.url[i + 3 + j..].to_owned())
        })
        .unwrap_or_else(|| "/".into());
    let cred = match AppCredential::new(&a.key, &a.secret) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bad key/secret: {e}");
            std::process::exit(2);
        }
    };
    let signer = Rc::new(Signer { cred, path });
    let tally = Rc::new(RefCell::new(Tally::default()));
    let started = Instant::now();
    actix_web::rt::System::new().block_on(async {
        let client = Rc::new(
            awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .connector(awc::Connector::new().limit(a.connections.max(1)))
                .finish(),
        );
        let end = Instant::now() + Duration::from_secs(a.seconds);
        let counter = Rc::new(std::cell::Cell::new(0u64));
        let mut tasks = Vec::new();
        if a.rate == 0 {
            for _ in 0..a.connections.max(1) {
                let (client, signer, tally, counter) = (
                    client.clone(),
                    signer.clone(),
                    tally.clone(),
                    counter.clone(),
                );
                let (url, prefix, called) = (a.url.clone(), a.prefix.clone(), a.called.clone());
                tasks.push(actix_web::rt::spawn(async move {
                    while Instant::now() < end {
                        let n = counter.get();
                        counter.set(n + 1);
                        let t0 = Instant::now();
                        let r =
                            send(&client, &url, &signer, &format!("{prefix}-{n}"), &called).await;
                        let us = t0.elapsed().as_micros() as u64;
                        tally.borrow_mut().add(r, us);
                    }
                }));
            }
        } else {
            let interval = Duration::from_secs_f64(1.0 / a.rate as f64);
            let t0 = Instant::now();
            let mut n = 0u64;
            loop {
                let due = t0 + interval * n as u32;
                if due >= end {
                    break;
                }
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    actix_web::rt::time::sleep(wait).await;
                }
                let (client, signer, tally) = (client.clone(), signer.clone(), tally.clone());
                let (url, callid, called) =
                    (a.url.clone(), format!("{}-{n}", a.prefix), a.called.clone());
                tasks.push(actix_web::rt::spawn(async move {
                    let sent = Instant::now();
                    let late = sent.saturating_duration_since(due);
                    let r = send(&client, &url, &signer, &callid, &called).await;
                    let charged = sent.elapsed() + late.saturating_sub(Duration::from_millis(1));
                    let us = charged.as_micros() as u64;
                    tally.borrow_mut().add(r, us);
                }));
                n += 1;
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut t = tally.borrow_mut();
    t.latencies_us.sort_unstable();
    println!(
        "rps={:.0} ok={} fallback={} errors={} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        t.ok as f64 / elapsed,
        t.ok,
        t.fallback,
        t.errors,
        percentile(&t.latencies_us, 0.50),
        percentile(&t.latencies_us, 0.99),
        percentile(&t.latencies_us, 0.999),
        percentile(&t.latencies_us, 1.0),
    );
}
