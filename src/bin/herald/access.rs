//! The access policy of the configuration file: `[[access]]` tables, read with the line
//! of every key, user and group names resolved when the configuration is read (at
//! start), and checked against the socket's permissions.
//!
//! ```toml
//! [[access]]
//! user = "fsd"                  # or group = "...", uid = N, gid = N, or cert = "name"
//!                               # (a TLS client certificate's name): exactly one
//! publish = ["fs.>"]            # topic patterns it may publish to
//! subscribe = ["fs.*.error"]    # topic patterns its subscriptions must lie within
//! subscriptions = ["alerts-*"]  # durable subscription names it may use (* = any run)
//! admin = false                 # status, dead letters, subscriptions
//! ```
//!
//! The rules are not settings: no flag or environment variable sets them, and the
//! file is their one source.

use herald::delivery::access::{Policy, Rule, Subject};
use nix::unistd::{Gid, Group, Uid, User};
use std::collections::BTreeMap;
use std::sync::Arc;
use toml::Spanned;

/// The file key of the rules.
pub const KEY: &str = "access";

/// The keys of a rule.
const RULE_KEYS: &[&str] = &[
    "user",
    "group",
    "uid",
    "gid",
    "cert",
    "publish",
    "subscribe",
    "subscriptions",
    "admin",
];

/// The policy of a configuration file, and its rules as written.
#[derive(Clone, Debug)]
pub struct AccessConfig {
    /// The checked policy the daemon runs with.
    pub policy: Arc<Policy>,
    /// Each rule as the file wrote it, in the policy's order.
    pub written: Vec<WrittenRule>,
}

/// A rule as written, for `herald config check`.
#[derive(Clone, Debug)]
pub struct WrittenRule {
    /// The line of its `[[access]]` (or of its first key).
    pub line: usize,
    /// `user`, `group`, `uid`, `gid` or `cert`.
    pub subject_key: &'static str,
    /// The subject as written (TOML).
    pub subject_value: String,
    /// What it resolved to (`uid 1001`, `gid 3000 (members: uid 1001, uid 1002)`).
    pub resolved: String,
}

type Table = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(serde::Deserialize)]
struct File {
    access: Option<Spanned<Vec<Spanned<Table>>>>,
}

/// A problem at a line.
pub type Problem = (usize, String);

/// Reads the `[[access]]` rules of `text` (the file `shown`); None when there are none.
/// `unrestricted`: users with every right (the daemon's own and root).
pub fn read(
    shown: &str,
    text: &str,
    unrestricted: Vec<u32>,
) -> Result<Option<AccessConfig>, Vec<Problem>> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(s.start));
        vec![(
            line,
            format!(
                "{shown}:{line}: {KEY}: {} (rules are [[access]] tables)",
                e.message().trim_end()
            ),
        )]
    })?;
    let Some(tables) = file.access else {
        return Ok(None);
    };
    let mut problems = Vec::new();
    let mut rules = Vec::new();
    let mut written = Vec::new();
    for table in tables.get_ref() {
        let first_key = table.get_ref().keys().map(|k| k.span().start).min();
        let line = line_of(first_key.unwrap_or(table.span().start));
        match read_rule(shown, table.get_ref(), line, &line_of) {
            Ok((rule, w)) => {
                rules.push(rule);
                written.push(w);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|(line, _)| *line);
        return Err(problems);
    }
    let line = line_of(tables.span().start);
    let policy = Policy::new(rules, unrestricted)
        .map_err(|e| vec![(line, format!("{shown}:{line}: {KEY}: {e}"))])?;
    Ok(Some(AccessConfig {
        policy: Arc::new(policy),
        written,
    }))
}

