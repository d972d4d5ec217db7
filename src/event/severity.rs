//! Severities: the syslog levels, as the wire, the log and the command line carry them.

use super::limits::SEVERITY_MAX;
use std::fmt;

/// Syslog severity. Lower is more severe; the number is what the wire and the log
/// store.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Severity {
    /// 0, `emerg`: the system is unusable.
    Emergency = 0,
    /// 1, `alert`: action must be taken immediately.
    Alert = 1,
    /// 2, `crit`: critical conditions.
    Critical = 2,
    /// 3, `err`: error conditions.
    Error = 3,
    /// 4, `warning`: warning conditions.
    Warning = 4,
    /// 5, `notice`: normal but significant.
    Notice = 5,
    /// 6, `info`: informational.
    Info = 6,
    /// 7, `debug`: debug-level messages.
    Debug = 7,
}

/// The syslog keywords, indexed by level.
const NAMES: [&str; SEVERITY_MAX as usize + 1] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; SEVERITY_MAX as usize + 1] = [
        Severity::Emergency,
        Severity::Alert,
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
        Severity::Info,
        Severity::Debug,
    ];

    /// The severity carrying `value` (received or stored); `None` outside 0..=7.
    pub const fn from_u8(value: u8) -> Option<Self> {
        if value <= SEVERITY_MAX {
            Some(Self::ALL[value as usize])
        } else {
            None
        }
    }

    /// The value on the wire and in the log.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The syslog keyword (`crit`, `warning`, …).
    pub const fn name(self) -> &'static str {
        NAMES[self as usize]
    }

    /// Parses a keyword (`crit`, also `error`/`warn`/`emergency`), in any case, or a
    /// number 0..=7.
    pub fn parse(text: &str) -> Option<Severity> {
        let lower = text.to_ascii_lowercase();
        let keyword = match lower.as_str() {
            "error" => "err",
            "warn" => "warning",
            "emergency" | "panic" => "emerg",
            "critical" => "crit",
            other => other,
        };
        if let Some(level) = NAMES.iter().position(|name| *name == keyword) {
            return Severity::from_u8(level as u8);
        }
        text.parse::<u8>().ok().and_then(Severity::from_u8)
    }

    /// Whether the event may use the reserve of slots kept for reporting exhaustion.
    pub const fn may_use_reserve(self) -> bool {
        self.as_u8() <= Severity::Critical.as_u8()
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const _: () = {
    let mut level = 0;
    while level < Severity::ALL.len() {
        assert!(Severity::ALL[level] as usize == level);
        level += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_parses_names_aliases_and_numbers_and_rejects_the_rest() {
        for severity in Severity::ALL {
            assert_eq!(Severity::parse(severity.name()), Some(severity));
            assert_eq!(
                Severity::parse(&severity.as_u8().to_string()),
                Some(severity)
            );
            assert_eq!(Severity::from_u8(severity.as_u8()), Some(severity));
        }
        assert_eq!(Severity::parse("ERROR"), Some(Severity::Error));
        assert_eq!(Severity::parse("warn"), Some(Severity::Warning));
        assert_eq!(Severity::parse("8"), None);
        assert_eq!(Severity::parse("loud"), None);
        assert_eq!(Severity::from_u8(8), None);
    }

    #[test]
    fn severities_print_as_their_syslog_keywords() {
        let printed: Vec<String> = Severity::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            printed,
            ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
        );
    }

    #[test]
    fn only_crit_and_above_may_use_the_reserve() {
        assert!(Severity::Emergency.may_use_reserve());
        assert!(Severity::Critical.may_use_reserve());
        assert!(!Severity::Error.may_use_reserve());
    }
}
