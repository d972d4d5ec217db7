//! Access control: who a connection is ([`Identity`]), what a configured [`Policy`]
//! lets each identity do, and the [`Grant`] a connection holds from its hello on.
//!
//! Without a policy every connection may do everything, as before policies existed:
//! the socket's mode (0600 by default) is then the only gate. With one, each rule
//! names a subject (a uid, or a group: its gid and the members the group database
//! listed at start) and what it may do: publish to topic patterns, subscribe to topic
//! patterns, use durable subscriptions whose names match name patterns, and `admin`
//! (status and operators' requests). A connection's rights are the union of the rules
//! naming it. The daemon's own user and root always have every right (they can read
//! the region directly anyway).
//!
//! The grant is computed once, at the hello, as the set of rules that apply (a bit
//! each, hence [`POLICY_RULES_MAX`]); checking a publish then walks the patterns of
//! those rules only: O(allowed patterns), no allocation.
//!
//! A refused frame is answered `forbidden` (PROTOCOL.md section 7) and the connection
//! stays open for what it may do. Refusals are logged with the identity, at most
//! [`REFUSAL_LINES_PER_SECOND`] lines a second (the rest are counted in the next line),
//! so a client hammering a forbidden topic cannot flood the log.

use crate::event::{covers_validated, matches_validated, Pattern, PatternError};
use crate::protocol::{Role, Subscribe, SUBSCRIPTION_NAME_BYTES_MAX};
use crate::reactor::PeerCredentials;
use std::fmt;

/// Rules a policy may hold: a grant is one bit per rule.
pub const POLICY_RULES_MAX: usize = 64;

/// Refusals logged per second at most; the rest are counted in the next line.
pub const REFUSAL_LINES_PER_SECOND: u32 = 10;

/// Who is at the other end of a connection.
///
/// A Unix socket's peer is named by the kernel; a TLS connection's by its client
/// certificate, once the handshake verified it ([`CertName`]). Grants and checks are
/// the same for both: a rule's [`Subject`] names one kind or the other.
// The certificate's name is inline (256 bytes, one per connection slot) so that an
// identity stays `Copy` and taking one allocates nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A Unix socket's peer, from `SO_PEERCRED` when the connection was accepted.
    Unix(PeerCredentials),
    /// A TLS client whose certificate the handshake verified against the configured
    /// CA: the name it carries (`crate::tls::peer_name`: the first DNS or URI SAN,
    /// else the CN).
    Certificate(CertName),
    /// The kernel gave no credentials, or a TLS handshake has not finished: no rule
    /// names it.
    Unknown,
}

/// Longest certificate name kept, in bytes: a DNS name's limit (253) with room to
/// spare. A longer name is no identity (no prefix of it stands for it).
pub const CERT_NAME_BYTES_MAX: usize = 255;

/// A client certificate's name, stored inline so that an [`Identity`] stays `Copy` and
/// allocates nothing.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct CertName {
    bytes: [u8; CERT_NAME_BYTES_MAX],
    len: u8,
}

