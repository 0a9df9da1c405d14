//! A rule's `sources()` names the collectors whose facts it reads; the
//! engine holds a rule's targets while one of them failed. A misspelt name
//! would match no collector and silently never hold anything, so every name
//! must be a collector of `COLLECTORS`.

use std::collections::BTreeSet;

use ocfs2_watchdog::collector::COLLECTORS;
use ocfs2_watchdog::rules::RULES;

#[test]
fn every_rule_source_is_a_collector() {
    let collectors: BTreeSet<&str> = COLLECTORS.iter().map(|c| c.name()).collect();
    assert_eq!(
        collectors.len(),
        COLLECTORS.len(),
        "two collectors share a name"
    );
    let mut unknown = Vec::new();
    for rule in RULES {
        assert!(
            !rule.sources().is_empty(),
            "rule {} reads no collector",
            rule.name()
        );
        for source in rule.sources() {
            if !collectors.contains(source) {
                unknown.push(format!("{}: {source:?}", rule.name()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "rule sources that are no collector (known: {collectors:?}):\n{}",
        unknown.join("\n")
    );
}
