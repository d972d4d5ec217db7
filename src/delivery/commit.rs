//! The commit pipeline around the log's group commit: every publish of a turn goes
//! into one group; the group's answers are **held** until its durability gate opens;
//! only then are they encoded, and only then may fan-out deliver the group's events.
//!
//! Order of durability for a group `g`:
//! 1. its events are stored into the ring and their cache lines flushed (ingest);
//! 2. `Batch::commit` fences them: durable on pmem, in the page cache of a file;
//! 3. the gate opens for `g`: at once for the fence ([`Gate::Fence`]); for a region
//!    synced to disk ([`Gate::Sync`]) when a sync begun after `g`'s commit completes
//!    (one sync at a time; the groups committed meanwhile ride on the next one, so the
//!    sync rate follows the load); the partner-acknowledgement gate (later) likewise;
//! 4. `Stored` for `g`, and every answer queued behind it on the same connections,
//!    are encoded; fan-out may read up to the group's end.
//!
//! Held answers wait in one FIFO. Every answer is queued with the group that is open
//! when it is queued, so groups in the queue never decrease and releasing is popping
//! the front while it is durable; a connection's answers stay in the order of its
//! frames.

use super::conn::{Conn, Connections};
use super::reply::{encode_reply, Identity, Reply};
use crate::log::{self, Batch, Committed, LogError};
use crate::pmem::Medium;
use crate::protocol::ErrorCode;
use std::collections::VecDeque;

/// Most answers held at once; past it, frames that need an answer wait to be read.
pub const HELD_REPLIES_MAX: usize = 16 * 1024;

/// When a committed group counts as durable.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The fence of the group commit is the durability point (pmem, or a file's page
    /// cache): the gate opens as the commit returns.
    Fence,
    /// A sync to disk, run asynchronously after the commit: the gate opens for every
    /// group committed before the sync began when it completes.
    Sync,
}

impl Gate {
    /// Its name in `status`.
    pub fn name(self) -> &'static str {
        match self {
            Gate::Fence => "fence",
            Gate::Sync => "sync",
        }
    }
}

/// A sync under way: its number, the last group it covers, and the log's tail when
/// it began (everything below is durable once it completes).
#[derive(Copy, Clone, Debug)]
struct SyncUnderWay {
    number: u64,
    last_group: u64,
    tail: u64,
}

#[derive(Copy, Clone, Debug)]
struct Held {
    slot: u32,
    generation: u32,
    group: u64,
    reply: Reply,
}

/// Group commits, the gate, and the answers held for them.
pub struct CommitPipeline {
    gate: Gate,
    /// The group now accumulating: answers queued now wait for it.
    open_group: u64,
    /// Every group up to and including this one is durable.
    durable_group: u64,
    /// Everything stored below this ring position is durable: fan-out reads up to it.
    durable_end: u64,
    held: VecDeque<Held>,
    identity: Identity,
    syncing: Option<SyncUnderWay>,
    /// Syncs completed (for `status`).
    pub syncs: u64,
}

impl CommitPipeline {
    /// A pipeline whose log's tail is `tail` (everything below it is durable: it was
    /// recovered).
    pub fn new(gate: Gate, tail: u64, identity: Identity) -> CommitPipeline {
        CommitPipeline {
            gate,
            open_group: 1,
            durable_group: 0,
            durable_end: tail,
            held: VecDeque::with_capacity(HELD_REPLIES_MAX),
            identity,
            syncing: None,
            syncs: 0,
        }
    }

    /// The group now accumulating (what is pushed now is committed with it).
    pub fn open_group(&self) -> u64 {
        self.open_group
    }

    /// Every group up to and including this one is durable.
    pub fn durable_group(&self) -> u64 {
        self.durable_group
    }

    /// Ring position below which every stored event is durable.
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    /// The gate in use.
    pub fn gate(&self) -> Gate {
        self.gate
    }

    /// Answers held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Bytes of the held-answers queue.
    pub fn footprint_bytes(&self) -> usize {
        self.held.capacity() * std::mem::size_of::<Held>()
    }

    /// Whether another answer can be held.
    pub fn has_room(&self) -> bool {
        self.held.len() < HELD_REPLIES_MAX
    }

    /// Queues an answer to `conn` (in slot `slot`). `durable`: it speaks of the open
    /// group's events (a `Stored`), so it waits for the gate. Any answer behind a held
    /// one on the same connection waits too, to keep the connection's order; others
    /// are encoded at once. The caller checked [`CommitPipeline::has_room`] and the
    /// connection's answer room.
    pub fn answer<S>(&mut self, conn: &mut Conn<S>, slot: usize, reply: Reply, durable: bool) {
        // A closing error closes: nothing behind it on this connection is read or
        // answered (PROTOCOL.md section 7).
        if reply.closes() {
            conn.close_after_flush = true;
        }
        if !durable && conn.held_replies == 0 {
            encode_reply(conn, slot, reply, self.identity);
            return;
        }
        conn.held_replies += 1;
        conn.held_bytes += reply.bytes();
        self.held.push_back(Held {
            slot: slot as u32,
            generation: conn.generation,
            group: self.open_group,
            reply,
        });
    }