impl CertName {
    /// `name`, if it fits [`CERT_NAME_BYTES_MAX`].
    pub fn new(name: &str) -> Option<CertName> {
        let len = name.len();
        if len == 0 || len > CERT_NAME_BYTES_MAX {
            return None;
        }
        let mut bytes = [0; CERT_NAME_BYTES_MAX];
        bytes[..len].copy_from_slice(name.as_bytes());
        Some(CertName {
            bytes,
            len: len as u8,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Built from a &str, whole: always UTF-8.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Identity {
    /// The identity of a peer the reactor described.
    pub fn of_peer(peer: Option<PeerCredentials>) -> Identity {
        peer.map_or(Identity::Unknown, Identity::Unix)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Unix(c) => write!(f, "uid {} gid {} pid {}", c.uid, c.gid, c.pid),
            Identity::Certificate(name) => write!(f, "certificate {:?}", name.as_str()),
            Identity::Unknown => write!(f, "unknown peer"),
        }
    }
}

/// Whom a rule names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A user id (a `user` name is resolved to it at start).
    Uid(u32),
    /// A group: peers whose group id is `gid`, and the users the group database listed
    /// as its members at start. `SO_PEERCRED` carries a process's effective gid only,
    /// so membership through supplementary groups comes from that list.
    Group {
        /// The group id.
        gid: u32,
        /// Its members' user ids.
        members: Vec<u32>,
    },
    /// A TLS client whose verified certificate carries this name (as
    /// [`Identity::Certificate`] takes it).
    Certificate(String),
}

impl Subject {
    fn names(&self, identity: &Identity) -> bool {
        match (self, identity) {
            (Subject::Uid(uid), Identity::Unix(peer)) => peer.uid == *uid,
            (Subject::Group { gid, members }, Identity::Unix(peer)) => {
                peer.gid == *gid || members.contains(&peer.uid)
            }
            (Subject::Certificate(name), Identity::Certificate(cert)) => cert.as_str() == name,
            _ => false,
        }
    }
}

/// One rule of a policy, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Whom it names.
    pub subject: Subject,
    /// How the configuration named it, and where (`user "fsd" (herald.toml:12)`), for
    /// log lines and `herald config check`.
    pub label: String,
    /// Topic patterns it may publish to.
    pub publish: Vec<String>,
    /// Topic patterns it may subscribe within: each pattern of a `Subscribe` must be
    /// covered by one of these.
    pub subscribe: Vec<String>,
    /// Durable subscription names it may create and attach: `*` stands for any run
    /// of characters (`billing-*`, `*`). A live-only subscription needs none.
    pub subscriptions: Vec<String>,
    /// Status and operators' requests (dead letters, subscriptions).
    pub admin: bool,
}

/// Why a rule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// More rules than a grant has bits.
    #[error(
        "{count} access rules; at most {POLICY_RULES_MAX}: merge rules that name the same subject"
    )]
    TooManyRules {
        /// Rules given.
        count: usize,
    },
    /// A topic pattern that breaks the grammar (PROTOCOL.md section 8).
    #[error("{label}: {field} pattern {pattern:?}: {error}")]
    Pattern {
        /// The rule.
        label: String,
        /// `publish` or `subscribe`.
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// Why.
        error: PatternError,
    },
    /// A subscription name pattern that is empty, too long or has a byte names cannot.
    #[error("{label}: subscriptions pattern {pattern:?}: {why}")]
    NamePattern {
        /// The rule.
        label: String,
        /// The pattern.
        pattern: String,
        /// Why.
        why: &'static str,
    },
}

/// The configured rules, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Users with every right whatever the rules say.
    unrestricted: Vec<u32>,
}

impl Policy {
    /// Checks `rules` (every pattern's grammar, their count). `unrestricted`: user ids
    /// that keep every right (the daemon's own user and root).
    pub fn new(rules: Vec<Rule>, unrestricted: Vec<u32>) -> Result<Policy, PolicyError> {
        if rules.len() > POLICY_RULES_MAX {
            return Err(PolicyError::TooManyRules { count: rules.len() });
        }
        for rule in &rules {
            for (field, patterns) in [("publish", &rule.publish), ("subscribe", &rule.subscribe)] {
                for pattern in patterns {
                    Pattern::parse(pattern.as_bytes()).map_err(|error| PolicyError::Pattern {
                        label: rule.label.clone(),
                        field,
                        pattern: pattern.clone(),
                        error,
                    })?;
                }
            }
            for pattern in &rule.subscriptions {
                check_name_pattern(pattern).map_err(|why| PolicyError::NamePattern {
                    label: rule.label.clone(),
                    pattern: pattern.clone(),
                    why,
                })?;
            }
        }
        Ok(Policy {
            rules,
            unrestricted,
        })
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The user ids with every right.
    pub fn unrestricted(&self) -> &[u32] {
        &self.unrestricted
    }

    /// What `identity` may do: the rules naming it.
    pub fn grant(&self, identity: &Identity) -> Grant {
        if let Identity::Unix(peer) = identity {
            if self.unrestricted.contains(&peer.uid) {
                return Grant::EVERYTHING;
            }
        }
        let mut grant = Grant::NOTHING;
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.subject.names(identity) {
                grant.rules |= 1 << index;
                grant.admin |= rule.admin;
                grant.publish |= !rule.publish.is_empty();
                grant.subscribe |= !rule.subscribe.is_empty();
            }
        }
        grant
    }

