//! Where `herald serve`'s settings come from: built-in defaults, a TOML file, `HERALD_*`
//! environment variables and flags, each layer winning over the one before.
//!
//! The flags of [`ServeArgs`](crate::serve::ServeArgs) are the one table of settings.
//! A setting's file key is its flag's name in snake case (`--connections-max`:
//! `connections_max`), its environment variable is `HERALD_` and the key in upper case
//! (`HERALD_CONNECTIONS_MAX`), and its value is read by the flag's own parser whichever
//! layer it comes from, so no setting is written down twice.
//!
//! How the layers are put together, over clap: the environment variables are attached
//! to the flags (clap reads them below the command line); the file's values, once each
//! has been checked with its flag's parser, become the flags' defaults; the command
//! line is then parsed again. clap keeps where each value came from, and the file's
//! lines are known, so `herald config check` can say it for every setting.

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The configuration file read when `--config` is not given, if it exists.
pub const DEFAULT_PATH: &str = "/etc/herald/herald.toml";

/// Arguments of serve's that are not settings: they have no file key.
const NOT_SETTINGS: &[&str] = &["config"];

/// The subcommands whose arguments are [`ServeArgs`](crate::serve::ServeArgs), by
/// their path from the top.
const SETTINGS_COMMANDS: &[&[&str]] = &[&["serve"], &["config", "check"]];

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Built in.
    Default,
    /// The configuration file, at this line.
    File(PathBuf, usize),
    /// This environment variable.
    Env(String),
    /// The command line.
    Flag,
    /// Not set anywhere, and without a default.
    Unset,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(path, line) => write!(f, "{}:{line}", path.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Flag => write!(f, "flag"),
            Source::Unset => write!(f, "not set"),
        }
    }
}

/// One setting as the daemon will run with it.
#[derive(Clone, Debug)]
pub struct Setting {
    /// The file key (`connections_max`).
    pub key: String,
    /// The flag (`--connections-max`).
    pub flag: String,
    /// The environment variable.
    pub env: String,
    /// The value as written where it came from (None: unset).
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
}

/// The configuration of a `serve` or `config check` command line.
#[derive(Clone, Debug)]
pub struct Effective {
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    /// Every setting, in the order of `herald serve --help`.
    pub settings: Vec<Setting>,
    /// The file's access policy (`[[access]]` rules), if it has one.
    pub access: Option<crate::access::AccessConfig>,
}

/// A configuration that cannot be used: every problem found, each naming the file, the
/// line and the key.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.join("\nherald: "))
    }
}

/// The environment variable of a setting: `HERALD_` and its key in upper case.
pub fn env_var(key: &str) -> String {
    format!("HERALD_{}", key.to_ascii_uppercase())
}

/// The keys of every setting: the arguments of `ServeArgs` (`config check` flattens
/// them beside flags of its own, which are not settings).
pub fn setting_keys() -> Vec<String> {
    use clap::Args;
    crate::serve::ServeArgs::augment_args(Command::new("serve"))
        .get_arguments()
        .map(|a| a.get_id().as_str().to_owned())
        .filter(|id| !NOT_SETTINGS.contains(&id.as_str()))
        .collect()
}

/// The command with every setting's environment variable attached (where a flag does
/// not name its own, as `--log-level` names `RUST_LOG`). Parsing, `--help`, the man
/// pages and the completions all use this command.
pub fn with_env(command: Command) -> Command {
    let keys = setting_keys();
    let mut command = command;
    for path in SETTINGS_COMMANDS {
        command = at(command, path, &mut |c: Command| {
            c.mut_args(|arg| {
                if keys.iter().any(|k| k == arg.get_id()) && arg.get_env().is_none() {
                    let var = env_var(arg.get_id().as_str());
                    arg.env(var)
                } else {
                    arg
                }
            })
        });
    }
    command
}

/// Applies `f` to the subcommand at `path`.
fn at(command: Command, path: &[&str], f: &mut dyn FnMut(Command) -> Command) -> Command {
    match path.split_first() {
        None => f(command),
        Some((name, rest)) => command.mut_subcommand(*name, |c| at(c, rest, f)),
    }
}

