//! Where the loop hands a [`Snapshot`] to the exporter's thread.
//!
//! The exporter sets a flag and waits; the loop, which looks at the flag once per turn
//! (one atomic load), fills its own snapshot and swaps it with the shared one under a
//! mutex it only ever *tries*: the loop never blocks on the exporter. The mutex is
//! taken once per snapshot, never per event, and a swap moves no data.

use super::snapshot::Snapshot;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// The meeting point of the loop and the exporter's thread.
#[derive(Debug)]
pub struct Exchange {
    /// The exporter wants a snapshot newer than the shared one.
    wanted: AtomicBool,
    shared: Mutex<Snapshot>,
    fresh: Condvar,
}

/// What the exporter got.
pub struct Fetched<'a> {
    /// The newest snapshot (number 0: the loop has published none yet).
    pub snapshot: MutexGuard<'a, Snapshot>,
    /// It was taken after this request (false: the loop did not answer in time, and
    /// this is the last one it took).
    pub fresh: bool,
}

impl Exchange {
    /// An exchange whose snapshots hold up to `subscriptions` durable subscriptions.
    pub fn new(subscriptions: usize) -> Exchange {
        Exchange {
            wanted: AtomicBool::new(false),
            shared: Mutex::new(Snapshot::with_capacity(subscriptions)),
            fresh: Condvar::new(),
        }
    }

    /// Makes room in the shared snapshot for `subscriptions` durable subscriptions, so
    /// that the snapshots going back and forth never grow (the loop's own is made as
    /// large).
    pub fn reserve(&self, subscriptions: usize) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let len = shared.subscriptions.len();
        shared
            .subscriptions
            .reserve(subscriptions.saturating_sub(len));
    }

    /// The loop, once per turn: whether a snapshot is wanted. Relaxed: the snapshot
    /// itself crosses under the mutex; the flag only says when to bother, and a turn
    /// later is as good.
    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    /// The loop: hands `snapshot` over, getting the previous shared one back in it (to
    /// fill next time). Returns false, leaving the request standing, when the exporter
    /// holds the lock: the loop tries again next turn rather than wait.
    pub fn offer(&self, snapshot: &mut Snapshot) -> bool {
        let mut shared = match self.shared.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return false,
            // Plain numbers: a panic elsewhere cannot have left them half-made.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        snapshot.number = shared.number + 1;
        std::mem::swap(&mut *shared, snapshot);
        // Cleared under the lock the exporter sets it under: no request is lost.
        self.wanted.store(false, Ordering::Relaxed);
        drop(shared);
        self.fresh.notify_all();
        true
    }

    /// The exporter: asks for a snapshot taken from now on and waits up to `wait` for
    /// it; returns the newest one, saying whether it is that fresh one.
    pub fn fetch(&self, wait: Duration) -> Fetched<'_> {
        let deadline = Instant::now() + wait;
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let before = shared.number;
        self.wanted.store(true, Ordering::Relaxed);
        loop {
            if shared.number != before {
                return Fetched {
                    snapshot: shared,
                    fresh: true,
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Fetched {
                    snapshot: shared,
                    fresh: false,
                };
            }
            shared = self
                .fresh
                .wait_timeout(shared, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_fetch_gets_the_snapshot_the_loop_offers_after_it_asked() {
        let exchange = Arc::new(Exchange::new(4));
        assert!(!exchange.wanted());
        let looping = {
            let exchange = exchange.clone();
            std::thread::spawn(move || {
                let mut mine = Snapshot::with_capacity(4);
                mine.connections_open = 7;
                // The loop's turns: look at the flag until a request comes.
                while !exchange.wanted() {
                    std::thread::yield_now();
                }
                assert!(exchange.offer(&mut mine));
                // The shared one came back, to be filled next time.
                assert_eq!(mine.connections_open, 0);
            })
        };
        let fetched = exchange.fetch(Duration::from_secs(60));
        assert!(fetched.fresh);
        assert_eq!(fetched.snapshot.number, 1);
        assert_eq!(fetched.snapshot.connections_open, 7);
        drop(fetched);
        looping.join().unwrap();
        assert!(!exchange.wanted());
    }

    #[test]
    fn a_fetch_the_loop_does_not_answer_returns_the_last_snapshot_marked_stale() {
        let exchange = Exchange::new(4);
        let fetched = exchange.fetch(Duration::ZERO);
        assert!(!fetched.fresh);
        assert_eq!(fetched.snapshot.number, 0);
        drop(fetched);
        // The request stands for the loop's next turn.
        assert!(exchange.wanted());
    }

    #[test]
    fn the_loop_does_not_wait_while_the_exporter_holds_the_snapshot() {
        let exchange = Exchange::new(4);
        let held = exchange.fetch(Duration::ZERO);
        let mut mine = Snapshot::with_capacity(4);
        assert!(!exchange.offer(&mut mine));
        drop(held);
        assert!(exchange.offer(&mut mine));
    }
}