    /// The rules of `grant`, visiting its set bits only: a check costs the granted
    /// rules' patterns, whatever the size of the policy.
    fn granted<'p>(&'p self, grant: &Grant) -> impl Iterator<Item = &'p Rule> + 'p {
        let mut bits = grant.rules;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let index = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.rules.get(index)
        })
    }
}

/// Checks a subscription name pattern: 1..=64 bytes of a name's characters and `*`.
fn check_name_pattern(pattern: &str) -> Result<(), &'static str> {
    if pattern.is_empty() {
        return Err("empty (a live-only subscription needs no name, and no rule)");
    }
    if pattern.len() > SUBSCRIPTION_NAME_BYTES_MAX {
        return Err("longer than a subscription name can be (64 bytes)");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'*');
    if !pattern.bytes().all(allowed) {
        return Err("names are A-Z a-z 0-9 _ . - (and * stands for any run of them)");
    }
    Ok(())
}

/// Whether `name` matches `pattern`, where `*` stands for any run of bytes (none
/// included). Greedy with one backtrack point, so linear in practice and never
/// allocating; names are at most 64 bytes.
pub fn name_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((star_p, star_n)) = star {
            // Let the last `*` take one more byte.
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// What a connection may do, fixed at its hello: the rules of the policy that name its
/// identity (a bit each), or everything.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    rules: u64,
    everything: bool,
    admin: bool,
    publish: bool,
    subscribe: bool,
}

impl Grant {
    /// Every right: no policy, or an unrestricted user.
    pub const EVERYTHING: Grant = Grant {
        rules: 0,
        everything: true,
        admin: true,
        publish: true,
        subscribe: true,
    };
    /// No right at all (before the hello, or an identity no rule names).
    pub const NOTHING: Grant = Grant {
        rules: 0,
        everything: false,
        admin: false,
        publish: false,
        subscribe: false,
    };

    /// How many rules it comes from (for log lines).
    pub fn rule_count(&self) -> u32 {
        self.rules.count_ones()
    }
}

/// What was refused, with the message the client is sent.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A hello whose role allows nothing this identity may do.
    Role(Role),
    /// A publish (or an event of a batch) to a topic no granted pattern matches.
    Topic,
    /// A subscribe pattern no granted pattern covers.
    Pattern,
    /// A durable subscription name no granted name pattern matches.
    Name,
    /// Status or an operator's request without admin.
    Admin,
}

impl Refusal {
    /// The `Error` frame's message.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Role(Role::Producer) => "the access policy does not let this user publish: no publish pattern is granted (connect with a role it allows)",
            Refusal::Role(Role::Subscriber) => "the access policy does not let this user subscribe: no subscribe pattern is granted (connect with a role it allows)",
            Refusal::Role(Role::Both) => "the access policy does not let this user publish or subscribe",
            Refusal::Role(Role::Control) => "the access policy does not give this user admin rights: status and operator requests need them",
            Refusal::Topic => "the access policy does not let this user publish to this topic (a batch is refused whole); the connection stays open",
            Refusal::Pattern => "the access policy does not let this user subscribe to every pattern asked for: each must lie within a granted subscribe pattern",
            Refusal::Name => "the access policy does not let this user use this durable subscription name (a live-only subscription, with an empty name, needs none)",
            Refusal::Admin => "the access policy does not give this user admin rights: status and operator requests need them",
        }
    }

    /// A short name for log lines.
    pub fn what(self) -> &'static str {
        match self {
            Refusal::Role(_) => "role",
            Refusal::Topic => "publish",
            Refusal::Pattern => "subscribe",
            Refusal::Name => "subscription_name",
            Refusal::Admin => "admin",
        }
    }
}

/// The daemon's access control: the policy, if any, and the bounded log of refusals.
#[derive(Debug, Default)]
pub struct Access {
    policy: Option<std::sync::Arc<Policy>>,
    log: RefusalLog,
    /// Frames refused since the daemon started.
    pub refused: u64,
}

impl Access {
    /// Access under `policy` (None: every connection may do everything).
    pub fn new(policy: Option<std::sync::Arc<Policy>>) -> Access {
        Access {
            policy,
            log: RefusalLog::default(),
            refused: 0,
        }
    }

