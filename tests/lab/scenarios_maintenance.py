"""Cluster-wide maintenance mode on the real pair: the online
resize procedure of docs/deploy.md, both daemons enforcing and talking the
peer protocol over the interconnect with a cluster token.

Maintenance is turned on from n1 with the CLI, the volume is unmounted on
n2 and n1 as the procedure says, nothing may remount it for 30 s on either
node (n2's daemon is SIGKILLed and started again in that window), then `maintenance off` on n2 (the other node, its clock set two
minutes behind n1's: records merge by their change time) frees both.
Timings: tests/lab/README.md.
"""

from __future__ import annotations

import time

from labkit import Guest, Lab
from scenario_kit import (ENFORCE, EXPECTED, audit, daemon_config, expect, find,
                          scenario, value, wait_for)

# The admin socket on the guest's own /run (tmpfs), not under the 9p state
# share; the CLI finds it from the same config.
CLUSTER = """
[web]
admin_token_file = "/host/cfg/admin-token"
admin_listen = "unix:/run/ocfs2-watchdog/admin.sock"
[cluster]
token_file = "/host/cfg/cluster-token"
poll_interval = "1s"
"""


def cli(guest: Guest, args: str) -> str:
    return guest.sh(f"/host/bin/ocfs2-watchdog --config /host/cfg/{guest.name}.toml maintenance {args}")


def mounted(guest: Guest) -> bool:
    return guest.sh("grep -c ' /mnt/ocfs2 ocfs2 ' /proc/mounts", check=False).strip() != "0"


def remounts(lab: Lab, node: str) -> list[dict]:
    """missing_mount audit lines that are more than a skip."""
    return [r for r in audit(lab, node) if r.get("rule") == "missing_mount"
            and not str(r.get("outcome", "")).startswith("skipped")]


@scenario(300)
def scenario_maintenance_resize(lab: Lab) -> None:
    """Maintenance on from n1; n2 and n1 unmount; no remount for 30 s on
    either, both audit `skipped_maintenance` and export maintenance 1;
    `maintenance off` on n2; both remounted."""
    n1, n2 = lab.pair()
    lab.online(n1, n2)
    lab.mkfs_and_mount(n1, n2)
    (lab.share / "cfg").mkdir(exist_ok=True)
    # Admin tokens: 32 bytes or more, in a file only root can read.
    (lab.share / "cfg" / "admin-token").write_text("lab-admin-token-" + "0" * 32 + "\n")
    (lab.share / "cfg" / "admin-token").chmod(0o600)
    (lab.share / "cfg" / "cluster-token").write_text("lab-cluster-token-" + "0" * 32 + "\n")
    (lab.share / "cfg" / "cluster-token").chmod(0o600)
    for guest in (n1, n2):
        guest.start_daemon(daemon_config(guest.name, EXPECTED + ENFORCE + CLUSTER))
    for guest, peer in ((n1, "n2"), (n2, "n1")):
        wait_for(f"{guest.name} to reach {peer} over the peer protocol", 30,
                 lambda g=guest, p=peer: find(g.metrics(), "ocfs2_watchdog_cluster_peer_up", peer=p) == 1.0)

    out = cli(n1, 'on --reason "online resize" --for 10m')
    expect("online resize" in out, f"maintenance on answered: {out}")
    set_at = time.monotonic()
    for guest in (n1, n2):
        wait_for(f"{guest.name} to hold for maintenance", 15,
                 lambda g=guest: value(g.metrics(), "ocfs2_watchdog_maintenance") == 1.0, interval=0.5)
    print(f"maintenance_resize: on everywhere {time.monotonic() - set_at:.1f}s after the CLI", flush=True)
    status = cli(n2, "status")
    expect("online resize" in status and "n1" in status, f"n2's status does not show n1's maintenance: {status}")

    n2.sh("umount /mnt/ocfs2", timeout=120)
    n1.sh("umount /mnt/ocfs2", timeout=120)
    unmounted_at = time.monotonic()
    restarted = False
    while time.monotonic() - unmounted_at < 30:
        for guest in (n1, n2):
            expect(not mounted(guest), f"{guest.name} remounted the volume during maintenance")
        if not restarted and time.monotonic() - unmounted_at > 9:
            # n2's daemon killed and started again mid-maintenance (a crash
            # loop, an upgrade): it must hold from its first tick, from the
            # record it persisted and from n1.
            n2.sh("killall -9 ocfs2-watchdog; sleep 1", check=False)
            n2.start_daemon(daemon_config("n2", EXPECTED + ENFORCE + CLUSTER))
            # Its first tick (the series appears then) already holds.
            wait_for("n2's restarted daemon to hold for maintenance", 10,
                     lambda: value(n2.metrics(), "ocfs2_watchdog_maintenance") == 1.0, interval=0.5)
            restarted = True
        time.sleep(3)
    expect(restarted, "n2's daemon was not restarted during maintenance")
    for guest in (n1, n2):
        m = guest.metrics()
        expect(value(m, "ocfs2_watchdog_maintenance") == 1.0, f"{guest.name}: maintenance not 1")
        expect(find(m, "ocfs2_mount_missing", mountpoint="/mnt/ocfs2") == 1.0,
               f"{guest.name}: the daemon does not see the volume missing")
        records = audit(lab, guest.name)
        skips = [r for r in records if r.get("rule") == "missing_mount"
                 and r.get("outcome") == "skipped_maintenance"]
        expect(skips, f"{guest.name}: no skipped_maintenance audit line for missing_mount")
        expect(not remounts(lab, guest.name),
               f"{guest.name}: remount attempted during maintenance: {remounts(lab, guest.name)}")

    # n2's clock two minutes behind n1's (no NTP on that node), more than
    # the time since the `on`, so by wall clock its `off` looks older: it
    # is still the newest change and must end n1's `on` everywhere. Within
    # [cluster] max_clock_skew (5 min): beyond it the peer protocol refuses
    # the node's messages (stale_time), as it should.
    n2.sh("date -s @$(( $(date +%s) - 120 ))")
    out = cli(n2, "off")
    off_at = time.monotonic()
    for guest in (n1, n2):
        wait_for(f"{guest.name} to remount after maintenance off", 60, lambda g=guest: mounted(g))
        print(f"maintenance_resize: {guest.name} remounted {time.monotonic() - off_at:.1f}s after off",
              flush=True)
    for guest in (n1, n2):
        # `started` before and `resolved` after the one remount are audited too.
        outcomes = [r.get("outcome") for r in remounts(lab, guest.name)]
        expect(outcomes.count("success") == 1 and "failed" not in outcomes,
               f"{guest.name}: remount outcomes {outcomes}")
        wait_for(f"{guest.name} to export maintenance 0", 10,
                 lambda g=guest: value(g.metrics(), "ocfs2_watchdog_maintenance") == 0.0)
    off_lines = [r for r in audit(lab, "n1") if r.get("outcome") == "maintenance_off"]
    expect(off_lines and "n2" in str(off_lines[-1].get("caller")),
           f"n1 did not audit n2's off with who set it: {off_lines}")
    n1.sh("touch /mnt/ocfs2/after-resize && ls /mnt/ocfs2/after-resize")
