//! The region's invariants, checked the same way by `herald check` (read-only, on a
//! region at rest or in use) and by the daemon at start (on what recovery found).
//!
//! Lives in `subscription` because it needs the log's recovery findings and the
//! subscription spec encoding (whose decoding checks the pattern grammar).

use super::SubscriptionSpec;
use crate::log::dead::DeadProblemKind;
use crate::log::{RecoveryReport, Subscription};

/// How bad a finding is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Expected after a crash and already handled (a torn last group): nothing lost.
    Note,
    /// An inconsistency: data damaged, or state that had to be replaced by a
    /// conservative stand-in (the daemon keeps running and says so).
    Problem,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Note or problem.
    pub severity: Severity,
    /// Which part of the region: `ring`, `subscription`, `dead_letters`.
    pub area: &'static str,
    /// What exactly (a position range, a subscription name).
    pub subject: String,
    /// What is wrong, and what herald does about it.
    pub detail: String,
}

/// Checks what recovery found: damaged slots, subscription entries that failed their
/// checksums or whose cursors are impossible, specs that do not decode, stored
/// patterns outside the grammar, and names used twice.
pub fn check<'a>(
    report: &RecoveryReport,
    subscriptions: impl IntoIterator<Item = &'a Subscription>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for run in &report.corrupt {
        findings.push(Finding {
            severity: Severity::Problem,
            area: "ring",
            subject: format!("positions {}..{}", run.first, run.first + run.slots),
            detail: "slots of an older, fenced group fail their checksum; their events \
                     are skipped (the rest of the ring is intact)"
                .into(),
        });
    }
    if report.corrupt_slots > report.corrupt.iter().map(|r| r.slots).sum::<u64>() {
        findings.push(Finding {
            severity: Severity::Problem,
            area: "ring",
            subject: format!("{} damaged slots in all", report.corrupt_slots),
            detail: "more damaged runs than listed above".into(),
        });
    }
    for run in &report.holes {
        findings.push(Finding {
            severity: Severity::Note,
            area: "ring",
            subject: format!("positions {}..{}", run.first, run.first + run.slots),
            detail: "torn last group (never acknowledged to a producer): nothing lost".into(),
        });
    }
    for p in &report.subscription_problems {
        findings.push(Finding {
            severity: Severity::Problem,
            area: "subscription",
            subject: format!("{:?} (entry {})", p.name, p.index),
            detail: format!(
                "{}; it is put in recovery mode and replays from position {}",
                p.problem, p.cursor_used
            ),
        });
    }
    for p in &report.dead_letter_problems {
        findings.push(Finding {
            severity: Severity::Problem,
            area: "dead_letters",
            subject: match p.seq {
                Some(seq) => format!("record {} (seq {seq})", p.id),
                None => format!("record {}", p.id),
            },
            detail: match p.kind {
                DeadProblemKind::Damaged => format!(
                    "{}; not listed, and holds its slots until purged by its id",
                    p.problem
                ),
                DeadProblemKind::Orphan => format!(
                    "{}; listed with no subscription (`herald dead purge` cannot name it)",
                    p.problem
                ),
            },
        });
    }
    if report.dead_letter_slots > 0 && report.dead_letter_slots_used == report.dead_letter_slots {
        findings.push(Finding {
            severity: Severity::Note,
            area: "dead_letters",
            subject: format!("{} slots", report.dead_letter_slots),
            detail: "the dead-letter area is full: events given up on stay with their \
                     subscriptions (and hold the ring) until dead letters are purged"
                .into(),
        });
    }
    let mut names: Vec<(&[u8], u32)> = Vec::new();
    for s in subscriptions {
        if s.damage.is_none() {
            if let Some(detail) = spec_problem(s.spec()) {
                findings.push(Finding {
                    severity: Severity::Problem,
                    area: "subscription",
                    subject: format!("{:?} (entry {})", String::from_utf8_lossy(s.name()), s.id.0),
                    detail: format!("{detail}; it receives every event until recreated"),
                });
            }
        }
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == s.name()) {
            findings.push(Finding {
                severity: Severity::Problem,
                area: "subscription",
                subject: format!("{:?}", String::from_utf8_lossy(s.name())),
                detail: format!(
                    "the name is used by entries {first} and {}; the first one is attached",
                    s.id.0
                ),
            });
        } else {
            names.push((s.name(), s.id.0));
        }
    }
    findings
}

/// Why a stored spec cannot be used, if it cannot (decoding checks the patterns
/// against the grammar too).
fn spec_problem(stored: &[u8]) -> Option<String> {
    SubscriptionSpec::decode(stored)
        .err()
        .map(|e| e.to_string())
}

/// Whether any finding is a problem (not only notes).
pub fn has_problems(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::scan::{PositionRun, SubscriptionProblem};

    #[test]
    fn damage_and_impossible_cursors_are_problems_and_torn_groups_are_notes() {
        let report = RecoveryReport {
            corrupt: vec![PositionRun {
                first: 10,
                slots: 2,
            }],
            corrupt_slots: 2,
            holes: vec![PositionRun {
                first: 40,
                slots: 3,
            }],
            hole_slots: 3,
            subscription_problems: vec![SubscriptionProblem {
                index: 1,
                name: "ops".into(),
                problem: "cursor 99 is beyond the tail 43".into(),
                cursor_used: 5,
            }],
            ..RecoveryReport::default()
        };
        let findings = check(&report, []);
        assert_eq!(findings.len(), 3, "{findings:#?}");
        assert_eq!(findings[0].area, "ring");
        assert_eq!(findings[0].severity, Severity::Problem);
        assert_eq!(findings[1].severity, Severity::Note);
        assert!(findings[2].detail.contains("beyond the tail"));
        assert!(has_problems(&findings));
        assert!(!has_problems(&findings[1..2]));
    }

    #[test]
    fn unreadable_specs_and_invalid_stored_patterns_are_found() {
        assert!(spec_problem(&[9, 9, 9]).is_some());
        let good =
            SubscriptionSpec::new(crate::event::Severity::Debug, 4, false, [&b"fs.>"[..]]).unwrap();
        let mut out = [0u8; crate::log::layout::SUBSCRIPTION_SPEC_BYTES_MAX];
        let n = good.encode(&mut out);
        assert_eq!(spec_problem(&out[..n]), None);
        // The same entry with its pattern damaged into `a.>.` (outside the grammar).
        let mut bad = out;
        bad[n - 4..n].copy_from_slice(b"a.>.");
        assert!(spec_problem(&bad[..n]).unwrap().contains("pattern"));
    }
}
