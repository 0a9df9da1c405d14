//! Property tests for every parser of what the kernel, the tools and the
//! operator write: arbitrary bytes never panic one; text shaped like the real
//! format (tokens of the right kind, in the right places, mixed with garbage)
//! parses without panicking too; round trips hold where a writer exists; and
//! counters stay monotonic whatever the device reports.
//!
//! Case counts are small by default so the suite stays fast;
//! `PROPTEST_CASES=N` raises them (scripts/proptest-long.sh runs them long).
//! The heartbeat block (a private module) has its own properties in
//! src/collector/heartbeat_disk/block_props.rs.

use std::path::Path;

use proptest::prelude::*;

use ocfs2_watchdog::collector::mounts::{fstab, mountinfo};
use ocfs2_watchdog::collector::o2cb::{cluster_conf, sysconfig};
use ocfs2_watchdog::collector::storage::{iscsi, mpconf, multipath, scsi};
use ocfs2_watchdog::collector::{configfs, dlm, fs_state, heartbeat, net, nodemap};
use ocfs2_watchdog::kernel_log::{classify, persist, record};

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

/// Arbitrary bytes as the daemon sees them after a lossy UTF-8 read.
fn bytes_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..2048)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Words of the kinds the formats use, so the parsers get past their first
/// checks: numbers (also huge and negative), hex, node lists, separators,
/// escapes, labels of the real files, and a little garbage.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u32..300).prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| format!("0x{n:x}")),
        any::<u64>().prop_map(|n| format!("0x{n:016x}")),
        Just("-".to_string()),
        Just(":".to_string()),
        Just("=>".to_string()),
        Just("=".to_string()),
        Just("\\040".to_string()),
        Just("\\".to_string()),
        Just("\\1".to_string()),
        Just("\\777".to_string()),
        prop::sample::select(vec![
            "Domain:",
            "Key:",
            "Protocol:",
            "Thread",
            "Pid:",
            "Node:",
            "State:",
            "JOINED",
            "Domain",
            "Map:",
            "Live",
            "Exit",
            "Lock",
            "Resources:",
            "Dead",
            "Recovery",
            "Master:",
            "ACTIVE",
            "INACTIVE",
            "Nodes:",
            "None",
            "Slots",
            "Num",
            "RecoGen",
            "*",
            "sock:",
            "->",
            "remote",
            "node:",
            "handshake",
            "ok:",
            "timer:",
            "usecs",
            "krefs:",
            "cluster:",
            "node:",
            "heartbeat:",
            "name",
            "number",
            "ip_address",
            "ip_port",
            "O2CB_ENABLED",
            "O2CB_BOOTCLUSTER",
            "\"",
            "'",
            "#",
            "true",
            "false",
            "ocfs2",
            "rw",
            "ro",
            "shared:1",
            "master:2",
            "/",
            "/mnt/ocfs2",
            "/dev/sdb",
            "multipath",
            "A",
            "E",
            "D",
            "F",
            "8:16",
            "0",
            "1",
            "2",
            "queue_if_no_path",
            "defaults",
            "devices",
            "device",
            "{",
            "}",
            "polling_interval",
            "no_path_retry",
            "queue",
            "fail",
            "off",
            "LOGGED_IN",
            "FAILED",
            "FREE",
            "running",
            "blocked",
            "[",
            "]",
            "<6>",
            "kernel:",
            "Nov",
            "21",
            "12:00:00",
            "2026-11-21T12:00:00Z",
            "2026-11-21T12:00:00.123456+01:00",
            "o2net:",
            "o2hb:",
            "OCFS2:",
            "ERROR:",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,12}",
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

/// Lines of tokens joined by single spaces, tabs or nothing.
fn shaped_text() -> impl Strategy<Value = String> {
    let separator = prop::sample::select(vec![" ", " ", " ", "  ", "\t", "", ","]);
    let line = prop::collection::vec((token(), separator), 0..14).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(token, separator)| token + separator)
            .collect::<String>()
    });
    let indent = prop::sample::select(vec!["", "", "\t", "  ", "              "]);
    prop::collection::vec((indent, line), 0..24).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(indent, line)| format!("{indent}{line}\n"))
            .collect()
    })
}

