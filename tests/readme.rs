//! The README's annotation table is the keys table (`src/annotations/keys.rs`): every key,
//! its default and its meaning, in the table's order. `UPDATE_GOLDEN=1` rewrites it.

use llm_autoscale_webhook::annotations::keys;
use llm_autoscale_webhook::doctor::finding;

const START: &str = "<!-- annotation-table: generated from src/annotations/keys.rs -->\n";
const END: &str = "<!-- annotation-table: end -->";

#[test]
fn the_readme_annotation_table_is_the_keys_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme.find(START).expect("README marks the table's start") + START.len();
    let end = start
        + readme[start..]
            .find(END)
            .expect("README marks the table's end");
    let table = keys::markdown_table();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert_eq!(
        &readme[start..end],
        table,
        "README.md's annotation table differs from the keys table: run UPDATE_GOLDEN=1 cargo test --test readme"
    );
    for k in keys::KEYS {
        assert!(
            !k.doc.is_empty() && !k.default.is_empty(),
            "{} is undocumented",
            k.name
        );
    }
}

const CHECKS_START: &str = "<!-- doctor-checks: generated from src/doctor/finding.rs -->\n";
const CHECKS_END: &str = "<!-- doctor-checks: end -->";

/// The README's table of doctor checks is `Check::ALL` with each check's description.
#[test]
fn the_readme_doctor_table_is_the_checks_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find(CHECKS_START)
        .expect("README marks the checks' start")
        + CHECKS_START.len();
    let end = start
        + readme[start..]
            .find(CHECKS_END)
            .expect("README marks the checks' end");
    let table = finding::markdown_table();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert_eq!(
        &readme[start..end],
        table,
        "README.md's doctor checks differ from src/doctor/finding.rs: run UPDATE_GOLDEN=1 cargo test --test readme"
    );
}
