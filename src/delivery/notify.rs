//! What the daemon's loop tells whoever supervises it. `herald serve` turns these calls
//! into systemd's notification protocol; the daemon itself knows nothing of systemd.
//!
//! Every call is made at a moment off the event path: once per turn at most, and with
//! nothing to allocate unless the notifier chooses to.

/// Receives the loop's moments that a supervisor cares about. Every method does nothing
/// by default.
pub trait Notifier {
    /// Once per turn of the loop, with the turn's monotonic time (ns): the loop is alive.
    /// A watchdog is fed from here, so a loop that stops turning is caught.
    fn turn(&mut self, _now_ns: u64) {}

    /// The number of subscriptions in recovery mode (replaying unconfirmed events after
    /// a crash) changed to `subscriptions`. The count at start-up is in
    /// [`ServeInfo::replaying_subscriptions`](super::ServeInfo); this is called for
    /// every change after it.
    fn replaying(&mut self, _subscriptions: usize) {}

    /// SIGTERM (or SIGINT) started the shutdown.
    fn stopping(&mut self) {}
}

/// A notifier that does nothing: the daemon when nobody supervises it, the simulator,
/// the tests.
#[derive(Copy, Clone, Debug, Default)]
pub struct NoNotifier;

impl Notifier for NoNotifier {}
