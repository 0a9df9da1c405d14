"""The first eight scenarios: a healthy pair, the kernel's own failure
modes (pause/zombie, interconnect cut, slow heartbeat writes, an iSCSI target
restart) and the daemon's single-node remediation (stacked binds, a failed
mount, o2cb offline). Each boots a fresh pair; see tests/lab/README.md.
"""

from __future__ import annotations


from labkit import Lab
from scenario_kit import (ENFORCE, EXPECTED, PEER_PROTOCOL, action_outcomes, audit, daemon_config, events, expect,
                          find, mounted_pair, scenario, value, volume_uuid, wait_for, watch_until_reboot, write_cluster_token)



@scenario(300)
def scenario_healthy_pair(lab: Lab) -> None:
    """Cluster online, both nodes live, connected, in the DLM domain, mounts healthy."""
    n1, n2, uuid = mounted_pair(lab)
    for guest, peer in ((n1, "2"), (n2, "1")):
        def healthy():
            m = guest.metrics()
            return m if find(m, "ocfs2_heartbeat_disk_active", node_num=peer) == 1.0 else None
        m = wait_for(f"{guest.name} to see its peer heartbeat on disk", 60, healthy)
        expect(find(m, "ocfs2_o2cb_cluster_online", o2cb_cluster="labclu") == 1.0, "cluster not online")
        for node in ("1", "2"):
            expect(find(m, "ocfs2_heartbeat_node_live", hb_region=uuid, node_num=node) == 1.0,
                   f"{guest.name}: node {node} not live in heartbeat")
            expect(find(m, "ocfs2_dlm_domain_member", uuid=uuid, node_num=node) == 1.0,
                   f"{guest.name}: node {node} not in the DLM domain")
        expect(find(m, "ocfs2_net_connected", node_num=peer) == 1.0, f"{guest.name}: peer not connected")
        expect(find(m, "ocfs2_mount_stacked", mountpoint="/mnt/ocfs2") == 1.0, "mount not single-layered")
        expect(find(m, "ocfs2_mount_info", mountpoint="/mnt/ocfs2", uuid=uuid) == 1.0, "mount info missing")
        for family in ("ocfs2_mount_readonly", "ocfs2_mount_stuck", "ocfs2_mount_missing"):
            expect(find(m, family, mountpoint="/mnt/ocfs2") == 0.0, f"{guest.name}: {family} set")
        expect(find(m, "ocfs2_mount_reachable", mountpoint="/mnt/ocfs2") == 1.0, "mount not reachable")
        ratio = find(m, "ocfs2_heartbeat_timeout_ratio", hb_region=uuid)
        expect(ratio is not None and ratio < 0.5, f"{guest.name}: heartbeat ratio {ratio}")
        successes = {s: v for s, v in m.items() if s.startswith("ocfs2_watchdog_collector_success{")}
        expect(len(successes) >= 9, f"{guest.name}: collector success series missing: {sorted(successes)}")
        failing = [s for s, v in successes.items() if v != 1.0]
        expect(not failing, f"{guest.name}: collectors failing: {failing}")
        expect(events(m, "fence") == 0.0, "a fence was counted")


@scenario(480)
def scenario_pause_zombie(lab: Lab) -> None:
    """n2 paused past the heartbeat timeout, then resumed: eviction, recovery, zombie."""
    n1, n2, uuid = mounted_pair(lab)
    wait_for("n1 to see n2 on disk", 60,
             lambda: find(n1.metrics(), "ocfs2_heartbeat_disk_active", node_num="2") == 1.0)
    n2.qmp("stop")
    def evicted():
        m = n1.metrics()
        done = (find(m, "ocfs2_heartbeat_node_live", hb_region=uuid, node_num="2") == 0.0
                and events(m, "dlm_node_evicted") >= 1 and events(m, "journal_replay") >= 1)
        return m if done else None
    m = wait_for("n1 to evict n2 and replay its journal", 90, evicted)
    expect(events(m, "net_idle_timeout") >= 1, "no o2net idle timeout counted")
    expect(events(m, "dlm_recovery") >= 1, "no DLM recovery counted")
    expect(find(m, "ocfs2_dlm_domain_member", uuid=uuid, node_num="2") == 0.0, "n2 still in n1's domain")
    expect(find(m, "ocfs2_heartbeat_disk_active", hb_region=uuid, node_num="2") == 0.0,
           "n2's on-disk heartbeat still active while paused")
    recent = n1.status()["kernel_log"]["recent"]
    expect(any(e.get("event") == "dlm_node_evicted" for e in recent), "eviction missing from /status")

    n2.qmp("cont")
    # The survivor: n2 heartbeats and reconnects, but its domain map lacks n2.
    wait_for("n1 to show the zombie", 120,
             lambda: find(n1.metrics(), "ocfs2_dlm_membership_mismatch", uuid=uuid, node_num="2",
                          kind="missing_from_domain") == 1.0)
    # The zombie: its own debugfs looks healthy, but the DLM refuses its locks.
    n2.sh("touch /mnt/ocfs2/after-resume-$(date +%s)", timeout=60, check=False)
    wait_for("n2 to count its refused lock", 60,
             lambda: events(n2.metrics(), "dlm_lock_error") >= 1)


