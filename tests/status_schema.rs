//! The status document is what PROTOCOL.md section 10.7 says: every top-level key and
//! every subscription-row field of the table is in the document the daemon sends, and
//! the document has none the table does not list.

#[path = "support/sim.rs"]
mod sim;

use herald::protocol::{Frame, Role};
use herald::sim::{hello, SimNode};
use sim::{subscriber, turns_until, Got};
use std::collections::BTreeSet;

fn section_10_7() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md")).unwrap();
    let start = doc
        .find("### 10.7 The status document")
        .expect("section 10.7");
    // It ends where the next section or subsection begins.
    let rest = &doc[start + 1..];
    let next = [rest.find("\n## "), rest.find("\n### ")];
    let end = start + 1 + next.into_iter().flatten().min().expect("a next section");
    doc[start..end].to_string()
}

/// The keys named in the first column of the section's table (`a`, `b` on one row).
fn table_keys(section: &str) -> BTreeSet<String> {
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let cell = l.split('|').nth(1).unwrap_or("");
            cell.split(',')
                .map(|k| k.trim().trim_matches('`').to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The fields the row paragraph names: backquoted words outside parentheses (the values
/// inside them, like `normal`, are not fields).
fn row_fields(section: &str) -> BTreeSet<String> {
    let start = section
        .find("A subscription row:")
        .expect("the row paragraph");
    let end = start
        + section[start..]
            .find("\n\n")
            .unwrap_or(section.len() - start);
    let mut fields = BTreeSet::new();
    let mut depth = 0usize;
    let mut word: Option<String> = None;
    for c in section[start..end].chars() {
        match (c, &mut word) {
            ('`', None) => word = Some(String::new()),
            ('`', Some(w)) => {
                if depth == 0
                    && !w.is_empty()
                    && w.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                {
                    fields.insert(w.clone());
                }
                word = None;
            }
            (c, Some(w)) => w.push(c),
            ('(', None) => depth += 1,
            (')', None) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    fields
}

#[test]
fn the_status_document_has_exactly_the_keys_protocol_md_lists() {
    let net = sim::net();
    let mut node = SimNode::start(
        &net,
        sim::SOCKET,
        sim::config(),
        sim::fresh_log(4 << 20),
        true,
    )
    .expect("start");
    let (_sub, _, _) = subscriber(&mut node, "ops", 8);
    let mut control = node.connect();
    control.send(&hello(Role::Control, "op"));
    control.send(&Frame::Status);
    let got = turns_until(&mut node, &mut control, 10, |g| g.len() >= 2);
    let Got::Status(json) = &got[1] else {
        panic!("{got:?}")
    };
    let status: serde_json::Value = serde_json::from_str(json).unwrap();
    let section = section_10_7();

    let documented = table_keys(&section);
    let sent: BTreeSet<String> = status.as_object().unwrap().keys().cloned().collect();
    // `subscriptions_next` is there only when rows did not fit.
    let missing: Vec<_> = documented
        .iter()
        .filter(|k| *k != "subscriptions_next" && !sent.contains(*k))
        .collect();
    let undocumented: Vec<_> = sent.difference(&documented).collect();
    assert!(missing.is_empty(), "listed in 10.7, not sent: {missing:?}");
    assert!(
        undocumented.is_empty(),
        "sent, not in 10.7: {undocumented:?}"
    );

    let row = &status["subscriptions"][0];
    let row_sent: BTreeSet<String> = row.as_object().unwrap().keys().cloned().collect();
    let row_documented = row_fields(&section);
    assert!(
        row_documented.len() > 10,
        "the row paragraph was read: {row_documented:?}"
    );
    assert_eq!(
        row_sent, row_documented,
        "a subscription row and section 10.7"
    );
}
