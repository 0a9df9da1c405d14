"""The o2cb restart on the real kernel: the timeouts a restart with the bare
`o2cb` tool must write before heartbeat (the kernel's defaults make the peer
refuse the connection), and the rejoin the restart is judged by.
See tests/lab/README.md for wall times.
"""

from __future__ import annotations

from labkit import Lab
from scenario_kit import EXPECTED, audit, daemon_config, expect, find, scenario, wait_for

# o2cb_down acts within seconds; missing_mount waits long enough for the
# restart to be done first, as on a host where o2cb went down under a mount.
RESTART_FIRST = """
[remediation]
mode = "enforce"
[remediation.rules.missing_mount]
for = "25s"
[remediation.rules.o2cb_down]
for = "2s"
"""

CLUSTER = "/sys/kernel/config/cluster/labclu"


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
    n2.start_daemon(daemon_config("n2", EXPECTED + RESTART_FIRST))
    wait_for("n2's daemon to see the running timeouts", 60,
             lambda: find(n2.metrics(), "ocfs2_o2cb_idle_timeout_seconds", o2cb_cluster="labclu") == 10.0)
    n2.sh("umount /mnt/ocfs2 && for i in $(seq 1 30); do o2cb unregister-cluster labclu && break; sleep 1; done; "
          "! o2cb cluster-status", timeout=120)

    def restarted():
        return [r for r in audit(lab, "n2") if r.get("rule") == "o2cb_down" and r.get("phase") == "after"]
    after = wait_for("n2 to restart o2cb", 90, restarted, interval=2)
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