@scenario(480)
def scenario_interconnect_cut(lab: Lab) -> None:
    """Link cut: idle timeouts on both, n2 fences, n1 evicts; n2's next boot knows."""
    n1, n2, uuid = mounted_pair(lab, reset_in_place=("n2",))
    wait_for("n1 to see n2 on disk", 60,
             lambda: find(n1.metrics(), "ocfs2_heartbeat_disk_active", node_num="2") == 1.0)
    n1.qmp("set_link net0 off")
    seen_idle = {"n2": False}

    def observe(m):
        # n2's own counters until it fences itself.
        if events(m, "net_idle_timeout") >= 1:
            seen_idle["n2"] = True

    watch_until_reboot(n2, observe)
    expect("ocfs2 is very sorry to be fencing this system" in n2.console.read_text(errors="replace"),
           "n2 rebooted without the fence message")
    m = wait_for("n1 to evict n2 and replay its journal", 90,
                 lambda: (lambda m: m if events(m, "journal_replay") >= 1 and events(m, "dlm_node_evicted") >= 1 else None)(n1.metrics()))
    expect(events(m, "net_idle_timeout") >= 1, "n1 counted no o2net idle timeout")
    expect(seen_idle["n2"], "n2 counted no o2net idle timeout before it fenced")
    # The fenced node's next boot: the fence is found in pstore and kept.
    n2.start_daemon(daemon_config("n2"))
    m = wait_for("n2 to report the previous boot's fence", 60,
                 lambda: (lambda m: m if m.get("ocfs2_fence_previous_boot") == 1.0 else None)(n2.metrics()))
    expect(m.get("ocfs2_fences_total") == 1.0, f"fences_total {m.get('ocfs2_fences_total')}")


@scenario(480)
def scenario_slow_heartbeat(lab: Lab) -> None:
    """dm-delay under n2's mount, write delay raised live: ratio, slow samples, hung, timeout."""
    n1, n2 = lab.pair(reset_in_place=("n2",))
    lab.online(n1, n2)
    n1.sh("mkfs.ocfs2 -q -F -N 4 --cluster-stack=o2cb --cluster-name=labclu -L labvol -J size=16M /dev/vda",
          timeout=120)
    n1.sh("mount.ocfs2 /dev/vda /mnt/ocfs2", timeout=180)
    table = "0 $(blockdev --getsz /dev/vda) delay /dev/vda 0 {r} /dev/vda 0 {w}"
    n2.sh("modprobe dm-delay && dmsetup create --noudevsync slow --table \"" + table.format(r=0, w=0)
          + "\" && dmsetup mknodes && mount.ocfs2 /dev/mapper/slow /mnt/ocfs2", timeout=180)
    for guest in (n1, n2):
        guest.start_daemon(daemon_config(guest.name))
    uuid = volume_uuid(n1)

    def set_write_delay(ms: int) -> None:
        n2.sh("dmsetup suspend --nolockfs slow && dmsetup reload slow --table \"" + table.format(r=0, w=ms)
              + "\" && dmsetup resume slow", timeout=60)

    # Slow but alive: each write takes 6 s of a 12 s timeout, so the time since
    # the last good write peaks above half the timeout (o2hbmonitor's warning).
    set_write_delay(6000)
    m = wait_for("n2's heartbeat ratio to rise", 60,
                 lambda: (lambda m: m if value(m, "ocfs2_heartbeat_timeout_ratio_max", hb_region=uuid) >= 0.5
                          and value(m, "ocfs2_heartbeat_slow_samples_total", hb_region=uuid) >= 1 else None)(n2.metrics()))
    # Then hung: n2 negotiates, times out and fences; count what it saw first.
    set_write_delay(30000)
    last = {"m": m}
    watch_until_reboot(n2, lambda m: last.update(m=m))
    seen = last["m"]
    expect(events(seen, "hb_write_hung") >= 1, "no hb write hung event counted before the fence")
    console = n2.console.read_text(errors="replace")
    expect("Heartbeat write timeout" in console, "the kernel logged no heartbeat write timeout")
    n2.start_daemon(daemon_config("n2"))
    wait_for("n2 to report the previous boot's fence", 60,
             lambda: n2.metrics().get("ocfs2_fence_previous_boot") == 1.0)
    m = wait_for("n1 to evict n2", 90, lambda: events(n1.metrics(), "dlm_node_evicted") >= 1)




