//! The comparison's results: one table for people, one JSON document with every
//! figure, the targets of issue 5 as ratios from the same run.

use super::workload::{Kind, Outcome, Plan, Workload, PAYLOAD_BYTES};
use super::System;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// What the scratch directory's file system makes of an fsync.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Medium {
    /// The file system's name (from its statfs magic number).
    pub filesystem: String,
    /// False on tmpfs and ramfs, where fsync reaches no disk.
    pub fsync_reaches_disk: bool,
}

impl Medium {
    /// The file system holding `path`.
    pub fn of(path: &Path) -> Medium {
        let magic = statfs_magic(path);
        let filesystem = match magic {
            Some(0xEF53) => "ext4".to_owned(),
            Some(0x5846_5342) => "xfs".to_owned(),
            Some(0x9123_683E) => "btrfs".to_owned(),
            Some(0x0102_1994) => "tmpfs".to_owned(),
            Some(0x8584_58f6) => "ramfs".to_owned(),
            Some(0x794c_7630) => "overlayfs".to_owned(),
            Some(m) => format!("file system magic {m:#x}"),
            None => "unknown".to_owned(),
        };
        Medium {
            fsync_reaches_disk: !matches!(magic, Some(0x0102_1994) | Some(0x8584_58f6)),
            filesystem,
        }
    }
}

fn statfs_magic(path: &Path) -> Option<u64> {
    let s = nix::sys::statfs::statfs(path).ok()?;
    Some(s.filesystem_type().0 as u64)
}

/// What a system's stored events survive, in this configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Durability {
    /// Survives a crash or kill of the process that stores it.
    pub process_crash: &'static str,
    /// Survives a power cut or kernel crash.
    pub power_cut: &'static str,
    /// The reason, in a sentence.
    pub text: String,
}

/// One workload's figures on one system.
pub struct Row {
    /// Which workload and payload.
    pub workload: Workload,
    /// What was measured and counted.
    pub outcome: Outcome,
}

impl Row {
    fn quantile_us(&self, q: f64) -> Option<f64> {
        self.outcome
            .latency
            .as_ref()
            .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
    }

    /// Stored and delivered counts both match what was published, where they apply.
    pub fn verified(&self) -> bool {
        let o = &self.outcome;
        o.stored.is_none_or(|s| s == o.published)
            && o.delivered_confirmed.is_none_or(|d| d == o.published)
    }
}

