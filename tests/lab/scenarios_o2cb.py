"""The o2cb restart on the real kernel: the timeouts a restart with the bare
`o2cb` tool must write before heartbeat (the kernel's defaults make the peer
refuse the connection), and the rejoin the restart is judged by.
See tests/lab/README.md for wall times.
"""

from __future__ import annotations

from labkit import Lab
from scenario_kit import (EXPECTED, PEER_PROTOCOL, audit, daemon_config, expect, find, scenario, wait_for,
                          write_cluster_token)



def restart_first(missing_mount_for: str, remediation: str = "") -> str:
    """Enforcing; o2cb_down acts within seconds, missing_mount only after
    `missing_mount_for`, so the restart (and its undo) run first.
    `remediation`: more `[remediation]` keys."""
    return ("\n[remediation]\nmode = \"enforce\"\nstartup_grace = \"0s\"\n" + remediation +
            f"[remediation.rules.missing_mount]\nfor = \"{missing_mount_for}\"\n"
            "[remediation.rules.o2cb_down]\nfor = \"2s\"\n")


CLUSTER = "/sys/kernel/config/cluster/labclu"


def o2cb_down_records(lab: Lab, node: str, phase: str, skip: int) -> list[dict]:
    """This scenario's audit lines of a phase: the share (and its audit log)
    lives for the whole lab run, so the first `skip` lines are earlier ones."""
    return [r for r in audit(lab, node)[skip:] if r.get("action") == "restart_o2cb" and r.get("phase") == phase]


@scenario(360)
def scenario_o2cb_restart_timeouts(lab: Lab) -> None:
    """n2's o2cb taken offline under the daemon (lab timeouts, no sysconfig
    file): the restart writes the timeouts the stack ran with before heartbeat,
    so the remount connects to n1 instead of being refused."""
    n1, n2 = lab.pair()
    # The lab's short timeouts (dead 7, idle 10 s), not o2cb's defaults: a
    # plain `o2cb register-cluster` would come back with 31 / 30 s.
    lab.online(n1, n2)
    lab.mkfs_and_mount(n1, n2)
    earlier = len(audit(lab, "n2"))
    # The restart takes the cluster lease from the peers: n1's daemon (dry
    # run) answers.
    write_cluster_token(lab)
    n1.start_daemon(daemon_config("n1", PEER_PROTOCOL))
    n2.start_daemon(daemon_config("n2", EXPECTED + restart_first("25s") + PEER_PROTOCOL))
    wait_for("n2's daemon to see the running timeouts", 60,
             lambda: find(n2.metrics(), "ocfs2_o2cb_idle_timeout_seconds", o2cb_cluster="labclu") == 10.0)
    n2.sh("umount /mnt/ocfs2 && for i in $(seq 1 30); do o2cb unregister-cluster labclu && break; sleep 1; done; "
          "! o2cb cluster-status", timeout=120)

    after = wait_for("n2 to restart o2cb", 90, lambda: o2cb_down_records(lab, "n2", "after", earlier), interval=2)
    expect(after[0].get("outcome") == "success", f"o2cb_down: {after[0]}")
    detail = after[0].get("detail", "")
    for written in ("heartbeat/dead_threshold=7", "idle_timeout_ms=10000"):
        expect(written in detail, f"restart did not write {written}: {detail}")
    values = n2.sh(f"cat {CLUSTER}/idle_timeout_ms {CLUSTER}/heartbeat/dead_threshold").split()
    expect(values == ["10000", "7"], f"n2 runs with {values}")

    def rejoined():
        m = n2.metrics()
        return (find(m, "ocfs2_mount_missing", mountpoint="/mnt/ocfs2") == 0.0
                and find(m, "ocfs2_net_connected", node_num="1") == 1.0)
    wait_for("n2 remounted and connected to n1", 120, rejoined, interval=2)
    n2.sh("touch /mnt/ocfs2/after-restart")
    n1.sh("ls /mnt/ocfs2/after-restart")
    expect(n2.boots() == 1 and n1.boots() == 1, "a node rebooted")


GLOBAL_ONLINE = """set -e
mkdir -p /etc/ocfs2 /dlm /mnt/ocfs2
cp /host/lab/cluster.conf /etc/ocfs2/cluster.conf
modprobe ocfs2_stack_o2cb; modprobe ocfs2_dlmfs; modprobe ocfs2
grep -q " /dlm " /proc/mounts || mount -t ocfs2_dlmfs ocfs2_dlmfs /dlm
o2cb heartbeat-mode labclu global
for d in vda vdb vdc; do o2cb add-heartbeat labclu /dev/$d; done
o2cb register-cluster labclu
echo 7 > /sys/kernel/config/cluster/labclu/heartbeat/dead_threshold
echo 10000 > /sys/kernel/config/cluster/labclu/idle_timeout_ms
o2cb start-heartbeat labclu
o2cb cluster-status
"""

# The first `o2cb stop-heartbeat` fails, as a stack that will not stop does:
# a failure after the restart unmounted the volume.
STOP_FAILS_ONCE = """set -e
mv /usr/sbin/o2cb /usr/sbin/o2cb.real
cat > /usr/sbin/o2cb <<'WRAP'
#!/bin/sh
if [ "$1" = stop-heartbeat ] && [ ! -e /tmp/o2cb-failed-once ]; then
    touch /tmp/o2cb-failed-once
    echo "injected failure: stop-heartbeat refused" >&2
    exit 1
fi
exec /usr/sbin/o2cb.real "$@"
WRAP
chmod 755 /usr/sbin/o2cb
"""