@scenario(300)
def scenario_stacked_binds(lab: Lab) -> None:
    """20 bind layers on n1's OCFS2 mount, daemon enforcing: exactly one left."""
    n1, n2 = lab.pair()
    lab.online(n1, n2)
    lab.mkfs_and_mount(n1, n2)
    n1.start_daemon(daemon_config("n1", ENFORCE))
    n1.sh("for i in $(seq 1 20); do mount --bind /mnt/ocfs2 /mnt/ocfs2; done; grep -c ' /mnt/ocfs2 ' /proc/self/mountinfo")
    wait_for("n1 to unstack to one layer", 90,
                 lambda: (lambda m: m if find(m, "ocfs2_mount_stacked", mountpoint="/mnt/ocfs2") == 1.0
                          and value(m, "ocfs2_watchdog_actions_total", rule="duplicate_mount_layers",
                                    outcome="success") >= 1 else None)(n1.metrics()))
    layers = n1.sh("grep -c ' /mnt/ocfs2 ' /proc/self/mountinfo").strip()
    expect(layers == "1", f"{layers} layers left in the kernel's table")
    n1.sh("touch /mnt/ocfs2/still-here && ls /mnt/ocfs2/still-here")
    outcomes = action_outcomes(lab, "n1", "duplicate_mount_layers")
    expect("success" in outcomes, f"audit outcomes {outcomes}")
    phases = [r.get("phase") for r in audit(lab, "n1") if r.get("action") == "unstack"]
    expect("before" in phases and "after" in phases, f"audit phases {phases}")


@scenario(360)
def scenario_failed_mount(lab: Lab) -> None:
    """n2's volume unmounted behind its back, daemon enforcing: remounted."""
    n1, n2 = lab.pair()
    lab.online(n1, n2)
    lab.mkfs_and_mount(n1, n2)
    n2.start_daemon(daemon_config("n2", EXPECTED + ENFORCE))
    n2.sh("umount /mnt/ocfs2", timeout=120)
    wait_for("n2 to remount the volume", 120,
             lambda: (lambda m: find(m, "ocfs2_mount_missing", mountpoint="/mnt/ocfs2") == 0.0
                      and find(m, "ocfs2_mount_stacked", mountpoint="/mnt/ocfs2") == 1.0
                      and value(m, "ocfs2_watchdog_actions_total", rule="missing_mount", outcome="success") >= 1)(n2.metrics()))
    n2.sh("grep ' /mnt/ocfs2 ocfs2 ' /proc/mounts && touch /mnt/ocfs2/remounted")
    expect("success" in action_outcomes(lab, "n2", "missing_mount"), "no successful remount in the audit log")


