//! The journal against the failures a disk has: full (a small tmpfs filled under load), a size limit
//! smaller than a segment (PostgreSQL up, then away), a byte flipped in the middle of a segment, a
//! record this release cannot decode, a journal written by the previous release, and an outbound
//! request made while PostgreSQL is away. In each, what was answered is counted against what reached
//! PostgreSQL: equal once the fault is gone, or short by exactly what svamlgate reported as dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use svamlgate::config::ServeArgs;
use svamlgate::recording::journal::WriteState;

use crate::faults::{port_of, through, Proxy};
use crate::helpers::{fresh_database, ice, spawn_app_on, wait_for, TestApp};

/// A tmpfs of `bytes` mounted for one test; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// None (after saying SKIPPED and the test's name) where mounting is impossible (not root);
    /// as root, a mount that fails fails the test.
    fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("svamlgate-tmpfs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            // Root can mount: a failure there is a failure of the test, not a reason to skip it.
            // SAFETY: geteuid has no preconditions.
            Ok(o) if unsafe { libc::geteuid() } == 0 => panic!(
                "{}: running as root but cannot mount a tmpfs ({}); a container needs CAP_SYS_ADMIN",
                this_test(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Ok(o) => {
                eprintln!(
                    "SKIPPED {}: cannot mount a tmpfs here ({}); run as root to test a full disk",
                    this_test(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                let _ = std::fs::remove_dir(&dir);
                None
            }
            Err(e) => {
                eprintln!(
                    "SKIPPED {}: cannot run mount ({e}); run as root to test a full disk",
                    this_test()
                );
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// Takes every free byte with a file; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
        // Whatever a smaller write still finds.
        for _ in 0..4096 {
            if f.write_all(&[0u8; 1]).is_err() {
                break;
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ts() -> String {
    svamlgate::signature::format_timestamp(time::OffsetDateTime::now_utc())
}

/// Sends `n` distinct ICEs, `concurrency` at a time, without waiting for shipping; returns the call
/// ids answered 200.
async fn burst(app: &TestApp, prefix: &str, n: usize, concurrency: usize) -> Vec<String> {
    use futures_util::StreamExt as _;
    let answered: Vec<Option<String>> = futures_util::stream::iter(0..n)
        .map(|i| async move {
            let callid = format!("{prefix}-{i}");
            let res = app.send_signed_at(&ice(&callid, "+15550123"), &ts()).await;
            (res.status == 200).then_some(callid)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    answered.into_iter().flatten().collect()
}

/// The running test's name (libtest names its thread after it), for SKIPPED lines.
fn this_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a full-disk test")
        .to_owned()
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let r = app.get("/readyz", None).await;
    (r.status, r.json())
}

/// Waits until nothing is left to ship (journal and memory) and PostgreSQL takes records.
async fn drained(app: &TestApp, within: Duration) {
    let status = &app.state.recorder.status;
    wait_for(within, async || {
        let durable = *app.state.recorder.journal().durable().borrow();
        if status.shipped.load(Ordering::Acquire) >= durable
            && status.memory.is_empty()
            && status.db_ok.load(Ordering::Acquire)
        {
            Ok(())
        } else {
            Err(format!("not drained: {:?}", ready(app).await))
        }
    })
    .await
}

async fn rows(app: &TestApp, prefix: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM callbacks WHERE callid LIKE '{prefix}%'"
    )))
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .count()
}

fn dropped(app: &TestApp) -> u64 {
    app.state.recorder.status.memory.dropped()
}

/// An app on `db` (optionally through a proxy that can cut it) with its data directory at `dir`.
async fn app_at(db: &str, dir: &Path, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let dir = dir.to_path_buf();
    spawn_app_on(db.to_owned(), move |c| {
        c.db.data_dir = dir;
        configure(c);
    })
    .await
}

#[actix_web::test]
async fn a_full_disk_under_load_loses_nothing_while_postgres_is_up() {
    let Some(fs) = Tmpfs::mount(4 << 20) else {
        return;
    };
    let dir = fs.dir.join("data");
    let db = fresh_database().await;
    let app = app_at(&db, &dir, |_| {}).await;
    let first = burst(&app, "full", 50, 8).await;
    drained(&app, Duration::from_secs(10)).await;
    let files_before = segment_files(&dir);

    let filler = fs.fill();
    let mut during = burst(&app, "full-during", 400, 8).await;
    assert_eq!(
        during.len(),
        400,
        "every caller answered while the disk is full"
    );
    // Readiness and the metric say the journal is failing while its last write failed. A write
    // that fails on a full disk also deletes the shipped segments (`make_room`), so a later write
    // may fit again and readiness then says ok, truly: write on until the last write failed, and
    // look then.
    let mut round = 0;
    let (status, body, m) = wait_for(Duration::from_secs(20), async || {
        let (status, body) = ready(&app).await;
        let m = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
        if body["checks"]["journal"] == "failing" && m.contains("svamlgate_journal_failing 1") {
            return Ok((status, body, m));
        }
        round += 1;
        let more = burst(&app, &format!("full-during-more{round}"), 20, 4).await;
        assert_eq!(
            more.len(),
            20,
            "every caller answered while the disk is full"
        );
        during.extend(more);
        Err(format!("the journal is not failing yet: {body}"))
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(m.contains("svamlgate_journal_failing 1"), "{m}");
    assert!(
        segment_files(&dir) <= files_before,
        "failed flushes created no file"
    );

    // Space comes back: the journal works again by itself.
    std::fs::remove_file(filler).unwrap();
    let after = burst(&app, "full-after", 50, 8).await;
    drained(&app, Duration::from_secs(20)).await;
    assert_eq!(dropped(&app), 0, "with PostgreSQL up nothing is dropped");
    let answered = first.len() + during.len() + after.len();
    let stored = rows(&app, "full").await;
    eprintln!(
        "full disk, PostgreSQL up: {answered} answered, {stored} rows, {} held in memory on the way",
        app.state.recorder.status.memory.held_total()
    );
    assert!(
        app.state.recorder.status.memory.held_total() > 0,
        "the fault was met"
    );
    assert_eq!(stored, answered as i64);
    let (_, body) = ready(&app).await;
    assert_eq!(body["checks"]["journal"], "ok", "{body}");
}

#[actix_web::test]
async fn a_full_disk_with_postgres_away_drops_only_what_it_reports() {
    let Some(fs) = Tmpfs::mount(4 << 20) else {
        return;
    };
    let dir = fs.dir.join("data");
    let db = fresh_database().await;
    let proxy = Proxy::start(port_of(&db));
    let app = app_at(&through(&db, proxy.port), &dir, |c| {
        c.journal_memory_bytes = 60_000;
    })
    .await;
    drained(&app, Duration::from_secs(10)).await;
    proxy.set_up(false);
    let filler = fs.fill();
    let answered = burst(&app, "away", 200, 8).await;
    assert_eq!(answered.len(), 200, "every caller answered");
    let lost = dropped(&app);
    assert!(lost > 0, "memory (60 kB) cannot hold 200 records");
    let (_, body) = ready(&app).await;
    assert_eq!(body["shipping"]["droppedRecords"], lost, "{body}");
    let m = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    assert!(
        m.contains(&format!(
            "svamlgate_records_dropped_total{{kind=\"callback\"}} {lost}"
        )),
        "{m}"
    );

    std::fs::remove_file(filler).unwrap();
    proxy.set_up(true);
    drained(&app, Duration::from_secs(30)).await;
    let stored = rows(&app, "away").await;
    eprintln!(
        "full disk, PostgreSQL away: {} answered, {stored} rows, {lost} reported dropped",
        answered.len()
    );
    assert_eq!(stored + lost as i64, answered.len() as i64);
}

/// The journal itself fills its small filesystem while PostgreSQL is away; once PostgreSQL is
/// back, what was shipped is deleted at the next full write and the journal works again.
#[actix_web::test]
async fn the_journal_filling_its_filesystem_under_load_loses_only_what_it_reports() {
    let Some(fs) = Tmpfs::mount(1 << 20) else {
        return;
    };
    let dir = fs.dir.join("data");
    let db = fresh_database().await;
    let proxy = Proxy::start(port_of(&db));
    let app = app_at(&through(&db, proxy.port), &dir, |c| {
        c.journal_memory_bytes = 150_000;
    })
    .await;
    drained(&app, Duration::from_secs(10)).await;
    proxy.set_up(false);
    let answered = burst(&app, "fills", 1000, 8).await;
    assert_eq!(answered.len(), 1000, "every caller answered");
    let lost = dropped(&app);
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, &body["checks"]["journal"]),
        (200, &Value::from("failing")),
        "{body}"
    );
    assert!(
        lost > 0,
        "1 MiB of disk and 150 kB of memory cannot hold 1,000 records: {body}"
    );

    proxy.set_up(true);
    drained(&app, Duration::from_secs(60)).await;
    let stored = rows(&app, "fills").await;
    eprintln!(
        "journal filled its 1 MiB filesystem, PostgreSQL away: {} answered, {stored} rows, {lost} reported dropped",
        answered.len()
    );
    assert_eq!(stored + lost as i64, answered.len() as i64);
    // Shipped segments made room: with traffic, the journal takes records again by itself (the
    // first writes may still meet the full disk; they go through memory, nothing is lost).
    let mut after = 0;
    for round in 0..20 {
        after += burst(&app, &format!("fills-after{round}"), 10, 2)
            .await
            .len();
        drained(&app, Duration::from_secs(20)).await;
        if app.state.recorder.journal().write_state() == WriteState::Ok {
            break;
        }
    }
    assert_eq!(rows(&app, "fills-after").await, after as i64);
    let (_, body) = ready(&app).await;
    assert_eq!(body["checks"]["journal"], "ok", "{body}");
    assert_eq!(
        dropped(&app),
        lost,
        "nothing dropped once PostgreSQL is back"
    );
}

#[actix_web::test]
async fn a_limit_smaller_than_a_segment_bounds_the_journal_with_postgres_up_and_away() {
    let db = fresh_database().await;
    let proxy = Proxy::start(port_of(&db));
    let dir = crate::helpers::base_config().db.data_dir;
    let limit: u64 = 150_000;
    let app = app_at(&through(&db, proxy.port), &dir, |c| {
        c.journal_max_bytes = limit;
        c.journal_memory_bytes = 60_000;
    })
    .await;
    // PostgreSQL up: the journal turns over within its limit and readiness stays up.
    let mut up = Vec::new();
    for round in 0..4 {
        up.extend(burst(&app, &format!("lim-up{round}"), 100, 4).await);
        let (status, body) = ready(&app).await;
        assert_eq!(status, 200, "{body}");
        assert!(app.state.recorder.journal().bytes() <= limit);
    }
    drained(&app, Duration::from_secs(20)).await;
    assert_eq!(up.len(), 400);
    assert_eq!(dropped(&app), 0);
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &Value::from("ready")),
        "{body}"
    );

    // PostgreSQL away: the journal fills to its limit, never past it; then memory, then drops.
    proxy.set_up(false);
    let away = burst(&app, "lim-away", 300, 4).await;
    assert_eq!(away.len(), 300, "every caller answered");
    assert!(app.state.recorder.journal().bytes() <= limit);
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["journal"], "over_limit", "{body}");
    let lost = dropped(&app);
    assert!(lost > 0, "{body}");

    // Back: readiness recovers by itself, and every record not reported dropped is there.
    proxy.set_up(true);
    drained(&app, Duration::from_secs(30)).await;
    wait_for(Duration::from_secs(10), async || {
        let (status, body) = ready(&app).await;
        if status == 200 && body["checks"]["journal"] == "ok" {
            Ok(())
        } else {
            Err(format!("readiness did not recover: {body}"))
        }
    })
    .await;
    let stored_up = rows(&app, "lim-up").await;
    assert!(up.iter().all(|c| c.starts_with("lim-up")));
    let stored_away = rows(&app, "lim-away").await;
    eprintln!(
        "limit {limit} B: up {} answered / {stored_up} rows; away {} answered / {stored_away} rows, {lost} reported dropped",
        up.len(),
        away.len()
    );
    assert_eq!(stored_up, 400);
    assert_eq!(stored_away + lost as i64, 300);
}

#[actix_web::test]
async fn a_byte_flipped_mid_segment_costs_one_record_and_says_so() {
    let db = fresh_database().await;
    // The first instance reaches PostgreSQL through a proxy that is cut for good (its shipper
    // thread may outlive `stop()` in this process); the second one through another.
    let proxy = Proxy::start(port_of(&db));
    let dir = crate::helpers::base_config().db.data_dir;
    let app = app_at(&through(&db, proxy.port), &dir, |_| {}).await;
    drained(&app, Duration::from_secs(10)).await;
    proxy.set_up(false);
    let answered = burst(&app, "flip", 60, 4).await;
    assert_eq!(answered.len(), 60);
    app.stop().await;
    drop(app);

    let journal = dir.join("journal");
    let seg = std::fs::read_dir(&journal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();

    let frames_before = {
        let mut n = 0;
        let mut at = 0;
        while at + 16 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            at += 16 + len;
            n += 1;
        }
        n
    };
    let back = app_at(&db, &dir, |_| {}).await;
    drained(&back, Duration::from_secs(20)).await;
    let stored = rows(&back, "flip").await;
    let (status, body) = ready(&back).await;
    assert_eq!(status, 200, "{body}");
    let cut = &body["checks"]["journalCut"];
    eprintln!(
        "flipped byte: 60 answered ({frames_before} frames in the segment), {stored} rows, readiness reports {cut}"
    );
    assert_eq!(cut["records"], 1, "{body}");
    let range = &cut["seqRanges"][0];
    assert_eq!(range[0], range[1], "{body}");
    assert_eq!(stored, 59, "every record but the damaged one");
    let quarantined: Vec<PathBuf> = std::fs::read_dir(journal.join("quarantine"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(quarantined.len(), 1);
    let m = String::from_utf8(back.get("/metrics", None).await.body).unwrap();
    assert!(m.contains("svamlgate_journal_cut_records_total 1"), "{m}");
}

#[actix_web::test]
async fn an_undecodable_record_is_set_aside_byte_for_byte_and_never_shipped() {
    let db = fresh_database().await;
    let dir = crate::helpers::base_config().db.data_dir;
    let journal = dir.join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let newer = br#"{"v":9,"record":{"hologram":{"id":1}}}"#.to_vec();
    let nonsense = br#"{"nonsense":true}"#.to_vec();
    let mut frames = Vec::new();
    svamlgate::recording::journal::encode_frame(1, &newer, &mut frames);
    svamlgate::recording::journal::encode_frame(2, &nonsense, &mut frames);
    std::fs::write(journal.join(format!("{:020}.seg", 1)), frames).unwrap();

    let app = app_at(&db, &dir, |_| {}).await;
    let answered = burst(&app, "undecodable", 3, 1).await;
    drained(&app, Duration::from_secs(10)).await;
    assert_eq!(rows(&app, "undecodable").await, 3);
    let aside = journal.join("unshippable");
    assert_eq!(
        std::fs::read(aside.join(format!("{:020}.record", 1))).unwrap(),
        newer
    );
    assert_eq!(
        std::fs::read(aside.join(format!("{:020}.record", 2))).unwrap(),
        nonsense
    );
    let m = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    assert!(
        m.contains("svamlgate_unshippable_records_total{kind=\"undecodable\"} 2"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "svamlgate_shipped_records_total {}",
            answered.len()
        )),
        "set aside is not shipped: {m}"
    );
}

#[actix_web::test]
async fn a_journal_of_the_previous_release_is_shipped() {
    let db = fresh_database().await;
    let dir = crate::helpers::base_config().db.data_dir;
    let journal = dir.join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-previous-release");
    for e in std::fs::read_dir(&fixtures).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "seg") {
            std::fs::copy(e.path(), journal.join(e.file_name())).unwrap();
        }
    }
    let app = app_at(&db, &dir, |_| {}).await;
    drained(&app, Duration::from_secs(10)).await;
    let count = |sql: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM callbacks WHERE callid LIKE 'prev-release-%'").await,
        21
    );
    assert_eq!(
        count("SELECT count(*) FROM errors WHERE error_code = 42202").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM refusals WHERE reference LIKE 'prev-release-refusal-%'").await,
        1
    );
    assert_eq!(count("SELECT count(*) FROM rejected_replies").await, 1);
    assert_eq!(count("SELECT count(*) FROM upstream_exchanges").await, 1);
    assert_eq!(
        count("SELECT count(*) FROM call_state WHERE callid LIKE 'prev-release-%'").await,
        19,
        "twenty calls set, one ended"
    );
    assert_eq!(
        count("SELECT count(*) FROM callbacks WHERE rejected_by_sinch IS NOT NULL").await,
        1
    );
    assert!(!journal.join("unshippable").exists(), "nothing set aside");
}

#[actix_web::test]
async fn an_outbound_request_made_while_postgres_is_away_is_recorded() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let db = fresh_database().await;
    let proxy = Proxy::start(port_of(&db));
    let dir = crate::helpers::base_config().db.data_dir;
    let app = app_at(&through(&db, proxy.port), &dir, move |c| {
        c.sinch_api.sinch_api_base_url = closed;
        c.sinch_api.sinch_api_retry_base_ms = 5;
    })
    .await;
    drained(&app, Duration::from_secs(10)).await;
    proxy.set_up(false);
    let body = serde_json::json!({
        "method": "ttsCallout",
        "ttsCallout": {
            "destination": {"type": "number", "endpoint": "+14045005000"},
            "cli": "+14045005001",
            "locale": "en-US",
            "text": "hello"
        }
    });
    let r = app.admin_send("POST", "/admin/callouts", Some(&body)).await;
    let reference = r.assert_envelope(503, 50300);
    assert!(
        app.state.recorder.status.lag_records() > 0,
        "waiting in the journal"
    );

    proxy.set_up(true);
    drained(&app, Duration::from_secs(20)).await;
    let (outcome, attempts, check): (String, i16, String) = sqlx::query_as(
        "SELECT outcome, attempts, local_check FROM outbound_requests WHERE reference = $1",
    )
    .bind(&reference)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (outcome.as_str(), attempts, check.as_str()),
        ("no_answer", 4, "cap_unchecked")
    );
    let tried: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbound_attempts a JOIN outbound_requests r ON r.id = a.request_id \
         WHERE r.reference = $1 AND a.failure = 'connect'",
    )
    .bind(&reference)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(tried, 4, "every attempt, with why it failed");
}

/// A connection PostgreSQL ends in the middle of a batch (here: terminated by an administrator)
/// is a connection failure to retry, not a refusal of the records.
#[actix_web::test]
async fn a_connection_lost_mid_batch_is_not_a_refused_batch() {
    use sqlx::Connection as _;
    let db = fresh_database().await;
    let mut victim = sqlx::PgConnection::connect(&db).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();
    let mut tx = victim.begin().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    let lost = sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap_err();
    assert!(
        !svamlgate::recording::ship::refuses_records(&lost),
        "a lost connection taken for a refusal: {lost:?}"
    );
    // A record PostgreSQL does refuse is one.
    let refused = sqlx::query("SELECT 'x'::int")
        .execute(&mut admin)
        .await
        .unwrap_err();
    assert!(
        svamlgate::recording::ship::refuses_records(&refused),
        "{refused:?}"
    );
}
