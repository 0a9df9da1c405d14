//! A symbolic link planted at any state path (and at the temporary names
//! the old writer used) is never followed by the daemon's own writers and
//! readers: the link's target is untouched. Replaced files (kernel-log
//! position, remediation state, maintenance record) replace the link entry
//! itself; the append-only audit log and every read refuse it with an error
//! that names the link; a link at the pause file's name counts as a pause.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ocfs2_watchdog::actions::audit::{AuditLog, AuditOutcome, AuditRecord, Phase};
use ocfs2_watchdog::cluster::maintenance::{Maintenance, MAINTENANCE_FILE};
use ocfs2_watchdog::kernel_log::persist::{self, PersistedState, STATE_FILE as KERNEL_LOG_FILE};
use ocfs2_watchdog::rules::control::{Control, PAUSE_FILE};
use ocfs2_watchdog::rules::state::{self, Clock, Ledger, STATE_FILE as LEDGER_FILE};

const PRECIOUS: &str = "root's precious file\n";

/// `dir/name` and `dir/.name.tmp` as links to one victim each.
fn plant(dir: &Path, victims: &Path, name: &str) -> Vec<PathBuf> {
    [name.to_string(), format!(".{name}.tmp")]
        .iter()
        .map(|link| {
            let victim = victims.join(link.trim_start_matches('.'));
            std::fs::write(&victim, PRECIOUS).unwrap();
            std::os::unix::fs::symlink(&victim, dir.join(link)).unwrap();
            victim
        })
        .collect()
}

fn untouched(victims: &[PathBuf]) {
    for victim in victims {
        assert_eq!(
            std::fs::read_to_string(victim).unwrap(),
            PRECIOUS,
            "{} was written through a link",
            victim.display()
        );
    }
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_symlink()
}

fn record() -> AuditRecord {
    AuditRecord {
        time: AuditRecord::now(),
        rule: "duplicate_mount_layers".into(),
        target: "/srv/data".into(),
        action: "unstack".into(),
        mode: "enforce".into(),
        phase: Phase::Before,
        outcome: AuditOutcome::Started,
        evidence: "3 layers".into(),
        detail: None,
        error: None,
        caller: None,
    }
}

#[test]
fn no_writer_or_reader_follows_a_planted_link() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("state");
    let victims = scratch.path().join("victims");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&victims).unwrap();
    let mut all = Vec::new();
    for name in [
        KERNEL_LOG_FILE,
        LEDGER_FILE,
        MAINTENANCE_FILE,
        PAUSE_FILE,
        "audit.jsonl",
    ] {
        all.extend(plant(&dir, &victims, name));
    }

    // Reads refuse the links: an error, not the victim's text.
    let error = persist::load(&dir).unwrap_err();
    assert!(error.to_string().contains("symbolic link"), "{error}");
    let error = state::load(&dir, &Clock::now()).unwrap_err();
    assert!(error.to_string().contains("symbolic link"), "{error}");
    let audit = Arc::new(Mutex::new(AuditLog::new(&dir, 10)));
    let maintenance = Maintenance::open(&dir, "node1", Arc::clone(&audit));
    assert!(maintenance.record().is_none());

    // The audit log refuses to append through its link (counted).
    assert!(!audit.lock().unwrap().append(&record()));
    assert_eq!(audit.lock().unwrap().write_errors(), 1);
    assert!(is_link(&dir.join("audit.jsonl")));

    // Replaced files replace the link entry.
    persist::save(&dir, &PersistedState::default()).unwrap();
    state::save(&dir, &Clock::now(), &Ledger::default()).unwrap();
    maintenance
        .set_on("disk swap", None, "test", SystemTime::now())
        .unwrap();
    // A link at the pause file's name pauses (it exists: fail closed) and
    // is left as it is; once removed, the pause file is written beside the
    // planted temporary-name link, never through it.
    let control = Control::new(&dir, None);
    assert!(control.paused());
    control.pause("test");
    assert!(is_link(&dir.join(PAUSE_FILE)));
    std::fs::remove_file(dir.join(PAUSE_FILE)).unwrap();
    control.pause("test");
    for name in [KERNEL_LOG_FILE, LEDGER_FILE, MAINTENANCE_FILE, PAUSE_FILE] {
        assert!(!is_link(&dir.join(name)), "{name} is still a link");
    }
    untouched(&all);

    // With the link gone the audit log works again, as a new 0600 file.
    std::fs::remove_file(dir.join("audit.jsonl")).unwrap();
    assert!(audit.lock().unwrap().append(&record()));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.join("audit.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    untouched(&all);
}
