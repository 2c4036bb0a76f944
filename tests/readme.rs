//! The README's generated tables: the annotation table is the keys table
//! (`src/annotations/keys.rs`: every key, its default and its meaning, in the table's order),
//! and the doctor checks are `Check::ALL` with their descriptions (`src/doctor/finding.rs`).
//! `UPDATE_GOLDEN=1` rewrites them.

use std::sync::Mutex;

use llm_autoscale_webhook::annotations::keys;
use llm_autoscale_webhook::doctor::finding;

/// The tests run in parallel and both rewrite README.md: one at a time.
static README: Mutex<()> = Mutex::new(());

/// Checks (or, with `UPDATE_GOLDEN`, rewrites) the README's text between the `start` and
/// `end` markers against `expected`.
fn generated_section(start_marker: &str, end_marker: &str, expected: &str, what: &str) {
    let _one_at_a_time = README.lock().unwrap_or_else(|e| e.into_inner());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find(start_marker)
        .unwrap_or_else(|| panic!("README marks where {what} starts"))
        + start_marker.len();
    let end = start
        + readme[start..]
            .find(end_marker)
            .unwrap_or_else(|| panic!("README marks where {what} ends"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert_eq!(
        &readme[start..end],
        expected,
        "README.md's {what} differs from its source: run UPDATE_GOLDEN=1 cargo test --test readme"
    );
}

#[test]
fn the_readme_annotation_table_is_the_keys_table() {
    generated_section(
        "<!-- annotation-table: generated from src/annotations/keys.rs -->\n",
        "<!-- annotation-table: end -->",
        &keys::markdown_table(),
        "annotation table",
    );
    for k in keys::KEYS {
        assert!(
            !k.doc.is_empty() && !k.default.is_empty(),
            "{} is undocumented",
            k.name
        );
    }
}

#[test]
fn the_readme_doctor_table_is_the_checks_table() {
    generated_section(
        "<!-- doctor-checks: generated from src/doctor/finding.rs -->\n",
        "<!-- doctor-checks: end -->",
        &finding::markdown_table(),
        "doctor checks table",
    );
}
