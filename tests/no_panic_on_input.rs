//! Keeps issue 15's audit true: outside `#[cfg(test)]` code, the modules that input
//! from a socket or a file reaches (`event`, `log`, `pmem`, `protocol`, `subscription`,
//! `delivery`, `metrics`, whose exporter parses HTTP requests, and `nats`, which parses
//! a NATS server's lines) call `unwrap`,
//! `expect`, `panic!`, `unreachable!`, `todo!` or `unimplemented!` only where
//! [`ALLOWED`] lists it, with the reason it cannot fail.
//!
//! Occurrences are found by what they say, not where: a bare `.unwrap()` is never
//! allowed, and each `expect`, `panic!` or `unreachable!` is keyed by its file and its
//! message, so code may move and reformat freely. A new one fails the test until it
//! becomes an error (returned, answered, reported) or joins the list with its reason;
//! an entry that no longer matches fails it too, so the list stays the truth.
//!
//! Not covered: indexing and arithmetic that can panic (no syntactic test tells an
//! invariant from a bug there; the fuzz targets look for those), and `assert!`, which
//! the project keeps on purpose for broken invariants (ARCHITECTURE.md, "Everywhere").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The modules checked, under `src/`.
const MODULES: &[&str] = &[
    "event",
    "log",
    "pmem",
    "protocol",
    "subscription",
    "routing",
    "delivery",
    "metrics",
    "nats",
];

/// `(file under src/, construct, message, why it cannot fail)`; the construct is
/// `expect`, `panic!`, `unreachable!`, `todo!` or `unimplemented!`. An entry covers
/// every occurrence with that message in that file.
const ALLOWED: &[(&str, &str, &str, &str)] = &[
    (
        "delivery/dedupe/mod.rs",
        "panic!",
        "dedupe window: the index has no empty slot",
        "the index has at least twice as many slots as records, so a probe meets an empty one",
    ),
    (
        "log/dead/mod.rs",
        "expect",
        "the dead-letter table covers every combination (tested)",
        "a unit test tries every combination of facts against the table",
    ),
    (
        "log/dead/area.rs",
        "expect",
        "caller checked the id",
        "Log::set_dead_replay looks the id up before it changes the record",
    ),
    (
        "log/dead/mod.rs",
        "expect",
        "the run is inside the area",
        "first_fit chose the run inside the area",
    ),
    (
        "log/layout.rs",
        "expect",
        "8-byte chunk",
        "chunks_exact(8) yields 8-byte slices",
    ),
    (
        "log/mod.rs",
        "expect",
        "validated by caller",
        "release and set_mode look every subscription up first",
    ),
    (
        "log/scan.rs",
        "expect",
        "the recovery table covers every combination (tested)",
        "a unit test tries every combination of facts against the table",
    ),
    (
        "log/scan.rs",
        "unreachable!",
        "the walk starts at head",
        "`released` is `position < head`, and the walk starts at head",
    ),
    (
        "pmem/sim.rs",
        "expect",
        "word slice is 8 bytes",
        "the slice is cut 8 bytes long (the simulated medium, not a file)",
    ),
    (
        "subscription/tracker.rs",
        "panic!",
        "resent({seq}) of an event not in flight",
        "fan-out resends only what `due` returned in the same turn",
    ),
];

#[test]
fn input_facing_modules_unwrap_expect_or_panic_only_where_the_list_says_why() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut bare_unwraps = Vec::new();
    let mut files = 0;
    for module in MODULES {
        let mut paths = Vec::new();
        rust_files(&src.join(module), &mut paths);
        let test_only = test_only_files(&paths);
        for path in paths.iter().filter(|p| !test_only.contains(p)) {
            files += 1;
            let source = std::fs::read_to_string(path).expect("a readable source file");
            let name = path
                .strip_prefix(&src)
                .expect("under src/")
                .to_string_lossy()
                .into_owned();
            let lexed = lex(&source);
            let code = without_test_items(&lexed.code);
            bare_unwraps.extend((0..count(&code, ".unwrap()")).map(|_| name.clone()));
            for (construct, message) in panicking_calls(&code, &lexed.strings) {
                *found.entry((name.clone(), construct, message)).or_default() += 1;
            }
        }
    }
    assert!(
        files > 50,
        "only {files} files found under {}",
        src.display()
    );
    let mut failures = Vec::new();
    for file in &bare_unwraps {
        failures.push(format!(
            "src/{file}: a bare .unwrap(); return an error, or expect(\"why it cannot fail\") and list it"
        ));
    }
    for ((file, construct, message), n) in &found {
        let listed = ALLOWED
            .iter()
            .any(|(f, c, m, _)| f == file && c == construct && m == message);
        if !listed {
            failures.push(format!(
                "src/{file}: {construct}({message:?}) x{n} is not in ALLOWED; make it an error, or list it with the reason it cannot fail"
            ));
        }
    }
    for (file, construct, message, _) in ALLOWED {
        let key = (file.to_string(), construct.to_string(), message.to_string());
        if !found.contains_key(&key) {
            failures.push(format!(
                "ALLOWED lists src/{file}: {construct}({message:?}), which is no longer there; remove the entry"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The lexer and the test-item filter on a small sample, so that a mistake in them
/// cannot hide an occurrence.
#[test]
fn the_scan_sees_through_comments_and_strings_and_skips_test_items() {
    let source = r##"
        // x.unwrap() in a comment
        /* block .unwrap() /* nested */ */
        fn f() { let s = "a .unwrap() in a string \" quoted"; let r = r#"raw "x".unwrap()"#; }
        fn g<'a>(c: char) { let _ = '"'; let _ = '\''; v.expect(
            "multi-line message"); panic!("boom {x}"); }
        #[cfg(test)]
        mod tests { fn t() { x.unwrap(); y.expect("test only"); } }
        #[cfg(test)]
        mod more;
        fn h() { z.unwrap(); }
    "##;
    let lexed = lex(source);
    let code = without_test_items(&lexed.code);
    assert_eq!(count(&code, ".unwrap()"), 1, "only h's unwrap: {code}");
    assert_eq!(
        panicking_calls(&code, &lexed.strings),
        vec![
            ("expect".to_string(), "multi-line message".to_string()),
            ("panic!".to_string(), "boom {x}".to_string()),
        ]
    );
    let dir = Path::new("/m");
    let files = vec![dir.join("mod.rs"), dir.join("more.rs"), dir.join("a.rs")];
    let test_only = test_only_files_given(&files, |_| source.to_string());
    assert_eq!(test_only, vec![dir.join("more.rs")]);
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
    out.sort();
}

/// Files that only a `#[cfg(test)] mod NAME;` declaration brings in.
fn test_only_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    test_only_files_given(paths, |p| {
        std::fs::read_to_string(p).expect("a readable source file")
    })
}

fn test_only_files_given(paths: &[PathBuf], read: impl Fn(&Path) -> String) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        let code = lex(&read(path)).code;
        // `a/mod.rs` declares modules in `a/`; `a/b.rs` declares them in `a/b/`.
        let dir = match path.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs" | "lib.rs") => path.parent().map(Path::to_path_buf),
            _ => Some(path.with_extension("")),
        };
        let Some(dir) = dir else { continue };
        for name in test_module_declarations(&code) {
            for candidate in [
                dir.join(format!("{name}.rs")),
                dir.join(&name).join("mod.rs"),
            ] {
                if paths.contains(&candidate) {
                    out.push(candidate);
                }
            }
        }
    }
    out
}