    /// Whether a policy is in force.
    pub fn restricted(&self) -> bool {
        self.policy.is_some()
    }

    /// What `identity` may do.
    pub fn grant(&self, identity: &Identity) -> Grant {
        match &self.policy {
            Some(policy) => policy.grant(identity),
            None => Grant::EVERYTHING,
        }
    }

    /// Whether a hello with `role` is allowed: the role must allow something the
    /// grant does.
    pub fn check_role(&self, grant: &Grant, role: Role) -> Result<(), Refusal> {
        let allowed = grant.everything
            || match role {
                Role::Producer => grant.publish,
                Role::Subscriber => grant.subscribe,
                Role::Both => grant.publish || grant.subscribe,
                Role::Control => grant.admin,
            };
        if allowed {
            Ok(())
        } else {
            Err(Refusal::Role(role))
        }
    }

    /// Whether a publish to `topic` is allowed: O(granted publish patterns).
    pub fn check_topic(&self, grant: &Grant, topic: &[u8]) -> Result<(), Refusal> {
        if grant.everything {
            return Ok(());
        }
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let allowed = policy.granted(grant).any(|rule| {
            rule.publish
                .iter()
                .any(|p| matches_validated(p.as_bytes(), topic))
        });
        if allowed {
            Ok(())
        } else {
            Err(Refusal::Topic)
        }
    }

    /// Whether a subscribe is allowed: its name (if durable) and every pattern. Returns
    /// the refusal and the pattern or name refused.
    pub fn check_subscribe<'s>(
        &self,
        grant: &Grant,
        subscribe: &Subscribe<'s>,
    ) -> Result<(), (Refusal, &'s [u8])> {
        if grant.everything {
            return Ok(());
        }
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let name = subscribe.name.as_bytes();
        if !name.is_empty()
            && !policy.granted(grant).any(|rule| {
                rule.subscriptions
                    .iter()
                    .any(|p| name_matches(p.as_bytes(), name))
            })
        {
            return Err((Refusal::Name, name));
        }
        for pattern in subscribe.patterns.iter() {
            let inner = pattern.as_bytes();
            let covered = policy.granted(grant).any(|rule| {
                rule.subscribe
                    .iter()
                    .any(|outer| covers_validated(outer.as_bytes(), inner))
            });
            if !covered {
                return Err((Refusal::Pattern, inner));
            }
        }
        Ok(())
    }

    /// Whether status and operators' requests are allowed.
    pub fn check_admin(&self, grant: &Grant) -> Result<(), Refusal> {
        if grant.everything || grant.admin {
            Ok(())
        } else {
            Err(Refusal::Admin)
        }
    }

    /// Counts a refusal and logs it, within the log's budget: the identity, the client
    /// name, what was refused and of what (a topic, a pattern, a name).
    pub fn refused(
        &mut self,
        now_ns: u64,
        identity: &Identity,
        grant: &Grant,
        client: &[u8],
        refusal: Refusal,
        subject: &[u8],
    ) {
        self.refused += 1;
        let Some(suppressed) = self.log.allow(now_ns) else {
            return;
        };
        tracing::warn!(
            identity = %identity,
            client = %String::from_utf8_lossy(client),
            refused = refusal.what(),
            subject = %String::from_utf8_lossy(subject),
            rules_naming_it = grant.rule_count(),
            refusals_not_logged_since_last_line = suppressed,
            "refused by the access policy; the connection stays open"
        );
    }
}

/// At most [`REFUSAL_LINES_PER_SECOND`] lines per second of the daemon's clock.
#[derive(Debug, Default)]
struct RefusalLog {
    window_start_ns: u64,
    lines: u32,
    suppressed: u64,
}

impl RefusalLog {
    /// Whether a line may go out now; if so, how many were held back before it.
    fn allow(&mut self, now_ns: u64) -> Option<u64> {
        if self.lines == 0 || now_ns.saturating_sub(self.window_start_ns) >= 1_000_000_000 {
            self.window_start_ns = now_ns;
            self.lines = 0;
        }
        if self.lines >= REFUSAL_LINES_PER_SECOND {
            self.suppressed += 1;
            return None;
        }
        self.lines += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests;
