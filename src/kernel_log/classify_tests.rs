//! Table tests: one line per template of docs/interfaces.md §4 (source-backed
//! synthetic lines, spelling variants and both mlog prefixes), the real lines
//! of the lab captures, and near misses that must not match.

use super::*;

fn event_of(text: &str) -> Option<&'static str> {
    classify(text).map(|p| p.event.as_str())
}

#[test]
fn every_template_has_a_line() {
    let cases: &[(&str, &str)] = &[
        // §4.2 fence, both spellings and the quorum decisions.
        ("*** ocfs2 is very sorry to be fencing this system by restarting ***", "fence"),
        ("*** ocfs2 is very sorry to be fencing this system by panicing ***", "fence"),
        ("*** ocfs2 is very sorry to be fencing this system by panicking ***", "fence"),
        ("(kworker/u2:1,24,0):o2quo_make_decision:142 ERROR: fencing this node because it is only connected to 1 nodes and 2 is needed to make a quorum out of 3 heartbeating nodes", "fence"),
        ("(o2net,1263,0):o2quo_make_decision:154 ERROR: fencing this node because it is connected to a half-quorum of 1 out of 2 nodes which doesn't include the lowest active node 1", "fence"),
        ("(kworker/0:2,120,0):o2hb_stop_all_regions:2470 ERROR: stopping heartbeat on all active regions.", "fence"),
        ("(1263,0):o2hb_stop_all_regions:2470 ERROR: stopping heartbeat on all active regions.", "fence"),
        // §4.1 heartbeat.
        ("(kworker/0:1,98,0):o2hb_write_timeout:269 ERROR: Heartbeat write timeout to device sdb after 60000 milliseconds", "hb_write_timeout"),
        ("(98,0):o2hb_write_timeout:242 ERROR: Heartbeat write timeout to device dm-3 after 12000 milliseconds", "hb_write_timeout"),
        ("o2hb: node 1 hb write hung for 30s on region DEA93192F0874F53BB5290B5205C6B64 (sdb).", "hb_write_hung"),
        ("o2hb: node 2 hb write hung for 30s on region DEA93192F0874F53BB5290B5205C6B64 (vda), negotiate timeout with node 1.", "hb_write_hung"),
        ("(o2hb-DEA93192F0,500,0):o2hb_do_disk_heartbeat:1187 ERROR: Write error -5 on device \"sdb\"", "hb_io_error"),
        ("(swapper/0,0,0):o2hb_bio_end_io:304 ERROR: IO Error -5", "hb_io_error"),
        ("(o2hb-DEA93192F0,500,0):o2hb_check_slot:1042 ERROR: Node 2 on device sdb has a dead count of 14000 ms, but our count is 60000 ms.", "config_mismatch"),
        // §4.3 o2net: modern and old idle messages, connect, lose.
        ("o2net: Connection to node n2 (num 2) at 10.99.0.2:7777 has been idle for 30.5 secs.", "net_idle_timeout"),
        ("o2net: Connection to node n2 (num 2) at 10.99.0.2:7777 has been idle for 30.5 secs, shutting it down.", "net_idle_timeout"),
        ("o2net: connection to node n2 (num 2) at 10.99.0.2:7777 has been idle for 10 seconds, shutting it down.", "net_idle_timeout"),
        ("o2net: Connected to node n1 (num 1) at 10.99.0.1:7777", "net_connected"),
        ("o2net: Accepted connection from node n2 (num 2) at 10.99.0.2:7777", "net_connected"),
        ("o2net: No longer connected to node n1 (num 1) at 10.99.0.1:7777", "net_disconnected"),
        ("o2net: node n2 (num 2) at 10.99.0.2:7777 uses a network idle timeout of 10000 ms, but we use 30000 ms locally. Disconnecting.", "config_mismatch"),
        ("o2net: node n2 (num 2) at 10.99.0.2:7777 uses a keepalive delay of 1000 ms, but we use 2000 ms locally. Disconnecting.", "config_mismatch"),
        ("o2net: node n2 (num 2) at 10.99.0.2:7777 uses a heartbeat timeout of 14000 ms, but we use 60000 ms locally. Disconnecting.", "config_mismatch"),
        ("o2net: node n2 (num 2) at 10.99.0.2:7777 Advertised net protocol version 10 but 11 is required. Disconnecting.", "config_mismatch"),
        // §4.4 o2cb / o2dlm.
        ("o2cb: o2dlm has evicted node 2 from domain DEA93192F0874F53BB5290B5205C6B64", "dlm_node_evicted"),
        ("o2dlm: Begin recovery on domain DEA93192F0874F53BB5290B5205C6B64 for node 2", "dlm_recovery"),
        // §4.5 ocfs2.
        ("ocfs2: Begin replay journal (node 2, slot 1) on device (254,0)", "journal_replay"),
        ("(ocfs2rec,1540,0):ocfs2_replay_journal:1181 Recovering node 2 from slot 1 on device (8,16)", "journal_replay"),
        ("OCFS2: File system is now read-only.", "fs_readonly"),
        ("(kworker/0:1,98,0):ocfs2_handle_error:126 ERROR: File system is now read-only due to the potential of on-disk corruption. Please run fsck.ocfs2 once the file system is unmounted.", "fs_readonly"),
        ("OCFS2: ERROR (device dm-3): int ocfs2_validate_inode_block(struct super_block *, struct buffer_head *): Invalid dinode #1234: signature = ", "fs_error"),
        ("OCFS2: abort (device sdb): ocfs2_start_trans: Detected aborted journal", "fs_error"),
        ("(ocfs2cmt,528,0):ocfs2_commit_cache:321 ERROR: JBD2 has aborted our journal, ocfs2 cannot continue", "fs_error"),
        ("(ocfs2rec,1540,0):__ocfs2_recovery_thread:1505 ERROR: Error -5 recovering node 2 on device (8,16)!", "fs_error"),
        // §4.6 iSCSI.
        (" connection1:0: detected conn error (1020)", "iscsi_conn_error"),
        ("connection3:0: detected conn error (1022)", "iscsi_conn_error"),
        (" session1: session recovery timed out after 120 secs", "iscsi_recovery_timeout"),
    ];
    for (line, expected) in cases {
        assert_eq!(event_of(line), Some(*expected), "{line}");
    }
}