/// Parses the command line `argv` over `command` (from [`with_env`]), with the
/// configuration file under it for `serve` and `config check`. Usage errors exit as
/// clap's do (status 2); a configuration that cannot be used is a [`ConfigError`].
pub fn parse(
    command: Command,
    argv: &[OsString],
) -> Result<(ArgMatches, Option<Effective>), ConfigError> {
    let matches = match command.clone().try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(e) => match bad_environment(&command, &e) {
            Some(problem) => return Err(ConfigError(vec![problem])),
            None => e.exit(),
        },
    };
    let Some((path, sub)) = settings_command(&matches) else {
        return Ok((matches, None));
    };
    let file = match sub.get_one::<PathBuf>("config") {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    };
    let Some(file) = file else {
        let effective = effective(
            settings_of(&command, path),
            sub_matches(&matches, path),
            None,
            &[],
        );
        return Ok((matches, Some(effective)));
    };
    let args = settings_of(&command, path);
    let (values, access) = read_file(&file, &args)?;
    let layered = at(command, path, &mut |mut c: Command| {
        for v in &values {
            c = c.mut_arg(&v.key, |a| a.default_value(v.value.clone()));
        }
        c
    });
    let matches = layered
        .clone()
        .try_get_matches_from(argv)
        .unwrap_or_else(|e| e.exit());
    let mut effective = effective(
        settings_of(&layered, path),
        sub_matches(&matches, path),
        Some(&file),
        &values,
    );
    effective.access = access;
    Ok((matches, Some(effective)))
}

/// When clap refused a setting's value that came from its environment variable (clap's
/// message names only the flag): the variable, its value and why.
fn bad_environment(command: &Command, error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    SETTINGS_COMMANDS.iter().find_map(|path| {
        settings_of(command, path).into_iter().find_map(|arg| {
            let long = arg.get_long()?;
            let var = arg.get_env()?;
            let value = std::env::var_os(var)?;
            let named = flag == &format!("--{long}") || flag.starts_with(&format!("--{long} "));
            let value = value.to_string_lossy();
            let why = check_value(&arg, &value).err()?;
            named.then(|| format!("environment variable {}: {why}", var.to_string_lossy()))
        })
    })
}

/// The path and the matches of a settings subcommand, if that is what was run.
fn settings_command(matches: &ArgMatches) -> Option<(&'static [&'static str], &ArgMatches)> {
    SETTINGS_COMMANDS.iter().find_map(|path| {
        let mut m = matches;
        for name in path.iter() {
            match m.subcommand() {
                Some((n, sub)) if n == *name => m = sub,
                _ => return None,
            }
        }
        Some((*path, m))
    })
}

fn sub_matches<'a>(matches: &'a ArgMatches, path: &[&str]) -> &'a ArgMatches {
    path.iter().fold(matches, |m, name| {
        m.subcommand_matches(name)
            .expect("the path was matched before")
    })
}

/// The setting arguments of the subcommand at `path`.
fn settings_of(command: &Command, path: &[&str]) -> Vec<Arg> {
    let keys = setting_keys();
    let sub = path.iter().fold(command, |c, name| {
        c.find_subcommand(name).expect("settings subcommands exist")
    });
    sub.get_arguments()
        .filter(|a| keys.iter().any(|k| k == a.get_id()))
        .cloned()
        .collect()
}

/// A value from the file, checked by its flag's parser.
#[derive(Clone, Debug)]
struct FileValue {
    key: String,
    value: String,
    line: usize,
}

type SpannedTable = std::collections::BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>>;