# n2's writes to its third heartbeat disk (QEMU drive virtio2) throttled to
# one byte a second, its reads not: the region's heartbeat writes time out on
# n2, so the region fails there, while n2 still reads n1's fresh slot on it
# (the region was lost by n2 alone, o2cb_region's OnlyThisNode).
THROTTLE_N2_REGION_WRITES = "block_set_io_throttle virtio2 0 0 1 0 0 0"


@scenario(600)
def scenario_o2cb_restart_undo(lab: Lab) -> None:
    """Global heartbeat on three shared disks; n2's writes to the third hang
    (QEMU I/O throttle), its reads do not: the region fails on n2 alone, so
    o2cb_down restarts o2cb there, under the cluster lease, with the volume
    mounted. The stack then refuses to stop (injected, after the unmount):
    the undo journal mounts the volume back exactly, audits the step, and
    the restart is reported failed."""
    hb = [lab.disk("hb2", "64M"), lab.disk("hb3", "64M")]
    n1, n2 = lab.pair(extra_disks={"n1": hb, "n2": hb})
    # The volume is labelled as EXPECTED names it, so the undo finds it again.
    for device, options in (("/dev/vda", "-L labvol -J size=16M"), ("/dev/vdb", "-J size=4M"),
                            ("/dev/vdc", "-J size=4M")):
        n1.sh(f"mkfs.ocfs2 -q -F -N 4 --cluster-stack=o2cb --cluster-name=labclu --global-heartbeat "
              f"{options} {device}", timeout=120)
    for guest in (n1, n2):
        guest.sh(GLOBAL_ONLINE, timeout=120)
    for guest in (n1, n2):
        guest.sh("mount.ocfs2 /dev/vda /mnt/ocfs2", timeout=180)
    # What the restart's order rests on, on this kernel (n1: regions running,
    # n2 connected): dead_threshold writes are ignored once a region exists,
    # idle_timeout_ms is refused while a peer is connected.
    facts = n1.sh(f"echo 9 > {CLUSTER}/heartbeat/dead_threshold; cat {CLUSTER}/heartbeat/dead_threshold; "
                  f"(echo 20000 > {CLUSTER}/idle_timeout_ms) 2>/dev/null && echo accepted || echo refused; "
                  f"cat {CLUSTER}/idle_timeout_ms").split()
    expect(facts == ["7", "refused", "10000"], f"configfs after heartbeat start: {facts}")
    before = n2.sh("grep ' /mnt/ocfs2 ' /proc/self/mountinfo | cut -d' ' -f3-6")
    n2.sh(STOP_FAILS_ONCE)
    earlier = len(audit(lab, "n2"))
    write_cluster_token(lab)
    n1.start_daemon(daemon_config("n1", PEER_PROTOCOL))
    # A short storm window and release jitter: the hung write below is a
    # storm for the brake, and the lab need not wait the default 2 min + 30 s.
    short_storm = 'storm_window = "40s"\nstorm_release_jitter = "5s"\n'
    n2.start_daemon(daemon_config("n2", EXPECTED + restart_first("600s", short_storm) + PEER_PROTOCOL))
    wait_for("n2's daemon to see both nodes live", 60,
             lambda: find(n2.metrics(), "ocfs2_o2cb_cluster_online", o2cb_cluster="labclu") == 1.0)
    # n2's writes to its third region fail: the region fails there after the
    # write timeout; two regions of three keep the node up.
    n2.qmp(THROTTLE_N2_REGION_WRITES)

    # The hung write makes n2's kernel negotiate (`hb write hung ...
    # negotiate timeout`), which the storm brake takes as a storm for
    # `storm_window` (40 s here), then its hold-down (2 x the 12 s heartbeat
    # timeout) and the release jitter: the restart comes after that
    # (`skipped_storm` first).
    after = wait_for("n2's o2cb_down restart to end", 300,
                     lambda: o2cb_down_records(lab, "n2", "after", earlier), interval=2)
    held = [r for r in audit(lab, "n2")[earlier:] if r.get("rule") == "o2cb_down"
            and r.get("outcome") == "skipped_storm"]
    print(f"n2 o2cb_down held by the storm brake first: {[r.get('detail', '')[:80] for r in held]}", flush=True)
    expect(held, "the hung heartbeat write held o2cb_down as a storm first")
    expect(after[0].get("outcome") == "failed", f"o2cb_down: {after[0]}")
    error = after[0].get("error", "")
    expect("injected failure" in error and "undone: remount /mnt/ocfs2" in error, f"error: {error}")
    started = o2cb_down_records(lab, "n2", "before", earlier)
    expect("only this node lost region" in started[0].get("evidence", ""), f"o2cb_down evidence: {started[0]}")
    print(f"n2 o2cb_down: {error}", flush=True)
    undo = o2cb_down_records(lab, "n2", "undo", earlier)
    expect(len(undo) == 1 and undo[0].get("outcome") == "success"
           and undo[0].get("detail", "").startswith("remount /mnt/ocfs2"), f"undo lines: {undo}")
    # Back exactly as it was (device, root, mount point, per-mount flags).
    now = n2.sh("grep ' /mnt/ocfs2 ' /proc/self/mountinfo | cut -d' ' -f3-6")
    expect(now == before, f"mount after undo {now!r}, before {before!r}")
    n2.sh("touch /mnt/ocfs2/after-undo")
    n1.sh("ls /mnt/ocfs2/after-undo")
    expect(n2.boots() == 1 and n1.boots() == 1, "a node rebooted")
