//! `herald config check` and `herald config example`.

use crate::config::{Effective, Setting, Source};
use clap::{Arg, Command};
use std::process::ExitCode;

/// Arguments of `herald config`.
#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// What `herald config` does.
#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, environment, flags) and print the settings
    /// `herald serve` would run with, and where each value comes from.
    #[command(
        after_help = "Examples:\n  herald config check                                   # /etc/herald/herald.toml if it exists\n  herald config check --config herald.toml --connections-max 512\n  herald config check --json | jq '.settings[] | select(.source != \"default\")'\n\nTakes every flag `herald serve` takes. The output is itself a valid configuration file.\nExit status: 0 valid, 2 a key, value or flag that cannot be used (each named with its\nfile and line)."
    )]
    Check(Box<CheckArgs>),
    /// Print a configuration file listing every setting, commented out at its default
    /// (the file the Debian package installs as /etc/herald/herald.toml).
    Example,
}

/// Arguments of `herald config check`: serve's, and the output's form.
#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub serve: crate::serve::ServeArgs,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Settings whose value in the example (and so in the packaged /etc/herald/herald.toml)
/// is not the built-in default, each with the reason.
const PACKAGED: &[(&str, &str, &str)] = &[(
    "data_dir",
    "/var/lib/herald",
    "the packaged service's state directory (StateDirectory=herald in herald.service)",
)];

/// Columns of the example's and the check's comment text.
const WIDTH: usize = 88;

