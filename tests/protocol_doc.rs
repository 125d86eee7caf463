//! Keeps docs/PROTOCOL.md honest about its tests.
//!
//! The compliance table (§10) names, for every rule, the test functions that check it. This
//! test reads the table and fails when a named function is defined in no `.rs` file under
//! tests/ or src/, when a rule id appears twice, or when a row is not in the table's form. It
//! also fails when a `docs/PROTOCOL.md §N.M` citation, in the document or in the sources, names
//! a section the document does not have.
//!
//! Test functions are looked up by name only, anywhere below tests/ and src/, because the files
//! that hold them may move.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DOC: &str = "docs/PROTOCOL.md";
const TABLE_HEADING: &str = "## 10. Compliance table";

/// One rule of the compliance table.
struct Rule {
    /// Line number in docs/PROTOCOL.md (1-based), for messages.
    line: usize,
    id: String,
    /// Empty when the row says "untested".
    tests: Vec<String>,
}

fn doc_text() -> String {
    let path = Path::new(ROOT).join(DOC);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_rule_id(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some("R"), Some(area), Some(n), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !area.is_empty()
        && area.bytes().all(|b| b.is_ascii_uppercase())
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
}

fn is_fn_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b == b'_' || b.is_ascii_lowercase())
        && bytes.all(|b| b == b'_' || b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The test names of a tests cell: "untested", or `name`s separated by commas.
fn parse_tests(cell: &str, line: usize) -> Vec<String> {
    if cell == "untested" {
        return Vec::new();
    }
    cell.split(',')
        .map(|item| {
            let item = item.trim();
            let name = item
                .strip_prefix('`')
                .and_then(|s| s.strip_suffix('`'))
                .unwrap_or_else(|| {
                    panic!("{DOC}:{line}: {item:?} is not a `test_name` (or write \"untested\")")
                });
            assert!(
                is_fn_name(name),
                "{DOC}:{line}: {name:?} is not a function name"
            );
            name.to_owned()
        })
        .collect()
}

/// The rows of the compliance table, checked for form.
fn rules(doc: &str) -> Vec<Rule> {
    let lines: Vec<&str> = doc.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == TABLE_HEADING)
        .unwrap_or_else(|| panic!("{DOC} has no heading {TABLE_HEADING:?}"));
    let mut rules = Vec::new();
    let mut header_seen = false;
    for (i, raw) in lines.iter().enumerate().skip(start + 1) {
        let line = i + 1;
        let text = raw.trim();
        if text.starts_with("## ") {
            break;
        }
        if !text.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = text
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if !header_seen {
            assert_eq!(
                cells.first().copied(),
                Some("id"),
                "{DOC}:{line}: the table must start with its header row"
            );
            header_seen = true;
            continue;
        }
        if cells
            .iter()
            .all(|c| !c.is_empty() && c.bytes().all(|b| b == b'-' || b == b':'))
        {
            continue;
        }
        assert!(
            cells.len() >= 3,
            "{DOC}:{line}: a rule row has the cells id, rule, tests"
        );
        let id = cells[0];
        assert!(
            is_rule_id(id),
            "{DOC}:{line}: {id:?} is not a rule id of the form R-AREA-N"
        );
        let statement = cells[1..cells.len() - 1].join("|");
        assert!(
            !statement.trim().is_empty(),
            "{DOC}:{line}: {id} states no rule"
        );
        let tests = parse_tests(cells[cells.len() - 1], line);
        rules.push(Rule {
            line,
            id: id.to_owned(),
            tests,
        });
    }
    assert!(
        !rules.is_empty(),
        "{DOC}: the compliance table has no rules"
    );
    rules
}

/// Every file below `dir` whose name ends in one of `exts`, skipping build output.
fn files_below(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | ".git" | "seeds" | "node_modules") {
                files_below(&path, exts, out);
            }
        } else if exts.iter().any(|e| name.ends_with(&format!(".{e}"))) {
            out.push(path);
        }
    }
}

/// The text of every `.rs` file under tests/ and src/.
fn rust_sources() -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    for dir in ["tests", "src"] {
        files_below(&Path::new(ROOT).join(dir), &["rs"], &mut paths);
    }
    assert!(!paths.is_empty(), "no Rust sources found under {ROOT}");
    paths
        .into_iter()
        .filter_map(|p| fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect()
}

#[test]
fn rule_ids_are_unique() {
    let doc = doc_text();
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    let mut repeats = Vec::new();
    for rule in rules(&doc) {
        if let Some(at) = first.get(&rule.id) {
            repeats.push(format!(
                "{} on line {} repeats line {at}",
                rule.id, rule.line
            ));
        } else {
            first.insert(rule.id, rule.line);
        }
    }
    assert!(
        repeats.is_empty(),
        "{DOC}: rule ids must be unique:\n{}",
        repeats.join("\n")
    );
}

#[test]
fn every_named_test_exists() {
    let doc = doc_text();
    let sources = rust_sources();
    let mut missing = Vec::new();
    for rule in rules(&doc) {
        for name in &rule.tests {
            let definition = format!("fn {name}(");
            if !sources.iter().any(|(_, text)| text.contains(&definition)) {
                missing.push(format!("{} (line {}): {name}", rule.id, rule.line));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{DOC} names tests that are defined nowhere under tests/ or src/:\n{}",
        missing.join("\n")
    );
}

/// Section numbers ("3", "3.2") of the document's headings.
fn sections(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("### ").or_else(|| l.strip_prefix("## "))?;
            let number = rest.split_whitespace().next()?.trim_end_matches('.');
            (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                .then(|| number.to_owned())
        })
        .collect()
}

/// The section numbers cited by "§N" or "§N.M" in `text`.
fn cited(text: &str) -> Vec<String> {
    text.split('§')
        .skip(1)
        .filter_map(|after| {
            let number: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let number = number.trim_end_matches('.');
            (!number.is_empty()).then(|| number.to_owned())
        })
        .collect()
}

#[test]
fn every_cited_section_exists() {
    let doc = doc_text();
    let known = sections(&doc);
    assert!(known.contains("10"), "{DOC}: headings not found");
    let mut wrong = Vec::new();
    for (i, line) in doc.lines().enumerate() {
        for n in cited(line) {
            if !known.contains(&n) {
                wrong.push(format!("{DOC}:{}: §{n}", i + 1));
            }
        }
    }
    let mut paths = Vec::new();
    for dir in ["src", "tests", "fuzz", "benches", "bindings", "examples-c"] {
        files_below(
            &Path::new(ROOT).join(dir),
            &["rs", "c", "h", "cpp", "hpp", "py", "go", "cs", "md", "sh"],
            &mut paths,
        );
    }
    for path in paths {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let Some(at) = line.find("PROTOCOL.md") else {
                continue;
            };
            for n in cited(&line[at..]) {
                if !known.contains(&n) {
                    wrong.push(format!("{}:{}: §{n}", path.display(), i + 1));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "citations of sections {DOC} does not have:\n{}",
        wrong.join("\n")
    );
}