/// Either shape of input.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![bytes_text(), shaped_text()]
}

/// The kernel's `mangle_path` for mountinfo fields: space, tab, newline and
/// backslash as a backslash and three octal digits.
fn escape(field: &str) -> String {
    let mut out = String::new();
    for c in field.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mountinfo_never_panics(text in any_text()) {
        let table = mountinfo::parse_mountinfo(&text);
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        prop_assert_eq!(table.entries.len() + table.invalid_lines, lines);
    }

    #[test]
    fn mountinfo_escape_round_trips(path in "/[^\\x00]{0,40}") {
        prop_assert_eq!(mountinfo::unescape(&escape(&path)), path.clone());
        let line = format!(
            "36 35 8:16 / {} rw,relatime shared:1 - ocfs2 {} rw,heartbeat=local",
            escape(&path),
            escape("/dev/disk/by-label/web data")
        );
        let table = mountinfo::parse_mountinfo(&line);
        prop_assert_eq!(table.entries.len(), 1, "{}", line);
        prop_assert_eq!(&table.entries[0].mount_point, &path);
        prop_assert_eq!(&table.entries[0].source, "/dev/disk/by-label/web data");
    }

    #[test]
    fn unescape_never_panics(field in any_text()) {
        let _ = mountinfo::unescape(&field);
    }

    #[test]
    fn fstab_never_panics(text in any_text()) {
        let _ = fstab::parse_fstab(&text);
    }

    #[test]
    fn configfs_values_never_panic(text in any_text()) {
        let _ = configfs::parse_unsigned::<u32>(&text);
        let _ = configfs::parse_unsigned::<u64>(&text);
        let _ = configfs::parse_node_num(&text);
        let _ = configfs::parse_word(&text);
        let _ = configfs::parse_flag(&text);
        let _ = configfs::parse_ipv4(&text);
        let _ = configfs::parse_heartbeat_mode(&text);
    }

    #[test]
    fn configfs_numbers_round_trip(n in any::<u32>()) {
        prop_assert_eq!(configfs::parse_unsigned::<u32>(&format!("{n}\n")), Some(n));
    }

    #[test]
    fn self_fence_timeout_never_panics(threshold in any::<u32>()) {
        let _ = configfs::self_fence_timeout_seconds(threshold);
    }

    #[test]
    fn o2hb_files_never_panic(text in any_text()) {
        let _ = nodemap::parse_node_map_file(&text);
        let _ = nodemap::parse_node_list(&text);
        let _ = heartbeat::parse_elapsed_ms(&text);
        let _ = heartbeat::parse_number(&text);
    }

    #[test]
    fn node_maps_round_trip(nodes in prop::collection::btree_set(0u8..255, 0..20)) {
        let text: String = nodes.iter().map(|n| format!("{n} ")).collect::<String>() + "\n";
        let parsed = nodemap::parse_node_map_file(&text).unwrap();
        prop_assert_eq!(parsed.iter().copied().collect::<Vec<u8>>(), nodes.into_iter().collect::<Vec<u8>>());
    }

    #[test]
    fn o2net_and_o2dlm_files_never_panic(text in any_text()) {
        let _ = net::parse_sock_containers(&text);
        let _ = dlm::parse_dlm_state(&text);
        let _ = fs_state::parse_fs_state("DEA93192F0874F53BB5290B5205C6B64", &text);
    }

    #[test]
    fn o2cb_configuration_files_never_panic(text in any_text()) {
        let _ = cluster_conf::parse_cluster_conf(&text);
        let conf = sysconfig::parse_sysconfig(&text);
        let _ = conf.enabled();
    }

    #[test]
    fn storage_values_never_panic(text in any_text()) {
        let _ = iscsi::parse_timeout(&text);
        let _ = iscsi::parse_known(&text, &["LOGGED_IN", "FAILED", "FREE"]);
        let _ = iscsi::is_hctl(&text);
        let _ = scsi::parse_hex_counter(&text);
        let _ = multipath::parse_dmsetup_status(&text);
        let conf = mpconf::parse_multipath_conf(&text);
        let _ = conf.effective("3600140501", "LIO-ORG", "disk").stall_seconds();
    }

    /// The SCSI I/O counters are 32-bit and wrap; whatever sequence of raw
    /// values (wraps, resets, garbage that parsed) the device shows, the
    /// exported total never goes down.
    #[test]
    fn scsi_counters_stay_monotonic(raws in prop::collection::vec(
        prop_oneof![any::<u32>(), Just(0u32), Just(u32::MAX)], 1..60)) {
        let mut previous: Option<(u32, f64)> = None;
        let mut last_total = 0.0;
        for raw in raws {
            let total = scsi::advance_counter(previous, raw);
            prop_assert!(total >= last_total, "{} after {}", total, last_total);
            prop_assert!(total.is_finite());
            last_total = total;
            previous = Some((raw, total));
        }
    }

    #[test]
    fn scsi_hex_counters_round_trip(n in any::<u32>()) {
        prop_assert_eq!(scsi::parse_hex_counter(&format!("0x{n:x}\n")), Some(n));
    }

    #[test]
    fn kernel_log_records_never_panic(text in any_text(), now in any::<i64>()) {
        let format = record::detect(&text);
        for line in text.lines() {
            for format in [record::Format::Kmsg, record::Format::Monotonic, record::Format::WallBracket, record::Format::Syslog, format] {
                if let Some(record) = record::parse_line(format, line, now) {
                    let _ = classify::classify(&record.text);
                }
            }
            let _ = record::parse_kmsg(line);
        }
    }

    #[test]
    fn kernel_log_lines_survive_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let lines: Vec<String> = record::lossy_lines(std::io::Cursor::new(bytes)).collect();
        for line in lines {
            let _ = classify::classify(&line);
        }
    }

    #[test]
    fn kmsg_records_round_trip(seq in any::<u64>(), usec in any::<u64>(), prio in 0u32..200, text in "[ -~]{0,80}") {
        let record = record::parse_kmsg(&format!("{prio},{seq},{usec},-;{text}")).unwrap();
        prop_assert_eq!(record.seq, Some(seq));
        prop_assert_eq!(record.monotonic_usec, Some(usec));
        prop_assert_eq!(record.text, text);
    }

    #[test]
    fn kernel_log_state_file_never_panics(text in any_text()) {
        let _ = persist::parse_state(&text);
    }

    #[test]
    fn config_never_panics(text in any_text()) {
        let _ = ocfs2_watchdog::config::Config::parse(&text, Path::new("/etc/ocfs2-watchdog.toml"));
    }

    /// The audit log: any record written is read back as the same record
    /// (JSON lines: quotes, newlines and control characters in evidence or
    /// targets cannot split or corrupt a line).
    #[test]
    fn audit_records_round_trip(rule in ".{0,20}", target in ".{0,60}", evidence in ".{0,200}", error in proptest::option::of(".{0,40}")) {
        use ocfs2_watchdog::actions::audit::{AuditLog, AuditOutcome, AuditRecord, Phase};
        let dir = tempfile::tempdir().unwrap();
        let record = AuditRecord {
            time: AuditRecord::now(),
            rule,
            target,
            action: "unstack".into(),
            mode: "dry_run".into(),
            phase: Phase::Decision,
            outcome: AuditOutcome::DryRun,
            evidence,
            detail: None,
            error,
            caller: None,
        };
        let mut log = AuditLog::new(dir.path(), 2);
        prop_assert!(log.append(&record));
        let text = std::fs::read_to_string(log.path()).unwrap();
        prop_assert_eq!(text.lines().count(), 1);
        let back: AuditRecord = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        prop_assert_eq!(back, record);
    }
}