/// Reads the file and checks every key and value, and its access rules; every problem
/// is reported, in the file's order.
fn read_file(
    path: &Path,
    args: &[Arg],
) -> Result<(Vec<FileValue>, Option<crate::access::AccessConfig>), ConfigError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(vec![format!(
            "cannot read the configuration file {shown}: {e}"
        )])
    })?;
    let table: SpannedTable = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(&text, s.start));
        ConfigError(vec![format!(
            "{shown}:{line}: not valid TOML: {}",
            e.message().trim_end()
        )])
    })?;
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in &table {
        let line = line_of(&text, key.span().start);
        let key = key.get_ref();
        if key == crate::access::KEY {
            continue;
        }
        let Some(arg) = args.iter().find(|a| a.get_id().as_str() == key) else {
            problems.push((
                line,
                format!(
                    "{shown}:{line}: unknown key {key:?}{}",
                    suggestion(key, args)
                ),
            ));
            continue;
        };
        let checked =
            scalar(value.get_ref()).and_then(|text| check_value(arg, &text).map(|()| text));
        match checked {
            Ok(value) => values.push(FileValue {
                key: key.clone(),
                value,
                line,
            }),
            Err(why) => problems.push((line, format!("{shown}:{line}: {key}: {why}"))),
        }
    }
    let access = match crate::access::read(&shown.to_string(), &text, crate::access::unrestricted())
    {
        Ok(access) => access,
        Err(mut found) => {
            problems.append(&mut found);
            None
        }
    };
    if problems.is_empty() {
        return Ok((values, access));
    }
    problems.sort_by_key(|(line, _)| *line);
    Err(ConfigError(problems.into_iter().map(|(_, p)| p).collect()))
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A TOML value as the text its flag would be given.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expects one value (a string or a number), not {} {other}",
            match other {
                toml::Value::Array(_) => "an array",
                toml::Value::Table(_) => "a table",
                _ => "a date",
            }
        )),
    }
}

/// Checks `value` with the flag's own parser: the same answer the command line gives.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().expect("settings are long flags");
    // A command of that one flag, with no environment variable to read.
    let probe = Command::new("herald")
        .arg(arg.clone().env(None::<&'static str>))
        .try_get_matches_from([String::from("herald"), format!("--{long}={value}")]);
    let error = match probe {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let names: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|p| p.get_name().to_owned())
        .collect();
    if !names.is_empty() {
        return Err(format!("{value:?} is not one of {}", names.join(", ")));
    }
    Err(match std::error::Error::source(&error) {
        // Most parsers name the value; humantime's, for one, does not.
        Some(why) if why.to_string().contains(value) => why.to_string(),
        Some(why) => format!("{value:?}: {why}"),
        None => error
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid value")
            .trim_start_matches("error: ")
            .to_owned(),
    })
}

/// ` (did you mean "..."?)` for a key close to a setting's.
fn suggestion(key: &str, args: &[Arg]) -> String {
    let closest = args
        .iter()
        .map(|a| a.get_id().as_str())
        .map(|k| (strsim::jaro(key, k), k))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((score, k)) if score > 0.8 => format!(" (did you mean {k:?}?)"),
        _ => " (`herald config example` lists every setting)".to_owned(),
    }
}

/// Every setting with its value and where it came from.
fn effective(
    args: Vec<Arg>,
    matches: &ArgMatches,
    file: Option<&Path>,
    values: &[FileValue],
) -> Effective {
    let settings = args
        .iter()
        .map(|arg| {
            let key = arg.get_id().as_str();
            let env = arg
                .get_env()
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_else(|| env_var(key));
            let value = matches
                .get_raw(key)
                .and_then(|mut raw| raw.next())
                .map(|v| v.to_string_lossy().into_owned());
            let source = match matches.value_source(key) {
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::EnvVariable) => Source::Env(env.clone()),
                Some(_) => match (file, values.iter().find(|v| v.key == key)) {
                    (Some(file), Some(v)) => Source::File(file.to_owned(), v.line),
                    _ => Source::Default,
                },
                None => Source::Unset,
            };
            Setting {
                key: key.to_owned(),
                flag: format!("--{}", arg.get_long().unwrap_or(key)),
                env,
                value,
                source,
            }
        })
        .collect();
    Effective {
        file: file.map(Path::to_owned),
        settings,
        access: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_counted_from_one() {
        let text = "a = 1\nb = 2\n\nc = 3\n";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, text.find('b').unwrap()), 2);
        assert_eq!(line_of(text, text.find('c').unwrap()), 4);
    }

    #[test]
    fn environment_variables_are_the_key_in_upper_case() {
        assert_eq!(env_var("connections_max"), "HERALD_CONNECTIONS_MAX");
        assert_eq!(env_var("io"), "HERALD_IO");
    }
}
