//! The module dependency rule of ARCHITECTURE.md, checked: every `crate::<module>`
//! a module's source names must be one it may use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// ARCHITECTURE.md's table: module → the modules it may use.
const RULE: &[(&str, &[&str])] = &[
    ("event", &[]),
    ("pmem", &[]),
    ("reactor", &[]),
    ("log", &["event", "pmem"]),
    ("protocol", &["event"]),
    ("routing", &["event", "log"]),
    ("subscription", &["event", "log", "pmem", "routing"]),
    ("metrics", &["event"]),
    ("nats", &[]),
    ("tls", &[]),
    (
        "delivery",
        &[
            "event",
            "log",
            "metrics",
            "nats",
            "pmem",
            "protocol",
            "reactor",
            "routing",
            "subscription",
            "tls",
        ],
    ),
    ("client", &["event", "protocol", "tls"]),
    (
        "sim",
        &[
            "delivery",
            "event",
            "log",
            "pmem",
            "protocol",
            "reactor",
            "subscription",
        ],
    ),
    ("measure", &["client", "protocol"]),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules named by `crate::` in `source` (including inside
/// `use crate::{a, b::c}` groups).
fn named_modules(source: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    named.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            named.insert(name);
        }
    }
    named
}

#[test]
fn every_module_uses_only_the_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rule: BTreeMap<&str, &[&str]> = RULE.iter().copied().collect();
    let mut broken = Vec::new();
    let mut checked = 0;
    for (module, allowed) in &rule {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        let single = src.join(format!("{module}.rs"));
        if single.exists() {
            files.push(single);
        }
        assert!(
            !files.is_empty(),
            "module {module} has no source under src/"
        );
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            checked += 1;
            for named in named_modules(&source) {
                let known = rule.contains_key(named.as_str());
                if known && named != *module && !allowed.contains(&named.as_str()) {
                    broken.push(format!("{} uses crate::{named}", file.display()));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} files checked");
    assert!(
        broken.is_empty(),
        "the dependency rule is broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_rule_is_the_one_architecture_md_prints() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    for (module, allowed) in RULE {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{module}` |")))
            .unwrap_or_else(|| panic!("ARCHITECTURE.md has no row for {module}"));
        for dependency in *allowed {
            assert!(
                row.contains(&format!("`{dependency}`")),
                "ARCHITECTURE.md's row for {module} does not list {dependency}: {row}"
            );
        }
    }
}

#[test]
fn the_scanner_finds_grouped_and_plain_paths() {
    let names = named_modules("use crate::{log::Seq, pmem};\nlet x = crate::event::limits::X;");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["event", "log", "pmem"]
    );
}