/// `herald config check`.
pub fn check(args: &CheckArgs, effective: &Effective) -> anyhow::Result<ExitCode> {
    let daemon = crate::serve::daemon_config(&args.serve);
    let region = daemon.region_path();
    let socket = daemon.socket_path();
    if args.json {
        let settings: Vec<serde_json::Value> =
            effective.settings.iter().map(json_setting).collect();
        let document = serde_json::json!({
            "file": effective.file,
            "settings": settings,
            "region": region,
            "socket": socket,
            "access": effective.access.as_ref().map(|a| json_access(a, &daemon)),
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("# The settings `herald serve` would run with, and where each value comes from.");
    match &effective.file {
        Some(file) => println!("# configuration file: {}", file.display()),
        None => println!(
            "# configuration file: none ({} does not exist)",
            crate::config::DEFAULT_PATH
        ),
    }
    for s in &effective.settings {
        let assignment = match &s.value {
            Some(value) => format!("{} = {}", s.key, toml_value(value)),
            None => format!("# {}", s.key),
        };
        println!("{assignment:<44} # {}", s.source);
    }
    println!("# region in use: {}", region.display());
    println!("# socket in use: {}", socket.display());
    print_access(effective, &daemon);
    Ok(ExitCode::SUCCESS)
}

/// The access rules as a configuration file would write them, each with its line and
/// what its subject resolved to, and the rules the socket's permissions keep out.
fn print_access(effective: &Effective, daemon: &herald::delivery::DaemonConfig) {
    let Some(access) = &effective.access else {
        println!(
            "# access policy: none (whoever can open the socket may do everything; \
             [[access]] rules restrict it)"
        );
        return;
    };
    let file = effective
        .file
        .as_ref()
        .map_or_else(String::new, |f| f.display().to_string());
    println!(
        "# access policy: {} rules; the daemon's user and root keep every right (uids {})",
        access.written.len(),
        join(access.policy.unrestricted())
    );
    for (rule, written) in access.policy.rules().iter().zip(&access.written) {
        println!();
        println!("{:<44} # {file}:{}", "[[access]]", written.line);
        let subject = format!("{} = {}", written.subject_key, written.subject_value);
        println!("{subject:<44} # {}", written.resolved);
        for (key, list) in [
            ("publish", &rule.publish),
            ("subscribe", &rule.subscribe),
            ("subscriptions", &rule.subscriptions),
        ] {
            if !list.is_empty() {
                println!("{key} = {}", toml_list(list));
            }
        }
        if rule.admin {
            println!("admin = true");
        }
    }
    let socket = crate::access::SocketAccess::of_daemon(daemon.socket_mode, daemon.socket_group);
    for line in socket.shut_out(access) {
        println!("# warning: {line}");
    }
}

fn json_access(
    access: &crate::access::AccessConfig,
    daemon: &herald::delivery::DaemonConfig,
) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = access
        .policy
        .rules()
        .iter()
        .zip(&access.written)
        .map(|(rule, written)| {
            serde_json::json!({
                "line": written.line,
                "subject": {
                    "key": written.subject_key,
                    "value": written.subject_value.trim_matches('"'),
                    "resolved": written.resolved,
                },
                "publish": rule.publish,
                "subscribe": rule.subscribe,
                "subscriptions": rule.subscriptions,
                "admin": rule.admin,
            })
        })
        .collect();
    let socket = crate::access::SocketAccess::of_daemon(daemon.socket_mode, daemon.socket_group);
    serde_json::json!({
        "rules": rules,
        "unrestricted_uids": access.policy.unrestricted(),
        "warnings": socket.shut_out(access),
    })
}

fn join(uids: &[u32]) -> String {
    uids.iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn toml_list(list: &[String]) -> String {
    toml::Value::Array(list.iter().cloned().map(toml::Value::String).collect()).to_string()
}

fn json_setting(s: &Setting) -> serde_json::Value {
    let (source, file, line) = match &s.source {
        Source::Default => ("default", None, None),
        Source::File(path, line) => ("file", Some(path.display().to_string()), Some(*line)),
        Source::Env(_) => ("env", None, None),
        Source::Flag => ("flag", None, None),
        Source::Unset => ("unset", None, None),
    };
    serde_json::json!({
        "key": s.key,
        "flag": s.flag,
        "env": s.env,
        "value": s.value,
        "source": source,
        "file": file,
        "line": line,
    })
}

/// A value as TOML writes it: a whole number bare, anything else a string.
fn toml_value(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) && value.len() < 19 {
        value.to_owned()
    } else {
        toml::Value::String(value.to_owned()).to_string()
    }
}

/// `herald config example`: written from serve's own flags, so that it lists every
/// setting with its help and default (a test keeps `dist/herald.toml` equal to it).
pub fn example(command: &Command) -> anyhow::Result<ExitCode> {
    let serve = command
        .find_subcommand("serve")
        .expect("herald has a serve subcommand");
    print!("{}", example_text(serve));
    Ok(ExitCode::SUCCESS)
}

fn example_text(serve: &Command) -> String {
    let mut out = String::new();
    out.push_str(&comment(
        "herald's configuration file, read by `herald serve` from /etc/herald/herald.toml \
         (or the file given with --config).",
    ));
    out.push_str("#\n");
    out.push_str(&comment(
        "Every setting is listed, commented out at its built-in default. A key is the flag's \
         name in snake case (--connections-max: connections_max); the environment variable \
         HERALD_<KEY> (HERALD_CONNECTIONS_MAX) wins over the file, and the flag wins over \
         both. Sizes and durations are strings (\"64M\", \"30s\"). An unknown key or a bad \
         value stops the daemon with the file and the line. `herald config check` shows \
         what the daemon would run with, and where each value comes from. Generated by \
         `herald config example`.",
    ));
    let keys = crate::config::setting_keys();
    let settings: Vec<&Arg> = serve
        .get_arguments()
        .filter(|a| keys.iter().any(|k| k == a.get_id()))
        .collect();
    // Grouped under their headings, in the order of `herald serve --help`.
    let heading = |a: &Arg| {
        a.get_help_heading()
            .unwrap_or("Region, socket and loop")
            .to_owned()
    };
    let mut headings: Vec<String> = Vec::new();
    for arg in &settings {
        if !headings.contains(&heading(arg)) {
            headings.push(heading(arg));
        }
    }
    for h in &headings {
        out.push_str(&format!("\n# == {h} ==\n"));
        for arg in settings.iter().filter(|a| &heading(a) == h) {
            out.push('\n');
            out.push_str(&setting_text(arg));
        }
    }
    out.push_str(&access_example());
    out
}

/// The example's access rules, commented out: there are none by default.
fn access_example() -> String {
    let mut out = String::from("\n# == Access control ==\n\n");
    out.push_str(&comment(
        "Without [[access]] rules, whoever can open the socket may do everything, and \
         socket_mode 600 (the default) lets only the daemon's user and root open it. With \
         rules, each connection may do what the rules naming its user or group allow (the \
         peer's uid and gid, from the kernel); anything else is answered `forbidden` and the \
         connection stays open for what it may do. The daemon's user and root keep every \
         right. Let the named users reach the socket: socket_mode = 660 with socket_group a \
         group they are in (and a data_dir they may enter), or socket_mode = 666. Names are \
         resolved at start; a group names its gid and the members the group database lists. \
         At most 64 rules; a user's rights are those of every rule naming it. Over TLS \
         (listen_tls), a connection is its client certificate's name (first DNS or URI SAN, \
         else CN), which a rule names with cert = \"NAME\". Rules are read from this file \
         only (no flag or environment variable).",
    ));
    for line in [
        "",
        "[[access]]",
        "group = \"fs-producers\"        # or user = \"NAME\", uid = N, gid = N, cert = \"NAME\"",
        "publish = [\"fs.>\"]            # topic patterns it may publish to",
        "",
        "[[access]]",
        "user = \"alerting\"",
        "subscribe = [\"fs.*.error\"]    # its subscriptions' patterns must lie within these",
        "subscriptions = [\"alerts-*\"]  # durable subscription names it may use (* = any run)",
        "",
        "[[access]]",
        "user = \"operator\"",
        "admin = true                  # status, dead letters, subscriptions",
    ] {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
    out
}

/// One setting of the example: its help, its flag and variable, its default.
fn setting_text(arg: &Arg) -> String {
    let key = arg.get_id().as_str();
    let mut help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    // clap drops the full stop of a one-sentence help.
    if !help.ends_with('.') {
        help.push('.');
    }
    let mut out = comment(&help);
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|p| p.get_name().to_owned())
        .collect();
    let env = arg
        .get_env()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut also = format!("--{}, {env}", arg.get_long().unwrap_or(key));
    if !values.is_empty() {
        also.push_str(&format!("; one of {}", values.join(", ")));
    }
    out.push_str(&format!("# ({also})\n"));
    let default = arg
        .get_default_values()
        .first()
        .map(|d| d.to_string_lossy().into_owned());
    match (PACKAGED.iter().find(|p| p.0 == key), default) {
        (Some((_, value, why)), default) => {
            out.push_str(&comment(&format!(
                "Set for {why}; built in: {}.",
                default.as_deref().map_or("none".into(), toml_value)
            )));
            out.push_str(&format!("{key} = {}\n", toml_value(value)));
        }
        (None, Some(default)) => out.push_str(&format!("# {key} = {}\n", toml_value(&default))),
        (None, None) => {
            let name = arg
                .get_value_names()
                .and_then(|n| n.first())
                .map_or("VALUE".into(), |n| n.to_string());
            out.push_str(&format!("# {key} = \"{name}\"    (not set by default)\n"));
        }
    }
    out
}

/// Text as `# ` comment lines of at most [`WIDTH`] columns.
fn comment(text: &str) -> String {
    let mut out = String::new();
    for paragraph in text.split("\n\n") {
        let mut line = String::from("#");
        for word in paragraph.split_whitespace() {
            if line.len() + 1 + word.len() > WIDTH && line.len() > 1 {
                out.push_str(&line);
                out.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_bare_and_the_rest_quoted() {
        assert_eq!(toml_value("128"), "128");
        assert_eq!(toml_value("64M"), "\"64M\"");
        assert_eq!(toml_value("a \"b\""), "'a \"b\"'");
        assert_eq!(toml_value(""), "\"\"");
    }

    #[test]
    fn comments_wrap_at_the_width() {
        let text = comment(&"word ".repeat(60));
        assert!(text
            .lines()
            .all(|l| l.len() <= WIDTH && l.starts_with("# ")));
    }
}
