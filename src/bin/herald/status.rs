//! `herald status`: the daemon's state (region, ring, connections, subscriptions), as
//! JSON or as readable text.

use crate::parse;
use anyhow::Context;
use herald::client::Client;
use herald::protocol::Role;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// The daemon's data directory; its socket is DIR/herald.sock.
    #[arg(long, value_name = "DIR", default_value = parse::DATA_DIR_DEFAULT)]
    data_dir: PathBuf,
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    /// Print the daemon's JSON document as sent; when its subscription rows did not
    /// fit one frame, the rest are paged in (`subscriptions` admin requests) and the
    /// whole document is printed with every row.
    #[arg(long)]
    json: bool,
}

/// The hello's client name.
const CLIENT_NAME: &str = "herald-status";

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let endpoint = args.connect.endpoint(&args.data_dir)?;
    let socket = endpoint.shown();
    let mut client = Client::connect_to(&endpoint, Role::Control, CLIENT_NAME)?;
    let json = client.status()?;
    let mut value: Value = serde_json::from_str(&json).with_context(|| {
        format!(
            "herald at {} sent a status that is not valid JSON: {json}",
            socket.display()
        )
    })?;
    let paged = page_in_subscriptions(&mut client, &mut value)?;
    client.goodbye()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json && !paged {
        // As the daemon sent it.
        out.write_all(json.as_bytes())?;
        if !json.ends_with('\n') {
            writeln!(out)?;
        }
    } else if args.json {
        writeln!(out, "{value}")?;
    } else {
        render(&mut out, &value)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Asks for the subscription rows the status frame had no room for, page by page,
/// and appends them: the document then lists every subscription.
/// Returns whether there was anything to page in.
pub fn page_in_subscriptions(client: &mut Client, status: &mut Value) -> anyhow::Result<bool> {
    let paged = status.get("subscriptions_next").is_some();
    // Bounded: each page moves past at least one subscription of a bounded table.
    for _ in 0..herald::event::limits::SUBSCRIPTION_ENTRIES_MAX as usize
        + herald::event::limits::CONNECTIONS_MAX
    {
        let Some(next) = status.get("subscriptions_next").cloned() else {
            return Ok(paged);
        };
        let request =
            serde_json::json!({ "op": "subscriptions", "after_index": next["after_index"] });
        let page: Value = serde_json::from_str(&client.admin(&request.to_string())?)
            .context("the daemon's subscriptions page is not JSON")?;
        if let Some(e) = page.get("error") {
            anyhow::bail!("the daemon refused a subscriptions page: {e}");
        }
        let rows = page["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if rows.is_empty() {
            break;
        }
        let shown = status["subscriptions_shown"].as_u64().unwrap_or(0) + rows.len() as u64;
        if let Some(all) = status["subscriptions"].as_array_mut() {
            all.extend(rows);
        }
        status["subscriptions_shown"] = shown.into();
        match page.get("next") {
            Some(next) => {
                status["subscriptions_next"] =
                    serde_json::json!({ "after_index": next["after_index"] })
            }
            None => {
                if let Some(map) = status.as_object_mut() {
                    map.remove("subscriptions_next");
                }
            }
        }
    }
    Ok(paged)
}

/// Renders any JSON document readably: each top-level key a section, nested objects
/// indented, arrays of objects as tables. Keys the daemon adds later show up without a
/// change here.
fn render(out: &mut impl Write, value: &Value) -> std::io::Result<()> {
    match value {
        Value::Object(map) => render_map(out, map, 0),
        other => writeln!(out, "{}", scalar(other)),
    }
}

fn render_map(
    out: &mut impl Write,
    map: &Map<String, Value>,
    indent: usize,
) -> std::io::Result<()> {
    // Values on the key's line are aligned; sections and tables start their own lines.
    let width = map
        .iter()
        .filter(|(_, value)| !is_section(value) && !is_table(value))
        .map(|(key, _)| key.len())
        .max()
        .unwrap_or(0);
    for (key, value) in map {
        match value {
            Value::Object(inner) if is_section(value) => {
                writeln!(out, "{:indent$}{key}", "")?;
                render_map(out, inner, indent + 2)?;
            }
            Value::Array(items) if is_table(value) => {
                writeln!(out, "{:indent$}{key} ({})", "", items.len())?;
                render_table(out, items, indent + 2)?;
            }
            Value::Array(items) if items.is_empty() => {
                writeln!(out, "{:indent$}{key:<width$}  (none)", "")?;
            }
            Value::Array(items) => {
                let list: Vec<String> = items.iter().map(scalar).collect();
                writeln!(out, "{:indent$}{key:<width$}  {}", "", list.join(", "))?;
            }
            other => writeln!(out, "{:indent$}{key:<width$}  {}", "", scalar(other))?,
        }
    }
    Ok(())
}

fn is_section(value: &Value) -> bool {
    value.as_object().is_some_and(|map| !map.is_empty())
}

fn is_table(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|items| !items.is_empty() && items.iter().all(Value::is_object))
}

/// Rows of objects as a table: one column per key seen, `name` first when present.
fn render_table(out: &mut impl Write, rows: &[Value], indent: usize) -> std::io::Result<()> {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows.iter().filter_map(Value::as_object) {
        for key in row.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    if let Some(position) = columns.iter().position(|column| *column == "name") {
        let name = columns.remove(position);
        columns.insert(0, name);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .filter_map(Value::as_object)
        .map(|row| {
            columns
                .iter()
                .map(|column| row.get(*column).map(scalar).unwrap_or_default())
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            cells
                .iter()
                .map(|row| row[index].chars().count())
                .chain([column.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let header: Vec<String> = columns.iter().map(|column| column.to_string()).collect();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{:indent$}{}", "", line.join("  ").trim_end())?;
    }
    Ok(())
}

/// A value on one line: strings without quotes, anything nested as compact JSON.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(json: &str) -> String {
        let mut out = Vec::new();
        render(&mut out, &serde_json::from_str(json).unwrap()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn nested_objects_become_indented_sections_with_aligned_values() {
        let text = rendered(r#"{"ring":{"slot_count":1024,"head":7},"connections":{"count":2}}"#);
        assert_eq!(
            text,
            "connections\n  count  2\nring\n  head        7\n  slot_count  1024\n"
        );
    }

    #[test]
    fn arrays_of_objects_become_tables_with_the_name_column_first() {
        let text = rendered(
            r#"{"subscriptions":[{"cursor":5,"name":"audit","mode":"normal"},
                                 {"cursor":12,"name":"x","mode":"recovering"}],
                "empty":[]}"#,
        );
        assert_eq!(
            text,
            "empty  (none)\n\
             subscriptions (2)\n  \
             name   cursor  mode\n  \
             audit  5       normal\n  \
             x      12      recovering\n"
        );
    }
}