/// The latency curve of a histogram: (percentile, microseconds) from the fastest
/// sample to the 99.9th percentile, evenly spaced in "nines" (the median is at 0.3).
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=60)
        .map(|i| {
            let nines = 3.0 * i as f64 / 60.0;
            let q = 1.0 - 10f64.powf(-nines);
            (q * 100.0, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect()
}

/// Everything one system did.
pub struct SystemReport {
    /// Which system.
    pub system: System,
    /// Version and transport.
    pub description: String,
    /// What its stored events survive.
    pub durability: Option<Durability>,
    /// Why it did not run (or stopped), if it did not finish.
    pub error: Option<String>,
    /// One per workload and payload it ran.
    pub rows: Vec<Row>,
}

impl SystemReport {
    /// An empty report for `system`.
    pub fn new(system: System) -> SystemReport {
        SystemReport {
            system,
            description: String::new(),
            durability: None,
            error: None,
            rows: Vec::new(),
        }
    }

    /// Records one workload's outcome.
    pub fn add(&mut self, w: &Workload, outcome: Outcome) {
        self.rows.push(Row {
            workload: *w,
            outcome,
        });
    }

    /// Sets the description and durability.
    pub fn describe(&mut self, description: String, durability: Durability) {
        self.description = description;
        self.durability = Some(durability);
    }

    /// The median latency of workload `kind` with `payload_bytes`, if it ran.
    pub fn p50_us(&self, kind: Kind, payload_bytes: usize) -> Option<f64> {
        self.row(kind, payload_bytes)?.quantile_us(0.5)
    }

    /// The row of workload `kind` with `payload_bytes`.
    pub fn row(&self, kind: Kind, payload_bytes: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.workload.kind == kind && r.workload.payload_bytes == payload_bytes)
    }
}

/// One of issue 5's targets, as a ratio from this run.
#[derive(serde::Serialize)]
pub struct Target {
    /// What is compared.
    pub what: String,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// The ratio required (higher is better for herald).
    pub required: f64,
    /// The ratio measured, when both sides ran.
    pub measured: Option<f64>,
    /// Met or not.
    pub pass: Option<bool>,
    /// By how much it falls short, and the floors that explain it.
    pub note: String,
}

/// The whole comparison.
pub struct Report {
    quick: bool,
    plan: Plan,
    medium: Medium,
    /// Per system, in table order.
    pub systems: Vec<SystemReport>,
}

impl Report {
    /// Collects the systems' reports.
    pub fn new(quick: bool, plan: Plan, medium: Medium, systems: Vec<SystemReport>) -> Report {
        Report {
            quick,
            plan,
            medium,
            systems,
        }
    }

    fn system(&self, system: System) -> Option<&SystemReport> {
        self.systems.iter().find(|s| s.system == system)
    }

    fn figure(&self, system: System, kind: Kind, payload_bytes: usize) -> Option<f64> {
        let row = self.system(system)?.row(kind, payload_bytes)?;
        match kind {
            Kind::Throughput => row.outcome.events_per_second,
            _ => row.quantile_us(0.5),
        }
    }

    /// Every system ran every workload and stored and delivered every event.
    pub fn all_verified(&self) -> bool {
        self.systems
            .iter()
            .all(|s| s.error.is_none() && s.rows.iter().all(Row::verified))
    }

    /// The targets, for each payload size.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for payload_bytes in PAYLOAD_BYTES {
            let herald = self.figure(System::Herald, Kind::PublishLatency, payload_bytes);
            for (peer, required) in [
                (System::RedisAlways, 10.0),
                (System::RedisNo, 1.0),
                (System::Jetstream, 3.0),
            ] {
                let other = self.figure(peer, Kind::PublishLatency, payload_bytes);
                let measured = herald.zip(other).map(|(h, o)| o / h);
                let what = if required > 1.0 {
                    format!(
                        "durable publish p50 at least {required}x lower than {}",
                        peer.name()
                    )
                } else {
                    format!("durable publish p50 lower than {}", peer.name())
                };
                targets.push(self.target(
                    what,
                    payload_bytes,
                    required,
                    measured,
                    Kind::PublishLatency,
                ));
            }
            let herald = self.figure(System::Herald, Kind::Throughput, payload_bytes);
            let best = System::ALL
                .into_iter()
                .filter(|s| s.is_peer())
                .filter_map(|s| Some((s, self.figure(s, Kind::Throughput, payload_bytes)?)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let measured = herald.zip(best).map(|(h, (_, b))| h / b);
            let what = format!(
                "throughput at least 5x the best peer ({})",
                best.map_or("none ran", |(s, _)| s.name())
            );
            targets.push(self.target(what, payload_bytes, 5.0, measured, Kind::Throughput));
        }
        targets.extend(self.disk_targets());
        targets
    }

    /// Disk mode's targets: at least 2x Redis `appendfsync always` on each workload,
    /// and a publish p50 within 1.3x of one fdatasync (the physical floor).
    fn disk_targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for payload_bytes in PAYLOAD_BYTES {
            for (kind, what) in [
                (Kind::PublishLatency, "durable publish p50"),
                (Kind::EndToEnd, "publish -> delivered -> confirmed p50"),
                (Kind::Throughput, "throughput"),
            ] {
                let disk = self.figure(System::HeraldDisk, kind, payload_bytes);
                let redis = self.figure(System::RedisAlways, kind, payload_bytes);
                let measured = disk.zip(redis).map(|(d, r)| match kind {
                    Kind::Throughput => d / r,
                    _ => r / d,
                });
                let mut target = self.target(
                    format!("herald-disk {what} at least 2x better than redis-always"),
                    payload_bytes,
                    2.0,
                    measured,
                    kind,
                );
                if target.pass == Some(false) {
                    target.note = self.disk_note(kind, payload_bytes, measured);
                }
                targets.push(target);
            }
            // Higher is better in a target: the floor over herald, at least 1/1.3.
            let disk = self.figure(System::HeraldDisk, Kind::PublishLatency, payload_bytes);
            let floor = self.figure(System::Fdatasync, Kind::PublishLatency, payload_bytes);
            let measured = disk.zip(floor).map(|(d, f)| f / d);
            let mut target = self.target(
                "herald-disk publish p50 at most 1.3x one fdatasync (floor / herald >= 0.77)"
                    .to_owned(),
                payload_bytes,
                1.0 / 1.3,
                measured,
                Kind::PublishLatency,
            );
            if target.pass == Some(false) {
                target.note = self.disk_note(Kind::PublishLatency, payload_bytes, measured);
            }
            targets.push(target);
        }
        targets
    }

    /// Why disk mode falls short: its figure beside Redis's and the fdatasync floor's.
    fn disk_note(&self, kind: Kind, payload_bytes: usize, measured: Option<f64>) -> String {
        let figure = |s| {
            self.figure(s, kind, payload_bytes)
                .map_or("-".to_owned(), |f| format!("{f:.1}"))
        };
        let unit = if kind == Kind::Throughput {
            "events/s"
        } else {
            "us"
        };
        format!(
            "{:.2}x measured; herald-disk {} {unit}, redis-always {} {unit}, fdatasync floor {} {unit}",
            measured.unwrap_or(0.0),
            figure(System::HeraldDisk),
            figure(System::RedisAlways),
            figure(System::Fdatasync),
        )
    }

    fn target(
        &self,
        what: String,
        payload_bytes: usize,
        required: f64,
        measured: Option<f64>,
        kind: Kind,
    ) -> Target {
        // Strictly lower for "lower than", at least the factor otherwise.
        let pass = measured.map(|m| {
            if required == 1.0 {
                m > 1.0
            } else {
                m >= required
            }
        });
        let note = match (measured, pass) {
            (None, _) => "not measured (a system did not run)".to_owned(),
            (Some(_), Some(true)) => "PASS".to_owned(),
            (Some(m), _) => format!(
                "short by {:.1}x ({m:.2}x measured); {}",
                required / m,
                self.floors_note(kind, payload_bytes)
            ),
        };
        Target {
            what,
            payload_bytes,
            required,
            measured,
            pass,
            note,
        }
    }

    /// Why herald falls short, from what the floors measured in the same run.
    fn floors_note(&self, kind: Kind, payload_bytes: usize) -> String {
        let figure = |s| self.figure(s, kind, payload_bytes);
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        match (kind, figure(System::Herald), figure(System::Echo)) {
            (Kind::Throughput, Some(herald), echo) => format!(
                "herald {herald:.0} events/s; floors here: pipelined Unix-socket echo {}, \
                 store+flush+fence {}, libpmemlog {} events/s; herald's daemon and the {} \
                 producers share {cores} cores",
                echo.map_or("-".to_owned(), |e| format!("{e:.0}")),
                figure(System::RawFlush).map_or("-".to_owned(), |e| format!("{e:.0}")),
                figure(System::Pmemlog).map_or("-".to_owned(), |e| format!("{e:.0}")),
                super::workload::PRODUCERS
            ),
            (_, Some(herald), Some(echo)) if herald <= echo => format!(
                "herald's p50 {herald:.1} us is within this machine's Unix-socket round trip \
                 ({echo:.1} us, echo floor): the round trip, not herald's store, bounds the \
                 ratio at the peer's p50 over it"
            ),
            (_, Some(herald), Some(echo)) => format!(
                "herald's p50 {herald:.1} us is this machine's Unix-socket round trip \
                 ({echo:.1} us, echo floor) plus {:.1} us; the ratio cannot exceed the \
                 peer's p50 over the round trip",
                herald - echo
            ),
            _ => "the floors did not run".to_owned(),
        }
    }

    /// The table, the durability legend and the targets, for people.
    pub fn print_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "\nherald bench peers{}: {} cores; scratch file system {}{}",
            if self.quick {
                " --quick (smoke run: figures not comparable)"
            } else {
                ""
            },
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.medium.filesystem,
            if self.medium.fsync_reaches_disk {
                ""
            } else {
                " (fsync reaches no disk: nothing here survives a power cut)"
            }
        )?;
        writeln!(
            out,
            "{:<13} {:<7} {:<14} {:>9} {:>9} {:>9} {:>11} {:>8} {:>8} {:>13} {:>13}",
            "system",
            "crash",
            "power cut",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "events/s",
            "vs herald",
            "events",
            "stored",
            "delivered"
        )?;
        for kind in Kind::ALL {
            for payload_bytes in PAYLOAD_BYTES {
                writeln!(out, "\n{} - {payload_bytes} B payload", kind.title())?;
                let herald = self.figure(System::Herald, kind, payload_bytes);
                for s in &self.systems {
                    self.print_row(out, s, kind, payload_bytes, herald)?;
                }
            }
        }
        writeln!(
            out,
            "\nvs herald: latency rows, p50 / herald's p50 (above 1: slower than herald); throughput rows, events/s / herald's."
        )?;
        writeln!(out, "stored, delivered: counts read back from each system itself; 'ok' = all published events.")?;
        writeln!(
            out,
            "end to end: events/s is the steady load offered, {} or a quarter of what the system reached one publish at a time, whichever is lower.",
            self.plan.end_to_end_rate_per_second
        )?;
        for s in &self.systems {
            if let Some(e) = &s.error {
                writeln!(out, "\n{} FAILED: {e}", s.system.name())?;
            }
        }
        writeln!(out, "\ndurability in this configuration:")?;
        for s in &self.systems {
            let text = s.durability.as_ref().map_or("", |d| d.text.as_str());
            writeln!(
                out,
                "  {:<13} {} [{}]",
                s.system.name(),
                text,
                s.description
            )?;
        }
        writeln!(out, "\ntargets (ratios from this run):")?;
        for t in self.targets() {
            writeln!(out, "  {:>5} B  {:<62} {}", t.payload_bytes, t.what, t.note)?;
        }
        Ok(())
    }

    fn print_row(
        &self,
        out: &mut impl Write,
        s: &SystemReport,
        kind: Kind,
        payload_bytes: usize,
        herald: Option<f64>,
    ) -> std::io::Result<()> {
        let name = s.system.name();
        let (crash, power) = s
            .durability
            .as_ref()
            .map_or(("", ""), |d| (d.process_crash, d.power_cut));
        let Some(row) = s.row(kind, payload_bytes) else {
            let why = match (&s.error, kind) {
                (Some(_), _) => "FAILED (see below)",
                (None, Kind::EndToEnd) => "n/a (delivers nothing)",
                (None, _) => "n/a",
            };
            return writeln!(out, "{name:<13} {crash:<7} {power:<14} {why}");
        };
        let o = &row.outcome;
        // Two decimals below 10 us: the in-process floors take tens of nanoseconds.
        let us = |q| {
            row.quantile_us(q).map_or("-".to_owned(), |v| {
                if v < 10.0 {
                    format!("{v:.2}")
                } else {
                    format!("{v:.1}")
                }
            })
        };
        let eps = o
            .events_per_second
            .map_or("-".to_owned(), |v| format!("{v:.0}"));
        let mine = self.figure(s.system, kind, payload_bytes);
        let ratio = herald
            .zip(mine)
            .map_or("-".to_owned(), |(h, m)| format!("{:.2}x", m / h));
        let count = |c: Option<u64>| match c {
            None => "n/a".to_owned(),
            Some(c) if c == o.published => "ok".to_owned(),
            Some(c) => format!("LOST {c}"),
        };
        writeln!(
            out,
            "{name:<13} {crash:<7} {power:<14} {:>9} {:>9} {:>9} {eps:>11} {ratio:>8} {:>8} {:>13} {:>13}",
            us(0.5),
            us(0.99),
            us(0.999),
            o.published,
            count(o.stored),
            count(o.delivered_confirmed)
        )
    }

    /// Every figure, for machines.
    pub fn json(&self) -> Value {
        let systems: Vec<Value> = self
            .systems
            .iter()
            .map(|s| {
                json!({
                    "system": s.system.name(),
                    "role": if s.system == System::Herald { "herald" } else if s.system.is_peer() { "peer" } else { "floor" },
                    "description": s.description,
                    "durability": s.durability,
                    "available": s.error.is_none(),
                    "error": s.error,
                })
            })
            .collect();
        let mut results = Vec::new();
        for s in &self.systems {
            for row in &s.rows {
                let o = &row.outcome;
                let (kind, payload_bytes) = (row.workload.kind, row.workload.payload_bytes);
                let herald = self.figure(System::Herald, kind, payload_bytes);
                let mine = self.figure(s.system, kind, payload_bytes);
                results.push(json!({
                    "system": s.system.name(),
                    "workload": kind,
                    "payload_bytes": payload_bytes,
                    "p50_us": row.quantile_us(0.5),
                    "p99_us": row.quantile_us(0.99),
                    "p999_us": row.quantile_us(0.999),
                    "latency_samples": o.latency.as_ref().map(|h| h.len()),
                    "latency_curve_percentile_us": o.latency.as_ref().map(curve),
                    "events_per_second": o.events_per_second,
                    "relative_to_herald": herald.zip(mine).map(|(h, m)| m / h),
                    "published": o.published,
                    "stored": o.stored,
                    "delivered_confirmed": o.delivered_confirmed,
                    "verified": row.verified(),
                }));
            }
        }
        json!({
            "herald_version": env!("CARGO_PKG_VERSION"),
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "quick": self.quick,
            "plan": self.plan,
            "scratch_medium": self.medium,
            "systems": systems,
            "results": results,
            "targets": self.targets(),
            "all_verified": self.all_verified(),
        })
    }
}
