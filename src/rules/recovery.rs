//! What the engine finds at start: actions a previous run began and never
//! finished. A `before` line in the audit log with no `after` line for the
//! same rule and target after it means the daemon died mid-action (SIGKILL,
//! OOM, a fence, a crash loop). The engine audits each as `interrupted`,
//! counts it as a failed attempt and backs off (engine.rs): whatever the
//! action left half-done, retrying at once is the one thing not to do.

use std::collections::BTreeMap;
use std::path::Path;

use crate::actions::audit::{read_records, AuditRecord, Phase};

/// The `before` lines without their `after`, oldest first.
pub fn unfinished_actions(audit_file: &Path) -> std::io::Result<Vec<AuditRecord>> {
    let (records, unparsable) = read_records(audit_file)?;
    if unparsable > 0 {
        tracing::warn!(file = %audit_file.display(), lines = unparsable, "Audit lines that do not parse were skipped.");
    }
    Ok(unfinished(records))
}

fn unfinished(records: Vec<AuditRecord>) -> Vec<AuditRecord> {
    let mut open: BTreeMap<(String, String), (usize, AuditRecord)> = BTreeMap::new();
    for (index, record) in records.into_iter().enumerate() {
        let key = (record.rule.clone(), record.target.clone());
        match record.phase {
            Phase::Before => {
                open.insert(key, (index, record));
            }
            Phase::After => {
                open.remove(&key);
            }
            Phase::Decision | Phase::Control => {}
        }
    }
    let mut left: Vec<(usize, AuditRecord)> = open.into_values().collect();
    left.sort_by_key(|(index, _)| *index);
    left.into_iter().map(|(_, record)| record).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::audit::AuditOutcome;

    fn line(target: &str, phase: Phase, outcome: AuditOutcome) -> AuditRecord {
        AuditRecord {
            time: AuditRecord::now(),
            rule: "missing_mount".into(),
            target: target.into(),
            action: "remount".into(),
            mode: "enforce".into(),
            phase,
            outcome,
            evidence: String::new(),
            detail: None,
            error: None,
            caller: None,
        }
    }

    #[test]
    fn a_before_without_an_after_is_unfinished() {
        let records = vec![
            line("/a", Phase::Before, AuditOutcome::Started),
            line("/a", Phase::After, AuditOutcome::Success),
            line("/b", Phase::Before, AuditOutcome::Started),
            line("/a", Phase::Before, AuditOutcome::Started),
            line("/c", Phase::Decision, AuditOutcome::SkippedPaused),
        ];
        let left = unfinished(records);
        let targets: Vec<&str> = left.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["/b", "/a"]);
    }
}