fn read_rule(
    shown: &str,
    table: &Table,
    line: usize,
    line_of: &dyn Fn(usize) -> usize,
) -> Result<(Rule, WrittenRule), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut subject = None;
    // A subject was written, resolved or not (an unknown name is its own problem).
    let mut subject_written = false;
    let mut rule = Rule {
        subject: Subject::Uid(u32::MAX),
        label: String::new(),
        publish: Vec::new(),
        subscribe: Vec::new(),
        subscriptions: Vec::new(),
        admin: false,
    };
    for (key, value) in table {
        let at = line_of(key.span().start);
        let name = key.get_ref().as_str();
        let problem = |why: String| (at, format!("{shown}:{at}: {KEY}: {name}: {why}"));
        match name {
            "user" | "group" | "uid" | "gid" | "cert" => {
                subject_written = true;
                if let Some((other, _, _, _)) = &subject {
                    problems.push(problem(format!(
                        "a rule names one subject, and this one already names a {other}: \
                         write one [[access]] table for each"
                    )));
                    continue;
                }
                match resolve(name, value.get_ref()) {
                    Ok((s, resolved)) => {
                        let key: &'static str = RULE_KEYS
                            .iter()
                            .find(|k| **k == name)
                            .expect("a subject key");
                        subject = Some((key, value.get_ref().to_string(), s, resolved));
                    }
                    Err(why) => problems.push(problem(why)),
                }
            }
            "publish" | "subscribe" | "subscriptions" => match strings(value.get_ref()) {
                Ok(list) => match name {
                    "publish" => rule.publish = list,
                    "subscribe" => rule.subscribe = list,
                    _ => rule.subscriptions = list,
                },
                Err(why) => problems.push(problem(why)),
            },
            "admin" => match value.get_ref() {
                toml::Value::Boolean(b) => rule.admin = *b,
                other => problems.push(problem(format!("expects true or false, not {other}"))),
            },
            _ => problems.push((
                at,
                format!(
                    "{shown}:{at}: {KEY}: unknown key {name:?}{}",
                    suggestion(name)
                ),
            )),
        }
    }
    let Some((subject_key, subject_value, subject, resolved)) = subject else {
        if subject_written {
            return Err(problems);
        }
        problems.push((
            line,
            format!(
                "{shown}:{line}: {KEY}: the rule names nobody: give one of user, group, uid, gid, cert"
            ),
        ));
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    if rule.publish.is_empty() && rule.subscribe.is_empty() && !rule.admin {
        problems.push((
            line,
            format!(
                "{shown}:{line}: {KEY}: the rule for {subject_key} {subject_value} grants \
                 nothing: give publish, subscribe or admin (a user no rule names may do nothing)"
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    rule.subject = subject;
    rule.label = format!("{subject_key} {subject_value} ({shown}:{line})");
    // Each pattern's grammar now, so that a bad one names its line (the policy checks
    // them again, for callers of the library).
    check_patterns(shown, &rule, table, line_of)?;
    Ok((
        rule,
        WrittenRule {
            line,
            subject_key,
            subject_value,
            resolved,
        },
    ))
}

/// The grammar of every pattern of `rule`, each problem at its key's line.
fn check_patterns(
    shown: &str,
    rule: &Rule,
    table: &Table,
    line_of: &dyn Fn(usize) -> usize,
) -> Result<(), Vec<Problem>> {
    let at = |key: &str| {
        table
            .keys()
            .find(|k| k.get_ref() == key)
            .map_or(1, |k| line_of(k.span().start))
    };
    let one = Rule {
        subject: Subject::Uid(0),
        label: String::new(),
        ..rule.clone()
    };
    match Policy::new(vec![one], Vec::new()) {
        Ok(_) => Ok(()),
        Err(e) => {
            let key = match &e {
                herald::delivery::access::PolicyError::Pattern { field, .. } => *field,
                _ => "subscriptions",
            };
            let line = at(key);
            // The error names the rule by its label, which is empty here.
            let why = e.to_string();
            let why = why.trim_start_matches(": ");
            Err(vec![(line, format!("{shown}:{line}: {KEY}: {why}"))])
        }
    }
}

/// A list of strings.
fn strings(value: &toml::Value) -> Result<Vec<String>, String> {
    let toml::Value::Array(items) = value else {
        return Err(format!(
            "expects a list of strings, such as [\"fs.>\"], not {value}"
        ));
    };
    items
        .iter()
        .map(|item| match item {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(format!("expects strings, not {other}")),
        })
        .collect()
}

/// The subject named by `key = value`, and what it resolved to.
fn resolve(key: &str, value: &toml::Value) -> Result<(Subject, String), String> {
    match (key, value) {
        ("uid", toml::Value::Integer(n)) => {
            let uid = u32::try_from(*n).map_err(|_| format!("{n} is not a user id"))?;
            Ok((Subject::Uid(uid), format!("uid {uid}")))
        }
        ("gid", toml::Value::Integer(n)) => {
            let gid = u32::try_from(*n).map_err(|_| format!("{n} is not a group id"))?;
            let group = Group::from_gid(Gid::from_raw(gid)).ok().flatten();
            Ok(group_subject(gid, group))
        }
        ("user", toml::Value::String(name)) => match User::from_name(name) {
            Ok(Some(user)) => Ok((
                Subject::Uid(user.uid.as_raw()),
                format!("uid {}", user.uid.as_raw()),
            )),
            Ok(None) => Err(format!(
                "no user {name:?} on this host (names are resolved at start; uid = N names one by number)"
            )),
            Err(e) => Err(format!("cannot look up user {name:?}: {e}")),
        },
        ("group", toml::Value::String(name)) => match Group::from_name(name) {
            Ok(Some(group)) => Ok(group_subject(group.gid.as_raw(), Some(group))),
            Ok(None) => Err(format!(
                "no group {name:?} on this host (names are resolved at start; gid = N names one by number)"
            )),
            Err(e) => Err(format!("cannot look up group {name:?}: {e}")),
        },
        // A TLS client certificate's name, as the daemon reads it (the first DNS or URI
        // SAN, else the CN): nothing to resolve.
        ("cert", toml::Value::String(name)) if !name.is_empty() => Ok((
            Subject::Certificate(name.clone()),
            format!("certificate {name:?}"),
        )),
        ("uid" | "gid", other) => Err(format!("expects a number, not {other}")),
        (_, other) => Err(format!("expects a name (a string), not {other}")),
    }
}

/// A group subject: its gid and the members the group database lists (user names
/// that resolve; others are left out, as they could not connect as themselves).
fn group_subject(gid: u32, group: Option<Group>) -> (Subject, String) {
    let members: Vec<u32> = group
        .iter()
        .flat_map(|g| g.mem.iter())
        .filter_map(|name| User::from_name(name).ok().flatten())
        .map(|u| u.uid.as_raw())
        .collect();
    let resolved = if members.is_empty() {
        format!("gid {gid}")
    } else {
        let list: Vec<String> = members.iter().map(|u| format!("uid {u}")).collect();
        format!("gid {gid} (members: {})", list.join(", "))
    };
    (Subject::Group { gid, members }, resolved)
}

fn suggestion(key: &str) -> String {
    let closest = RULE_KEYS
        .iter()
        .map(|k| (strsim::jaro(key, k), *k))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((score, k)) if score > 0.8 => format!(" (did you mean {k:?}?)"),
        _ => format!(" (a rule's keys: {})", RULE_KEYS.join(", ")),
    }
}

/// The users with every right whatever the rules: root and the daemon's own user.
pub fn unrestricted() -> Vec<u32> {
    let mut uids = vec![0, Uid::effective().as_raw()];
    uids.dedup();
    uids
}

/// What the socket's permissions will be: its mode, its owner and its group.
pub struct SocketAccess {
    /// `socket_mode`.
    pub mode: u32,
    /// The daemon's user.
    pub owner: u32,
    /// `socket_group`, or the daemon's group.
    pub group: u32,
}

impl SocketAccess {
    /// The socket the daemon will bind: owned by its effective user, in `group` or its
    /// effective group.
    pub fn of_daemon(mode: u32, group: Option<u32>) -> SocketAccess {
        SocketAccess {
            mode,
            owner: Uid::effective().as_raw(),
            group: group.unwrap_or_else(|| Gid::effective().as_raw()),
        }
    }

    /// Whether the subject of `rule` may open the socket (connecting needs write
    /// permission on it). A user is in the socket's group when it is the user's
    /// primary group or the group database lists the user in it.
    fn lets_in(&self, subject: &Subject) -> bool {
        if self.mode & 0o002 != 0 {
            return true;
        }
        let group_may = self.mode & 0o020 != 0;
        match subject {
            Subject::Uid(uid) if *uid == self.owner => self.mode & 0o200 != 0,
            Subject::Uid(uid) => group_may && user_in_group(*uid, self.group),
            Subject::Group { gid, .. } => group_may && *gid == self.group,
            // Comes over TLS (--listen-tls), not through the socket.
            Subject::Certificate(_) => true,
        }
    }

    /// One line for each rule whose subject the socket's permissions keep out.
    pub fn shut_out(&self, access: &AccessConfig) -> Vec<String> {
        access
            .policy
            .rules()
            .iter()
            .filter(|rule| !self.lets_in(&rule.subject))
            .map(|rule| {
                let fix = match rule.subject {
                    Subject::Uid(_) => "socket_mode = 660 with socket_group a group the user is in",
                    Subject::Group { .. } => "socket_mode = 660 with socket_group this group",
                    Subject::Certificate(_) => "nothing: a certificate comes over TLS",
                };
                format!(
                    "the rule for {} cannot apply: the socket (mode {:04o}, owner uid {}, group \
                     gid {}) keeps its subject out; set {fix}, or socket_mode = 666 to let every \
                     user connect and the policy decide",
                    rule.label, self.mode, self.owner, self.group
                )
            })
            .collect()
    }
}

fn user_in_group(uid: u32, gid: u32) -> bool {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    if user.gid.as_raw() == gid {
        return true;
    }
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|groups| groups.iter().any(|g| g.as_raw() == gid))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Result<Option<AccessConfig>, Vec<Problem>> {
        read("herald.toml", text, vec![0])
    }

    fn problems(text: &str) -> Vec<String> {
        read_text(text)
            .expect_err("the file has problems")
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn rules_are_read_with_their_lines_and_names_resolved() {
        let text = "connections_max = 4\n\n[[access]]\nuser = \"root\"\npublish = [\"fs.>\"]\n\n[[access]]\ngid = 0\nsubscribe = [\"fs.*.error\"]\nsubscriptions = [\"alerts-*\"]\nadmin = true\n";
        let access = read_text(text).unwrap().expect("rules");
        let rules = access.policy.rules();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].subject, Subject::Uid(0));
        assert_eq!(rules[0].publish, ["fs.>"]);
        assert_eq!(rules[0].label, "user \"root\" (herald.toml:4)");
        assert!(matches!(rules[1].subject, Subject::Group { gid: 0, .. }));
        assert!(rules[1].admin);
        assert_eq!(rules[1].subscriptions, ["alerts-*"]);
        assert_eq!(access.written[0].line, 4);
        assert_eq!(access.written[1].line, 8);
        assert_eq!(access.written[0].resolved, "uid 0");
    }

    #[test]
    fn a_file_without_rules_has_no_policy() {
        assert!(read_text("connections_max = 4\n").unwrap().is_none());
    }

    #[test]
    fn unknown_keys_bad_values_and_unknown_names_name_the_line() {
        let p = problems("[[access]]\nuser = \"root\"\npublsh = [\"a\"]\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "herald.toml:3: access: unknown key \"publsh\" (did you mean \"publish\"?)"
            ),
            "{p:?}"
        );
        let p = problems("[[access]]\nuser = \"root\"\nadmin = false\n");
        assert!(
            p[0].starts_with("herald.toml:2: access: the rule for user \"root\" grants nothing"),
            "{p:?}"
        );
        let p = problems("[[access]]\nuser = \"no-such-user-here\"\npublish = [\"a\"]\n");
        assert!(
            p[0].starts_with("herald.toml:2: access: user: no user \"no-such-user-here\""),
            "{p:?}"
        );
        let p = problems("[[access]]\nuid = 7\npublish = \"fs.>\"\n");
        assert!(
            p[0].starts_with("herald.toml:3: access: publish: expects a list"),
            "{p:?}"
        );
        let p = problems("[[access]]\nuid = 7\n\npublish = [\"fs*\"]\n");
        assert!(
            p[0].starts_with("herald.toml:4: access: publish pattern \"fs*\""),
            "{p:?}"
        );
        let p =
            problems("[[access]]\nuid = 7\nsubscribe = [\"a\"]\nsubscriptions = [\"no way\"]\n");
        assert!(
            p[0].starts_with("herald.toml:4: access: subscriptions pattern"),
            "{p:?}"
        );
        let p = problems("[[access]]\nuid = 7\nuser = \"root\"\nadmin = true\n");
        assert!(p[0].contains("names one subject"), "{p:?}");
        let p = problems("[[access]]\npublish = [\"a\"]\n");
        assert!(
            p[0].starts_with("herald.toml:2: access: the rule names nobody"),
            "{p:?}"
        );
        let p = problems("[[access]]\nuid = -1\nadmin = true\n");
        assert!(p[0].contains("-1 is not a user id"), "{p:?}");
        let p = problems("[[access]]\nuid = 1\nadmin = \"yes\"\n");
        assert!(p[0].contains("admin: expects true or false"), "{p:?}");
        let p = problems("access = \"everyone\"\n");
        assert!(p[0].starts_with("herald.toml:1: access:"), "{p:?}");
    }

    #[test]
    fn the_socket_lets_in_only_whom_its_mode_and_group_allow() {
        let socket = SocketAccess {
            mode: 0o600,
            owner: 500,
            group: 600,
        };
        let group = |gid| Subject::Group {
            gid,
            members: vec![],
        };
        assert!(socket.lets_in(&Subject::Uid(500)));
        assert!(!socket.lets_in(&Subject::Uid(501)));
        assert!(!socket.lets_in(&group(600)));
        let socket = SocketAccess {
            mode: 0o660,
            ..socket
        };
        assert!(socket.lets_in(&group(600)));
        assert!(!socket.lets_in(&group(601)));
        // Root's primary group is gid 0 on every host this runs on.
        let root_group = SocketAccess {
            mode: 0o660,
            owner: 500,
            group: 0,
        };
        assert!(root_group.lets_in(&Subject::Uid(0)));
        let open = SocketAccess {
            mode: 0o666,
            ..socket
        };
        assert!(open.lets_in(&Subject::Uid(12345)));
    }
}
