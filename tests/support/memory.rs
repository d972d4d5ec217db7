//! The daemon's resident memory and the bound the README states for it ("Memory"),
//! shared by `tests/load.rs` (each load measured on its own) and the soak (sampled for
//! hours).

#![allow(dead_code)]

use herald::delivery::CONNECTION_SLOT_BYTES;

pub const KIB: u64 = 1024;

/// The README's bound ("Memory"). Beyond what the daemon has resident once started,
/// each connection makes resident at most its slot's buffers
/// ([`CONNECTION_SLOT_BYTES`], 484 KiB) plus this much...
pub const CONNECTION_EXTRA_BYTES: u64 = 16 * KIB;
/// ...each subscription at most its in-flight table (4,096 entries of 32 bytes,
/// allocated when it is attached or loaded, used as a ring: every page of it is touched
/// once 4,096 events have gone through it)...
pub const SUBSCRIPTION_TABLE_BYTES: u64 = 128 * KIB;
/// ...and, once, the daemon's own queues, allocated at start and made resident as they
/// are first used (the answers held for their commit, 16,384 entries, about 1.1 MiB;
/// the dead-letter queue), and what control requests (status, admin) leave allocated.
pub const DAEMON_QUEUES_BYTES: u64 = 4 << 20;

/// What the daemon served between two measurements of its memory.
#[derive(Copy, Clone, Debug)]
pub struct Load {
    /// Connections, control ones included.
    pub connections: u64,
    /// Subscriptions attached or loaded.
    pub subscriptions: u64,
    /// The region's size: its pages may all become resident.
    pub region_bytes: u64,
}

impl Load {
    /// Nothing new: connections in slots used before, subscriptions attached before.
    pub const NONE: Load = Load {
        connections: 0,
        subscriptions: 0,
        region_bytes: 0,
    };

    /// How much the daemon's own memory (`RssAnon`) may grow under this load.
    pub fn own_bound(&self) -> u64 {
        self.connections * (CONNECTION_SLOT_BYTES as u64 + CONNECTION_EXTRA_BYTES)
            + self.subscriptions * SUBSCRIPTION_TABLE_BYTES
            + DAEMON_QUEUES_BYTES
    }
}

/// Resident memory of a process, from `/proc/PID/status`, in bytes.
#[derive(Copy, Clone, Debug)]
pub struct Rss {
    /// `VmRSS`: everything resident.
    pub total: u64,
    /// `RssAnon`: the daemon's own allocations (buffers, tables).
    pub anon: u64,
    /// `RssFile`: pages of mapped files (the region).
    pub file: u64,
}

/// `pid`'s resident memory; None when it has gone (or /proc says nothing).
pub fn try_rss_of(pid: u32) -> Option<Rss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|k| k * KIB)
    };
    Some(Rss {
        total: field("VmRSS:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
    })
}

/// `pid`'s resident memory, which must be readable.
pub fn rss_of(pid: u32) -> Rss {
    try_rss_of(pid).unwrap_or_else(|| panic!("no VmRSS, RssAnon, RssFile in /proc/{pid}/status"))
}

/// How far the memory grew from one measurement to the next.
#[derive(Copy, Clone, Debug)]
pub struct Growth {
    pub total: u64,
    pub anon: u64,
    pub file: u64,
    /// [`Load::own_bound`].
    pub anon_bound: u64,
}

/// Checks the README's bound: from `before` to `after`, under `load`, the daemon's own
/// memory (`RssAnon`) grew by at most [`Load::own_bound`]; its mapped files (`RssFile`:
/// the region) by at most the region's size; and `VmRSS` by no more than both. Err
/// says which grew beyond its bound.
pub fn within_bound(before: Rss, after: Rss, load: Load) -> Result<Growth, String> {
    let growth = Growth {
        total: after.total.saturating_sub(before.total),
        anon: after.anon.saturating_sub(before.anon),
        file: after.file.saturating_sub(before.file),
        anon_bound: load.own_bound(),
    };
    if growth.anon > growth.anon_bound {
        return Err(format!(
            "the daemon's own resident memory grew by {} bytes with {load:?}, beyond the \
             documented {} ({before:?} -> {after:?})",
            growth.anon, growth.anon_bound
        ));
    }
    if growth.file > load.region_bytes {
        return Err(format!(
            "mapped files grew by {} bytes, more than the region's {} ({before:?} -> \
             {after:?})",
            growth.file, load.region_bytes
        ));
    }
    if growth.total > growth.anon_bound + load.region_bytes {
        return Err(format!(
            "VmRSS grew by {} bytes, beyond both bounds ({before:?} -> {after:?})",
            growth.total
        ));
    }
    Ok(growth)
}