    /// Commits `batch` as the open group. With the fence gate the group is durable
    /// when this returns `Ok`. On `Err` the log has failed: nothing of this group, nor
    /// of any group not yet durable, may be acknowledged ([`CommitPipeline::fail`]).
    pub fn commit<M: Medium>(
        &mut self,
        batch: Batch<'_, M>,
    ) -> Result<Option<Committed>, LogError> {
        let committed = batch.commit()?;
        // An empty group still closes: its answers (dedupe hits, errors behind held
        // answers) wait only for the groups before it.
        let group = self.open_group;
        self.open_group += 1;
        match self.gate {
            Gate::Fence => self.durable_group = group,
            Gate::Sync => {}
        }
        Ok(committed)
    }

    /// The log's tail after the last commit: with the fence gate, durable at once.
    pub fn committed_to(&mut self, tail: u64) {
        match self.gate {
            Gate::Fence => self.durable_end = self.durable_end.max(tail),
            Gate::Sync => {}
        }
    }

    /// A sync of everything written so far began (sync gate): it covers every group
    /// committed until now, and the log up to `tail`.
    pub fn sync_began(&mut self, number: u64, tail: u64) {
        self.syncing = Some(SyncUnderWay {
            number,
            last_group: self.open_group - 1,
            tail,
        });
    }

    /// Sync `number` completed: the groups it covers are durable.
    pub fn sync_completed(&mut self, number: u64) {
        let Some(s) = self.syncing.filter(|s| s.number == number) else {
            return;
        };
        self.syncing = None;
        self.syncs += 1;
        self.durable_group = self.durable_group.max(s.last_group);
        self.durable_end = self.durable_end.max(s.tail);
    }

    /// The sync gate with nothing written since the last sync and none under way:
    /// every group committed since wrote nothing, so their answers (dedupe hits,
    /// errors) are as durable as what came before them.
    pub fn nothing_to_sync(&mut self) {
        if self.gate == Gate::Sync && self.syncing.is_none() {
            self.durable_group = self.durable_group.max(self.open_group - 1);
        }
    }

    /// The number of the sync under way, as the reactor's token carries it.
    pub fn sync_token(&self) -> Option<u32> {
        self.syncing.map(|s| s.number as u32)
    }

    /// The number of the sync under way.
    pub fn sync_number(&self) -> Option<u64> {
        self.syncing.map(|s| s.number)
    }

    /// Whether a sync is under way.
    pub fn sync_in_flight(&self) -> bool {
        self.syncing.is_some()
    }

    /// Encodes every held answer whose group is durable into its connection.
    pub fn release<S>(&mut self, conns: &mut Connections<S>) {
        while let Some(front) = self.held.front() {
            if front.group > self.durable_group {
                break;
            }
            let Some(h) = self.held.pop_front() else {
                break;
            };
            let conn = conns.get_mut(h.slot as usize);
            if conn.generation != h.generation || !conn.in_use() {
                continue; // the connection is gone; so is what it was owed
            }
            conn.held_replies = conn.held_replies.saturating_sub(1);
            conn.held_bytes = conn.held_bytes.saturating_sub(h.reply.bytes());
            if !conn.closing {
                encode_reply(conn, h.slot as usize, h.reply, self.identity);
            }
        }
    }

    /// The log failed: every `Stored` not yet released becomes `internal`, and the
    /// rest of what is held goes out with it.
    pub fn fail<S>(&mut self, conns: &mut Connections<S>) {
        for h in self.held.iter_mut() {
            if let Reply::Stored { correlation, .. } = h.reply {
                let failed = Reply::error(
                    correlation,
                    ErrorCode::Internal,
                    "the persistent region failed; the event was not stored",
                );
                let conn = conns.get_mut(h.slot as usize);
                if conn.generation == h.generation {
                    conn.held_bytes = conn.held_bytes - h.reply.bytes() + failed.bytes();
                }
                h.reply = failed;
            }
        }
        self.durable_group = u64::MAX;
        self.release(conns);
    }
}

/// The error a publish gets when the log refuses it.
pub fn append_error(correlation: u64, e: &log::AppendError) -> Reply {
    let (code, message) = match e {
        log::AppendError::Full { .. } => (
            ErrorCode::Full,
            "the log is full: durable subscribers have not confirmed enough events; retry later",
        ),
        log::AppendError::TooLarge { .. } => (
            ErrorCode::TooLarge,
            "the event is larger than this region's payload limit",
        ),
        log::AppendError::Invalid(why) => (ErrorCode::Invalid, *why),
        // Ingest commits a full group and goes on; should one reach here, the publish
        // is refused, not lost silently.
        log::AppendError::GroupFull { .. } => (
            ErrorCode::Internal,
            "the group commit was full; publish again",
        ),
        log::AppendError::Failed(_) => (
            ErrorCode::Internal,
            "the persistent region failed; the event was not stored",
        ),
        log::AppendError::Exhausted { .. } => (
            ErrorCode::Internal,
            "the region's sequence numbers are exhausted; the operator must format a new region",
        ),
    };
    Reply::error(correlation, code, message)
}
