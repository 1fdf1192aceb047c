//! The embedded server's processes yield the CPU to replies, also where the kernel groups tasks
//! by session ("autogroups", `CONFIG_SCHED_AUTOGROUP`, on by default in Debian's kernels and on
//! this project's machines).
//!
//! The postmaster is started niced ([`super::cluster::BACKGROUND_NICE`]) and its children inherit
//! that, but every child (each backend, the WAL writer, the checkpointer, …) calls `setsid()`, and
//! with autogroups the kernel shares the CPU between sessions first and applies a process's nice
//! only within its own session. So a backend `COPY`ing a catch-up weighed as much as svamlgate's
//! whole reply path: the nice did nothing (docs/benchmarks.md, session 17). An autogroup has a
//! nice of its own (`/proc/<pid>/autogroup`, see `sched(7)`); [`lower`] sets it for each of the
//! postmaster's children that does not have it yet. (The postmaster itself stays in svamlgate's
//! session, and so in its autogroup: that one is never touched.) The supervisor calls it as it
//! watches the server, so a new backend runs at the background priority within one watch period.
//! Not for a throwaway cluster (the tests'), whose every step a test waits on.

use std::io;

/// Whether the running kernel groups tasks by session.
pub fn enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled")
        .is_ok_and(|s| s.trim() == "1")
}

/// Sets the autogroup nice of each child of `postmaster` to `nice` where it is not that already,
/// unless the child shares this process's autogroup; returns how many it set. Errors are left for
/// the next call: a process that ended meanwhile, or the kernel's limit of one change per 100 ms
/// without `CAP_SYS_ADMIN` (`EAGAIN`).
pub fn lower(postmaster: u32, nice: i32) -> usize {
    let own = own_group();
    let mut lowered = 0;
    for pid in children(postmaster) {
        // Just forked, before its `setsid()`, a child is still in svamlgate's group.
        let Some((name, n)) = group_of(&pid.to_string()) else {
            continue;
        };
        if Some(&name) != own && n != nice && set(pid, nice).is_ok() {
            lowered += 1;
        }
    }
    lowered
}

/// The name of this process's autogroup, read once: a process's session, and so its
/// autogroup, is fixed once svamlgate runs (it never calls `setsid()`).
fn own_group() -> Option<&'static String> {
    static OWN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| group_of("self").map(|(name, _)| name))
        .as_ref()
}

/// The children of `pid` (`/proc/<pid>/task/<pid>/children`; none where the kernel lacks it).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The autogroup `pid` (a number, or `self`) is in, and its nice, from `/autogroup-<n> nice
/// <nice>`; `None` without one.
fn group_of(pid: &str) -> Option<(String, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/autogroup")).ok()?;
    let mut words = text.split_whitespace();
    let name = words.next()?.to_owned();
    let nice = words.skip_while(|w| *w != "nice").nth(1)?.parse().ok()?;
    Some((name, nice))
}

/// The nice of the autogroup `pid` is in.
pub fn nice_of(pid: u32) -> Option<i32> {
    group_of(&pid.to_string()).map(|g| g.1)
}

fn set(pid: u32, nice: i32) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/autogroup"), nice.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_autogroup_is_lowered_and_left_alone_once_lowered() {
        if !enabled() {
            eprintln!("this kernel does not group tasks by session: nothing to lower");
            return;
        }
        // A child in a session (and so an autogroup) of its own, as PostgreSQL's are.
        let mut parent = std::process::Command::new("setsid")
            .args(["--fork", "--wait", "sleep", "30"])
            .spawn()
            .expect("setsid (util-linux)");
        let pid = parent.id();
        let child = (0..200)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                children(pid).first().copied()
            })
            .expect("setsid started sleep");
        assert_eq!(nice_of(child), Some(0));
        // The parent shares the test's autogroup, and so is left alone: lowering it would lower
        // the test's own (as the postmaster shares svamlgate's).
        let own = nice_of(std::process::id());
        // Spaced out: without CAP_SYS_ADMIN the kernel takes one change per 100 ms.
        let lowered = (0..30)
            .map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                lower(pid, 7)
            })
            .sum::<usize>();
        assert_eq!(lowered, 1, "set once, then left alone");
        assert_eq!(nice_of(child), Some(7));
        assert_eq!(nice_of(std::process::id()), own, "its own left alone");
        let _ = parent.kill();
        let _ = parent.wait();
    }
}