#[test]
fn real_capture_lines() {
    // n1-03a-pause-dmesg-full.txt, n2-03a-pause-dmesg-full.txt, n*-02 dmesg.
    let cases: &[(&str, Option<&str>)] = &[
        ("o2net: Connection to node n2 (num 2) at 10.99.0.2:7777 has been idle for 10.202 secs.", Some("net_idle_timeout")),
        ("o2net: No longer connected to node n2 (num 2) at 10.99.0.2:7777", Some("net_disconnected")),
        ("o2cb: o2dlm has evicted node 2 from domain DEA93192F0874F53BB5290B5205C6B64", Some("dlm_node_evicted")),
        ("o2dlm: Begin recovery on domain DEA93192F0874F53BB5290B5205C6B64 for node 2", Some("dlm_recovery")),
        ("o2dlm: Node 1 (me) is the Recovery Master for the dead node 2 in domain DEA93192F0874F53BB5290B5205C6B64", None),
        ("o2dlm: End recovery on domain DEA93192F0874F53BB5290B5205C6B64", None),
        ("ocfs2: Begin replay journal (node 2, slot 1) on device (254,0)", Some("journal_replay")),
        ("ocfs2: End replay journal (node 2, slot 1) on device (254,0)", None),
        ("o2net: Accepted connection from node n2 (num 2) at 10.99.0.2:7777", Some("net_connected")),
        ("(kworker/u2:1,24,0):dlm_convert_lock_handler:493 ERROR: did not find lock to convert on grant queue! cookie=2:6", None),
        ("o2net: Connected to node n1 (num 1) at 10.99.0.1:7777", Some("net_connected")),
        ("o2dlm: Joining domain DEA93192F0874F53BB5290B5205C6B64 ", None),
        ("JBD2: Ignoring recovery information on journal", None),
        ("ocfs2: Mounting device (254,0) on (node 2, slot 1) with ordered data mode.", None),
        ("o2net: Connection to node n1 (num 1) at 10.99.0.1:7777 shutdown, state 8", None),
        ("o2net: No connection established with node 1 after 10.0 seconds, check network and cluster configuration.", None),
        // The zombie node's own view of its eviction (captures/n2-03a: visible on both nodes).
        ("(sh,970,0):__ocfs2_cluster_lock:1591 ERROR: DLM error -22 while calling ocfs2_dlm_lock on resource M000000000000000000000575ca67a1", Some("dlm_lock_error")),
        ("(sh,970,0):dlm_send_remote_convert_request:399 ERROR: dlm status = DLM_IVLOCKID", Some("dlm_lock_error")),
        ("(sh,970,0):ocfs2_inode_lock_full_nested:2466 ERROR: status = -22", None),
        ("(sh,970,0):ocfs2_mknod:273 ERROR: status = -22", None),
        ("o2hb: Heartbeat mode set to local", None),
        ("ocfs2: Registered cluster interface o2cb", None),
        ("LAB: about to STOP n2 (qmp stop)", None),
    ];
    for (line, expected) in cases {
        assert_eq!(event_of(line), *expected, "{line}");
    }
}

