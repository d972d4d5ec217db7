//! The subscriptions the daemon knows: every durable one in the log's table, and the
//! live-only ones attached right now. Each has its tracker (what is in flight, the
//! cursor), its recovery mode, and the sinks it delivers to while attached: one
//! consumer, or the members of a work-queue group (`members.rs`).

use super::members::{JoinRefused, Members};
use super::{Policy, SubscriptionSpec, Tracker};
use crate::log::{self, EventView, Log, Seq, SubscriptionId, SubscriptionMode};
use crate::pmem::Medium;
use crate::routing::Routes;
use std::time::Duration;

/// Defaults of the redelivery policy (a subscription may set its own deadline and
/// maximum delivery count in `Subscribe`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RedeliveryConfig {
    /// An event not settled this long after delivery is redelivered.
    pub ack_deadline: Duration,
    /// Deliveries before an event becomes a dead letter of the subscription.
    pub max_deliveries: u16,
    /// Wait before the first redelivery after a missed deadline; doubles each time.
    pub backoff: Duration,
    /// Longest wait between redeliveries.
    pub backoff_max: Duration,
}

impl Default for RedeliveryConfig {
    fn default() -> Self {
        RedeliveryConfig {
            ack_deadline: Duration::from_secs(30),
            max_deliveries: 5,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl RedeliveryConfig {
    /// The policy of a subscription that asked for `ack_deadline_ms` and
    /// `max_deliveries` (0 = this default).
    pub fn policy(&self, ack_deadline_ms: u32, max_deliveries: u16) -> Policy {
        Policy {
            ack_deadline_ns: if ack_deadline_ms == 0 {
                self.ack_deadline.as_nanos() as u64
            } else {
                u64::from(ack_deadline_ms) * 1_000_000
            },
            backoff_ns: self.backoff.as_nanos() as u64,
            backoff_max_ns: self.backoff_max.as_nanos() as u64,
            max_deliveries: if max_deliveries == 0 {
                self.max_deliveries
            } else {
                max_deliveries
            },
        }
    }
}

/// Where an attached subscription's deliveries go: an index the daemon gives its sinks
/// (a connection slot, or a sink of another kind numbered after the connections).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SinkId(pub u32);

/// A dead letter sent again on an operator's request (`herald dead replay`), outside
/// the window: confirmed, it is purged; rejected, nak'd or not settled in time, it
/// stays a dead letter with one more delivery counted.
#[derive(Copy, Clone, Debug)]
pub struct DeadReplay {
    /// The dead letter.
    pub id: log::DeadLetterId,
    /// Its original sequence number (what the subscriber settles).
    pub seq: u64,
    /// Deliveries counting this one.
    pub deliveries: u32,
    /// Not settled by then: it stays a dead letter.
    pub deadline: u64,
    /// Its outcome is queued for the release stage.
    pub settled: bool,
}

/// One subscription as the daemon runs it. A durable one's name, persisted cursor and
/// persistent mode live in the log's entry (`durable`), not here.
pub struct SubscriptionState {
    /// The log entry of a durable subscription; None for a live-only one.
    pub durable: Option<SubscriptionId>,
    /// Filters and policy as asked for.
    pub spec: SubscriptionSpec,
    /// In-flight events, deadlines and the cursor.
    pub tracker: Tracker,
    /// The sinks it is attached to: one consumer, or a work-queue group's members.
    pub members: Members,
    /// Recovering (the persistent mode): the events before this position are the
    /// replay; later ones are held until the subscription is normal again.
    pub replay_end: Option<u64>,
    /// The subscriber sent `Recovered`.
    pub leave_recovery: bool,
    /// Redeliveries sent (deadline, nak, reconnect) since the daemon started.
    pub redelivered: u64,
    /// Events that became dead letters since the daemon started.
    pub dead_lettered: u64,
    /// Live-only: events given up on (no dead letters without a durable entry).
    pub dropped: u64,
    /// A dead letter an operator asked to replay, in flight to the sink.
    pub replaying: Option<DeadReplay>,
    /// Dead letters of this subscription marked for replay (0 = none to look for).
    pub dead_replays: u32,
    /// Paused by an operator (kept in the log): nothing is delivered, events are held.
    pub paused: bool,
}

impl SubscriptionState {
    /// Whether a stored event is meant for this subscription: the rule that routed it
    /// decides, or (no rule, or one that leaves it to them) its own filters.
    pub fn wants<M: Medium>(&self, e: &EventView<'_>, routes: &Routes, log: &Log<M>) -> bool {
        if e.route == 0 {
            return self.spec.matches(e.topic, e.severity);
        }
        let name = self
            .durable
            .and_then(|id| log.subscription(id))
            .map(|s| s.name());
        routes
            .decide(e.route, e.seq.0)
            .wants(name, || self.spec.matches(e.topic, e.severity))
    }

    /// A subscription not attached to anything.
    pub fn new(
        durable: Option<SubscriptionId>,
        spec: SubscriptionSpec,
        tracker: Tracker,
    ) -> SubscriptionState {
        SubscriptionState {
            durable,
            spec,
            tracker,
            members: Members::NONE,
            replay_end: None,
            leave_recovery: false,
            redelivered: 0,
            dead_lettered: 0,
            dropped: 0,
            replaying: None,
            dead_replays: 0,
            paused: false,
        }
    }

    /// Its persistent mode as the daemon runs it.
    pub fn mode(&self) -> SubscriptionMode {
        if self.replay_end.is_some() {
            SubscriptionMode::Recovering
        } else {
            SubscriptionMode::Normal
        }
    }

    /// The earliest time it needs the daemon's attention: its next redelivery deadline,
    /// or a replayed dead letter's.
    pub fn next_due(&self) -> u64 {
        let due = self.tracker.next_due();
        match self.replaying {
            Some(r) if !r.settled => due.min(r.deadline),
            _ => due,
        }
    }
}

/// Why a subscription could not be attached or created.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The durable name is attached to another sink.
    #[error("this durable subscription is attached to another connection")]
    NameInUse,
    /// A work-queue group needs a durable subscription.
    #[error("a work-queue group needs a durable subscription name")]
    GroupNeedsName,
    /// The group has its most members.
    #[error("the work-queue group has its most members ({0})")]
    GroupFull(usize),
    /// The durable subscription exists with other filters.
    #[error("this durable subscription exists with other filters: subscribe with its filters (`herald subscriptions list` shows them), or change them first with `herald subscriptions set NAME --filter ...`")]
    OtherFilters,
    /// The log's subscription table has no free entry.
    #[error("the subscription table is full ({0} durable subscriptions); delete one or use a larger region")]
    TableFull(u64),
    /// No room in the daemon's table (live-only and durable together).
    #[error("no free subscription slot")]
    NoSlot,
    /// The log refused (a failed region, a bad name).
    #[error("cannot create the durable subscription: {0}")]
    Log(log::LogError),
}

/// Every subscription the daemon knows, in a table sized at start-up (durable entries
/// of the log plus one live-only per connection).
pub struct SubscriptionSet {
    pub(super) slots: Vec<Option<SubscriptionState>>,
}

impl SubscriptionSet {
    /// An empty set with room for `capacity` subscriptions.
    pub fn new(capacity: usize) -> SubscriptionSet {
        SubscriptionSet {
            slots: (0..capacity).map(|_| None).collect(),
        }
    }

    /// Loads every durable subscription of `log`. `previous_stop_clean`: else those
    /// with unsettled events start recovering (persistently). `recovered_tail`: the
    /// log's tail at open, below which everything existed before this run.
    pub fn load_durable<M: Medium>(
        &mut self,
        log: &mut Log<M>,
        redelivery: &RedeliveryConfig,
        recovered_tail: u64,
        previous_stop_clean: bool,
        routes: &Routes,
    ) -> Result<(), log::LogError> {
        let mut loaded = Vec::new();
        for s in log.subscriptions() {
            let spec = match SubscriptionSpec::decode(s.spec()) {
                Ok(spec) => spec,
                Err(e) => {
                    // Hold everything for it rather than guess its filters.
                    tracing::warn!(subscription = %String::from_utf8_lossy(s.name()), error = %e, "durable subscription spec unreadable; it receives every event");
                    SubscriptionSpec::match_all()
                }
            };
            let policy = redelivery.policy(spec.ack_deadline_ms, spec.max_deliveries);
            let tracker = Tracker::new(s.cursor, spec.window_events, recovered_tail, policy);
            let mut sub = SubscriptionState::new(Some(s.id), spec, tracker);
            sub.paused = s.paused;
            // Recovering: it was (a damaged entry, a crash during an earlier recovery),
            // or the last run did not stop cleanly and events wait for it.
            let unsettled = log
                .events_from(Seq(s.cursor))
                .any(|e| sub.wants(&e, routes, log));
            let recovering = s.mode == SubscriptionMode::Recovering
                || s.damage.is_some()
                || (!previous_stop_clean && unsettled);
            if recovering {
                sub.replay_end = Some(recovered_tail);
            }
            loaded.push((s.id, s.mode, sub));
        }
        for (slot, (id, stored_mode, sub)) in loaded.into_iter().enumerate() {
            if sub.replay_end.is_some() && stored_mode != SubscriptionMode::Recovering {
                log.set_mode(id, SubscriptionMode::Recovering)?;
            }
            if sub.replay_end.is_some() {
                tracing::info!(subscription = %String::from_utf8_lossy(log.subscription(id).map_or(&b""[..], |e| e.name())), "recovering: unsettled events are replayed before anything new");
            }
            if let Some(place) = self.slots.get_mut(slot) {
                *place = Some(sub);
            }
        }
        Ok(())
    }

    /// Bytes of the table and every tracker's window.
    pub fn footprint_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<SubscriptionState>>()
            + self
                .slots
                .iter()
                .flatten()
                .map(|s| s.tracker.footprint_bytes())
                .sum::<usize>()
    }

    /// The subscription at `index`.
    pub fn get(&self, index: usize) -> Option<&SubscriptionState> {
        self.slots.get(index).and_then(|s| s.as_ref())
    }

    /// The subscription at `index`, to change it.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut SubscriptionState> {
        self.slots.get_mut(index).and_then(|s| s.as_mut())
    }