@scenario(420)
def scenario_o2cb_offline(lab: Lab) -> None:
    """o2cb taken offline on n2, daemon enforcing: stack restarted, volume remounted."""
    n1, n2 = lab.pair()
    # o2cb's own defaults, which a plain `o2cb register-cluster` restores.
    lab.online(n1, n2, dead=31, idle=30000)
    lab.mkfs_and_mount(n1, n2)
    # Offline before the daemon starts, as after a reboot that did not bring
    # o2cb back (started first, the daemon would remount before o2cb could go
    # down). The kernel stops the volume's heartbeat after the umount
    # asynchronously (its usermode helper runs ocfs2_hb_ctl -K): o2cb refuses
    # to go offline until then.
    n2.sh("umount /mnt/ocfs2 && for i in $(seq 1 30); do o2cb unregister-cluster labclu && break; sleep 1; done; "
          "! o2cb cluster-status", timeout=120)
    # The restart takes the cluster lease from the peers: n1's daemon (dry
    # run) answers that it is not acting.
    write_cluster_token(lab)
    n1.start_daemon(daemon_config("n1", PEER_PROTOCOL))
    n2.start_daemon(daemon_config("n2", EXPECTED + ENFORCE + PEER_PROTOCOL))
    def restored():
        m = n2.metrics()
        return (find(m, "ocfs2_o2cb_cluster_online", o2cb_cluster="labclu") == 1.0
                and find(m, "ocfs2_mount_missing", mountpoint="/mnt/ocfs2") == 0.0)
    wait_for("n2 to restart o2cb and remount", 180, restored, interval=2)
    outcomes = action_outcomes(lab, "n2", "o2cb_down")
    expect("success" in outcomes, f"o2cb_down audit outcomes {outcomes}")
    n2.sh("o2cb cluster-status && touch /mnt/ocfs2/after-restart")


@scenario(480)
def scenario_iscsi_target_restart(lab: Lab) -> None:
    """The volume on an iSCSI LUN served by tgt in n1; target killed, then restarted."""
    lun = lab.disk("lun", "512M")
    n1, n2 = lab.pair(extra_disks={"n1": [lun]})
    n1.sh("sh /host/lab/iscsi.sh target", timeout=60)
    for guest in (n1, n2):
        guest.sh("sh /host/lab/iscsi.sh initiator 10.99.0.1:3260", timeout=120)
    # Heartbeat timeout 120 s, as multipath/iSCSI users run it: longer than the
    # outage, so the node rides it out instead of fencing.
    lab.online(n1, n2, dead=61, idle=30000)
    lab.mkfs_and_mount(n1, n2, device="/dev/sda")
    for guest in (n1, n2):
        guest.start_daemon(daemon_config(guest.name))
    target = "iqn.2024-01.lab.ocfs2:shared"

    def state(m, value):
        return find(m, "ocfs2_iscsi_session_state", target=target, state=value) == 1.0

    def disk(m, value):
        return find(m, "ocfs2_scsi_device_state", device="/dev/sda", state=value) == 1.0

    m = wait_for("n2 to see its session logged in", 60,
                 lambda: (lambda m: m if state(m, "LOGGED_IN") and disk(m, "running") else None)(n2.metrics()))
    expect(find(m, "ocfs2_iscsi_session_logged_in", target=target) == 1.0, "session not logged in")
    expect(find(m, "ocfs2_storage_path_info", mountpoint="/mnt/ocfs2", target=target) == 1.0,
           "the mount's storage path does not name the target")

    n1.sh("killall -9 tgtd")
    wait_for("n2's session FAILED and its disk blocked", 60,
             lambda: (lambda m: state(m, "FAILED") and disk(m, "blocked"))(n2.metrics()))
    m = wait_for("recovery_tmo to expire: FREE and transport-offline", 90,
                 lambda: (lambda m: m if state(m, "FREE") and disk(m, "transport-offline") else None)(n2.metrics()))
    expect(find(m, "ocfs2_iscsi_session_logged_in", target=target) == 0.0, "logged_in still 1")
    expect(events(m, "iscsi_conn_error") >= 1, "no iSCSI connection error counted")
    expect(events(m, "iscsi_recovery_timeout") >= 1, "no iSCSI recovery timeout counted")

    n1.sh("sh /host/lab/iscsi.sh target", timeout=60)
    wait_for("iscsid to log n2 back in", 120,
             lambda: (lambda m: state(m, "LOGGED_IN") and disk(m, "running"))(n2.metrics()), interval=2)
    expect(n2.boots() == 1 and n1.boots() == 1, "a node rebooted during the outage")