#[test]
fn near_misses_do_not_match() {
    let lines = [
        // The survive decision mentions fencing but is not a fence.
        "(o2net,1263,0):o2quo_make_decision:166 not fencing this node, heartbeating: 2, connected: 1, lowest: 1 (reachable)",
        "ocfs2: Changing fence method to panic",
        // Follow-ups of an occurrence already counted, and end lines.
        "o2hb: all nodes hb write hung, maybe region DEA93192F0874F53BB5290B5205C6B64 (sdb) is down.",
        "On-disk corruption discovered. Please run fsck.ocfs2 once the filesystem is unmounted.",
        "o2dlm: Waiting on the recovery of node 2 in domain DEA93192F0874F53BB5290B5205C6B64",
        " connection1:0: ping timeout of 5 secs expired, recv timeout 5, last rx 4294, last ping 4295, now 4296",
        // Other subsystems with similar words.
        "EXT4-fs (sda1): Remounting filesystem read-only",
        "EXT4-fs error (device sda1): ext4_lookup:1855: inode #2: comm ls: deleted inode referenced: 12",
        "blk_update_request: I/O error, dev sdb, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0",
        "Buffer I/O error on dev sdb, logical block 0, lost async page write",
        "IO Error -5",
        "e1000e 0000:00:19.0 eth0: Connection to node lost",
        "sd 2:0:0:0: [sdb] Synchronizing SCSI cache",
        "o2dlm: Node 2 joins domain DEA93192F0874F53BB5290B5205C6B64 ",
        "o2dlm: Node 2 leaves domain DEA93192F0874F53BB5290B5205C6B64 ",
        "o2hb: Unable to stabilize heartbeat on region DEA93192F0874F53BB5290B5205C6B64 (sdb)",
        "ocfs2: Unmounting device (254,0) on (node 1)",
        "",
        "o2net: Connection to node",
    ];
    for line in lines {
        assert_eq!(event_of(line), None, "{line}");
    }
}

#[test]
fn truncated_lines_do_not_match() {
    // A template cut before its second fixed part is not the event.
    assert_eq!(
        event_of("Heartbeat write timeout to device sdb after 60000"),
        None
    );
    assert_eq!(event_of("o2hb: node 1 hb write hung for 30s"), None);
    assert_eq!(event_of("o2dlm: Begin recovery on domain X"), None);
}

#[test]
fn fence_lines_count_once_within_the_window() {
    let mut deduper = Deduper::default();
    let quorum = classify("fencing this node because it is only connected to 1 nodes and 2 is needed to make a quorum out of 3 heartbeating nodes").unwrap();
    let stopping = classify("stopping heartbeat on all active regions.").unwrap();
    let sorry =
        classify("*** ocfs2 is very sorry to be fencing this system by restarting ***").unwrap();
    assert!(deduper.is_new(quorum, Some(100_000_000)));
    assert!(!deduper.is_new(stopping, Some(100_000_100)));
    assert!(!deduper.is_new(sorry, Some(100_000_200)));
    // Another group is independent.
    let io = classify("Write error -5 on device \"sdb\"").unwrap();
    assert!(deduper.is_new(io, Some(100_000_300)));
    // A fence past the window is a new one (a later boot replayed in one file).
    assert!(deduper.is_new(sorry, Some(100_000_000 + DEDUP_WINDOW_USEC)));
    // Ungrouped events always count.
    let connected = classify("o2net: Connected to node n1 (num 1) at 10.99.0.1:7777").unwrap();
    assert!(deduper.is_new(connected, Some(1)));
    assert!(deduper.is_new(connected, Some(1)));
}

#[test]
fn every_event_has_a_pattern() {
    for event in Event::ALL {
        assert!(PATTERNS.iter().any(|p| p.event == event), "{event:?}");
        assert_eq!(Event::ALL[event.index()], event);
    }
}
