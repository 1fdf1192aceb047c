//! What the every-10-seconds sweep of the replay index and of the calls in progress costs, at the
//! sizes a burst leaves behind (each benchmark ICE is a dedup key kept for the signature's window
//! and a call that never ends): the whole sweep, and the longest one shard's lock is held (a
//! callback whose key falls in that shard waits that long). No harness: `cargo bench --bench
//! sweep`, or `cargo bench --bench sweep -- 300000` for another size.

use std::time::{Duration, Instant};

use svamlgate::calls::Calls;
use svamlgate::outcome::ReplySource;
use svamlgate::recording::replay::ReplayIndex;
use svamlgate::svaml::Target;

/// A key that spreads like a SHA-256 does.
fn key(i: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// Sweeps shard by shard as the service does; returns the whole time and the longest shard.
fn sweep(
    shards: usize,
    mut one: impl FnMut(usize, Instant) -> usize,
) -> (Duration, Duration, usize) {
    let now = Instant::now();
    let (mut longest, mut left) = (Duration::ZERO, 0);
    let started = Instant::now();
    for i in 0..shards {
        let t = Instant::now();
        left += one(i, now);
        longest = longest.max(t.elapsed());
    }
    (started.elapsed(), longest, left)
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(800_000);
    let replays = ReplayIndex::new(Duration::from_secs(900));
    for i in 0..n {
        let _ = replays.claim(
            &key(i),
            uuid::Uuid::nil(),
            "0195f0e2-7b1c-7000-8000-000000000000",
        );
    }
    let calls = Calls::default();
    for i in 0..n {
        calls.note_reply(
            &format!("{:032x}", u128::from(i) * 0x9E37_79B9_7F4A_7C15),
            "0195f0e2-7b1c-7000-8000-000000000000",
            Target::Ice,
            ReplySource::Flow,
            true,
            Default::default(),
        );
    }
    println!("{n} dedup keys and {n} calls held, nothing due (a sweep that keeps them all):");
    for round in 1..=3 {
        let (r, r_max, r_left) = sweep(replays.shards(), |i, now| replays.prune_shard(i, now));
        let (c, c_max, c_left) = sweep(calls.shards(), |i, now| calls.prune_shard(i, now));
        assert_eq!((r_left, c_left), (n as usize, n as usize));
        println!(
            "round {round}: replay index {r:.2?} (longest shard {r_max:.2?}), calls {c:.2?} (longest shard {c_max:.2?})"
        );
    }
}
