//! Records held in memory while the journal cannot take them (a full or broken disk, the journal at
//! its disk limit). The queue is bounded in bytes. The shipper empties it: straight into PostgreSQL
//! when the database answers, back into the journal once the journal works again. A record is
//! dropped only when the queue is full, which takes the journal and PostgreSQL failing together:
//! every drop is counted ([`Memory::dropped`], `svamlgate_records_dropped_total`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::DEFAULT_MEMORY_BYTES;

/// One record waiting in memory: its encoded form (as the journal would hold it) and its kind.
#[derive(Debug, Clone)]
pub struct Held {
    /// The record, encoded ([`super::encode`]).
    pub payload: Vec<u8>,
    /// Metric label of its kind.
    pub kind: &'static str,
}

#[derive(Debug, Default)]
struct Queue {
    records: VecDeque<Held>,
    bytes: u64,
}

/// The bounded queue.
#[derive(Debug)]
pub struct Memory {
    queue: Mutex<Queue>,
    capacity: AtomicU64,
    len: AtomicU64,
    held_total: AtomicU64,
    dropped: AtomicU64,
    notify: tokio::sync::Notify,
}

impl Default for Memory {
    fn default() -> Self {
        Memory::new(DEFAULT_MEMORY_BYTES)
    }
}

impl Memory {
    /// A queue holding at most `capacity` bytes of records.
    pub fn new(capacity: u64) -> Memory {
        Memory {
            queue: Mutex::new(Queue::default()),
            capacity: AtomicU64::new(capacity),
            len: AtomicU64::new(0),
            held_total: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Changes the bound (records already held stay).
    pub fn set_capacity(&self, capacity: u64) {
        self.capacity.store(capacity, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds a record; false when the queue is full and the record is dropped (counted).
    pub fn push(&self, held: Held) -> bool {
        let size = held.payload.len() as u64;
        {
            let mut q = self.lock();
            if q.bytes + size > self.capacity.load(Ordering::Acquire) {
                drop(q);
                self.dropped.fetch_add(1, Ordering::AcqRel);
                return false;
            }
            q.bytes += size;
            q.records.push_back(held);
            self.len.fetch_add(1, Ordering::AcqRel);
        }
        self.held_total.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_one();
        true
    }

    /// Counts a record dropped before it could be held.
    pub fn note_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes up to `max` records from the front (oldest first) to ship them. They still count as
    /// held (in [`Memory::len`] and against the bound) until [`Memory::settle`] or
    /// [`Memory::put_back`].
    pub fn take(&self, max: usize) -> Vec<Held> {
        let mut q = self.lock();
        let n = max.min(q.records.len());
        q.records.drain(..n).collect()
    }

    /// Puts records taken with [`Memory::take`] and not shipped back at the front, in their order.
    pub fn put_back(&self, records: Vec<Held>) {
        if records.is_empty() {
            return;
        }
        let mut q = self.lock();
        for h in records.into_iter().rev() {
            q.records.push_front(h);
        }
    }

    /// Records taken with [`Memory::take`] are now in PostgreSQL or the journal: they no longer
    /// count.
    pub fn settle(&self, records: usize, bytes: u64) {
        let mut q = self.lock();
        q.bytes = q.bytes.saturating_sub(bytes);
        let len = self
            .len
            .load(Ordering::Acquire)
            .saturating_sub(records as u64);
        self.len.store(len, Ordering::Release);
    }

    /// Records held now (waiting, or being shipped).
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Records ever held since start.
    pub fn held_total(&self) -> u64 {
        self.held_total.load(Ordering::Acquire)
    }

    /// Records dropped since start (queue full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Acquire)
    }

    /// Completes when a record is pushed (or at once if one was pushed since the last wait).
    pub async fn pushed(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(n: usize) -> Held {
        Held {
            payload: vec![b'x'; n],
            kind: "callback",
        }
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_and_counts_what_it_drops() {
        let m = Memory::new(250);
        assert!(m.push(held(100)));
        assert!(m.push(held(100)));
        assert!(!m.push(held(100)), "past the bound");
        assert!(m.push(held(50)), "what still fits is held");
        assert_eq!(
            (m.len(), m.bytes(), m.dropped(), m.held_total()),
            (3, 250, 1, 3)
        );
        let taken = m.take(2);
        assert_eq!(taken.len(), 2);
        assert_eq!(
            (m.len(), m.bytes()),
            (3, 250),
            "still held while being shipped"
        );
        assert!(!m.push(held(1)), "and still counted against the bound");
        m.put_back(taken);
        assert_eq!((m.len(), m.bytes()), (3, 250));
        let all = m.take(10);
        let order: Vec<usize> = all.iter().map(|h| h.payload.len()).collect();
        assert_eq!(order, [100, 100, 50], "oldest first, put back in place");
        m.settle(3, 250);
        assert_eq!(m.dropped(), 2);
        assert!(m.is_empty());
    }
}