/// Source with comments removed and every string literal replaced by `"N"`, its index
/// in `strings`.
struct Lexed {
    code: String,
    strings: Vec<String>,
}

fn lex(source: &str) -> Lexed {
    let chars: Vec<char> = source.chars().collect();
    let mut code = String::new();
    let mut strings = Vec::new();
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && (i == 0
                || !ident(chars[i - 1])
                || (chars[i - 1] == 'b' && (i < 2 || !ident(chars[i - 2]))))
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                code.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let start = j;
            while j < chars.len()
                && !(chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')))
            {
                j += 1;
            }
            strings.push(chars[start..j.min(chars.len())].iter().collect());
            code.push_str(&format!("\"{}\"", strings.len() - 1));
            i = j + 1 + hashes;
        } else if c == '"' {
            let mut j = i + 1;
            let mut text = String::new();
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    text.push(chars[j]);
                    j += 1;
                }
                if let Some(&ch) = chars.get(j) {
                    text.push(ch);
                }
                j += 1;
            }
            strings.push(text);
            code.push_str(&format!("\"{}\"", strings.len() - 1));
            i = j + 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: past the escaped character, up to the quote.
            let mut j = i + 3;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            code.push_str("' '");
            i = j + 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            code.push_str("' '");
            i += 3;
        } else {
            // Everything else, lifetimes and labels included.
            code.push(c);
            i += 1;
        }
    }
    Lexed { code, strings }
}

/// `code` without the items `#[cfg(test)]` gates (inline modules, functions, uses).
fn without_test_items(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        rest = skip_item(&rest[at + "#[cfg(test)]".len()..]);
    }
    out.push_str(rest);
    out
}

/// What follows the item at the start of `code`: up to its `;`, or past its braces.
fn skip_item(code: &str) -> &str {
    let mut depth = 0usize;
    for (at, c) in code.char_indices() {
        match c {
            ';' if depth == 0 => return &code[at + 1..],
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return &code[at + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// Names of `#[cfg(test)] mod NAME;` declarations.
fn test_module_declarations(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let item = rest.trim_start();
        if let Some(after) = item
            .strip_prefix("mod ")
            .or_else(|| item.strip_prefix("pub mod "))
        {
            let name: String = after
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let tail = after.trim_start()[name.len()..].trim_start();
            if tail.starts_with(';') {
                names.push(name);
            }
        }
    }
    names
}

fn count(code: &str, needle: &str) -> usize {
    let squeezed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    squeezed.matches(needle).count()
}

/// Every `.expect(`, `panic!(`, `unreachable!(`, `todo!(`, `unimplemented!(` and
/// `unwrap_unchecked(` in `code`, with its first argument's text when it is a string
/// literal (else the empty string, which no entry lists).
fn panicking_calls(code: &str, strings: &[String]) -> Vec<(String, String)> {
    let squeezed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut calls = Vec::new();
    let constructs = [
        (".expect(", "expect"),
        ("panic!(", "panic!"),
        ("unreachable!(", "unreachable!"),
        ("todo!(", "todo!"),
        ("unimplemented!(", "unimplemented!"),
        (".unwrap_unchecked(", "unwrap_unchecked"),
    ];
    let mut at = 0;
    while at < squeezed.len() {
        let rest = &squeezed[at..];
        let Some((needle, name)) = constructs.iter().find(|(n, _)| rest.starts_with(n)) else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        // `core::panic!` and `std::panic!` count; a longer name ending so does not.
        let before = squeezed[..at].chars().next_back();
        if needle.starts_with('.') || !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            let argument = &rest[needle.len()..];
            let message = argument
                .strip_prefix('"')
                .and_then(|a| a.split_once('"'))
                .and_then(|(index, _)| index.parse::<usize>().ok())
                .and_then(|index| strings.get(index))
                .cloned()
                .unwrap_or_default();
            calls.push((name.to_string(), message));
        }
        at += needle.len();
    }
    calls
}