    /// Every subscription with its index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &SubscriptionState)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
    }

    /// Every subscription with its index, to change them.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut SubscriptionState)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.as_mut().map(|s| (i, s)))
    }

    /// The index of durable subscription `id`.
    pub fn index_of(&self, id: SubscriptionId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.durable == Some(id)))
    }

    /// Attaches `sink` to the subscription a `Subscribe` asked for (creating a durable
    /// one in `log`, or a live-only one), and returns its index. A live-only one starts
    /// at the tail. `group`: as a member of its work-queue group, sharing it with the
    /// other members (each event goes to one of them).
    pub fn attach<M: Medium>(
        &mut self,
        log: &mut Log<M>,
        name: &[u8],
        spec: SubscriptionSpec,
        redelivery: &RedeliveryConfig,
        sink: SinkId,
        group: bool,
    ) -> Result<usize, AttachError> {
        if group && name.is_empty() {
            return Err(AttachError::GroupNeedsName);
        }
        let index = if name.is_empty() {
            let i = self.free_slot()?;
            let policy = redelivery.policy(spec.ack_deadline_ms, spec.max_deliveries);
            let tracker = Tracker::new(log.tail().0, spec.window_events, 0, policy);
            self.slots[i] = Some(SubscriptionState::new(None, spec, tracker));
            i
        } else if let Some(i) = log
            .subscription_by_name(name)
            .map(|entry| entry.id)
            .and_then(|id| self.index_of(id))
        {
            let sub = self.slots[i].as_mut().ok_or(AttachError::NoSlot)?;
            if !sub.members.is_empty() && (!group || !sub.members.group()) {
                return Err(AttachError::NameInUse);
            }
            if !sub.spec.same_filters(&spec) {
                return Err(AttachError::OtherFilters);
            }
            if !sub.members.is_empty() {
                // Joining a group: the policy and recovery choice are the group's,
                // set by the member that came first; only the window is its own.
                join(sub, sink, spec.window_events, group)?;
                return Ok(self.joined(i));
            }
            // The redelivery policy is not a filter: each connection may ask anew
            // (0 keeps what the subscription was created with).
            let or_stored = |asked: u32, stored: u32| if asked == 0 { stored } else { asked };
            let policy = redelivery.policy(
                or_stored(spec.ack_deadline_ms, sub.spec.ack_deadline_ms),
                or_stored(spec.max_deliveries.into(), sub.spec.max_deliveries.into()) as u16,
            );
            sub.tracker.configure(spec.window_events, policy);
            // How the subscriber leaves recovery is its own choice on each connection,
            // like its window.
            sub.spec.automatic_recovery = spec.automatic_recovery;
            i
        } else {
            let i = self.free_slot()?;
            let mut stored = [0u8; log::layout::SUBSCRIPTION_SPEC_BYTES_MAX];
            let len = spec.encode(&mut stored);
            let id = log
                .create_subscription(name, &stored[..len])
                .map_err(|e| match e {
                    log::LogError::Subscription(log::SubscriptionError::TableFull(n)) => {
                        AttachError::TableFull(n)
                    }
                    other => AttachError::Log(other),
                })?;
            let cursor = log.subscription(id).map_or(log.tail().0, |s| s.cursor);
            let policy = redelivery.policy(spec.ack_deadline_ms, spec.max_deliveries);
            let tracker = Tracker::new(cursor, spec.window_events, 0, policy);
            self.slots[i] = Some(SubscriptionState::new(Some(id), spec, tracker));
            i
        };
        let dead_replays = self.slots[index]
            .as_ref()
            .and_then(|s| s.durable)
            .map_or(0, |id| {
                log.dead_letters_of(id)
                    .filter(|d| d.replay_requested)
                    .count() as u32
            });
        let sub = self.slots[index].as_mut().ok_or(AttachError::NoSlot)?;
        sub.dead_replays = dead_replays;
        join(sub, sink, spec.window_events, group)?;
        Ok(self.joined(index))
    }

    /// After a member joined subscription `index`: the tracker's window is every
    /// member's together.
    fn joined(&mut self, index: usize) -> usize {
        if let Some(sub) = self.slots[index].as_mut() {
            let policy = sub.tracker.policy();
            sub.tracker.configure(sub.members.window_sum(), policy);
        }
        index
    }

    /// Sink `sink` of subscription `index` went away: what it held is owed again (to
    /// the group's other members, or on the next attachment); a live-only
    /// subscription is forgotten.
    pub fn detach(&mut self, index: usize, sink: SinkId) {
        let Some(place) = self.slots.get_mut(index) else {
            return;
        };
        let Some(sub) = place.as_mut() else {
            return;
        };
        let Some(m) = sub.members.find(sink) else {
            return;
        };
        sub.members.leave(m);
        sub.tracker.disconnect_member(m);
        // Still marked for replay in the log: sent again (it may have been this
        // member's).
        sub.replaying = None;
        if !sub.members.is_empty() {
            let policy = sub.tracker.policy();
            sub.tracker.configure(sub.members.window_sum(), policy);
        } else if sub.durable.is_none() {
            *place = None;
        }
    }

    /// Events meant for subscription `index` from its cursor to the tail.
    pub fn pending<M: Medium>(&self, index: usize, log: &Log<M>, routes: &Routes) -> u64 {
        let Some(sub) = self.get(index) else {
            return 0;
        };
        log.events_from(Seq(sub.tracker.cursor()))
            .filter(|e| sub.wants(e, routes, log))
            .count() as u64
    }

    pub(super) fn free_slot(&self) -> Result<usize, AttachError> {
        self.slots
            .iter()
            .position(|s| s.is_none())
            .ok_or(AttachError::NoSlot)
    }
}

/// Adds `sink` to `sub`'s members.
fn join(
    sub: &mut SubscriptionState,
    sink: SinkId,
    window: u32,
    group: bool,
) -> Result<u8, AttachError> {
    sub.members.join(sink, window, group).map_err(|e| match e {
        JoinRefused::Taken => AttachError::NameInUse,
        JoinRefused::Full => AttachError::GroupFull(super::tracker::MEMBERS_MAX),
    })
}
