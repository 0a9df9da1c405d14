"""The cluster lease on the real kernel (issue #12): two enforcing daemons
whose o2cb stacks are down at the same time restart them one after the
other, never together (the peers' route); a daemon killed while it holds
the lease does not hold up the other node for longer than its own restart;
and with the stacks up, serialized remounts take the lease through dlmfs,
whose release (close + unlink) lets the other node in.
See tests/lab/README.md for wall times.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from labkit import Guest, Lab
from scenario_kit import (ENFORCE, EXPECTED, PEER_PROTOCOL, audit, daemon_config, expect, find, scenario, value, wait_for,
                          write_cluster_token)

# `o2cb register-cluster` takes 15 s: a restart long enough for the other
# node to ask for the lease while it runs (and to kill its daemon mid-way).
SLOW_REGISTER = """set -e
mv /usr/sbin/o2cb /usr/sbin/o2cb.real
cat > /usr/sbin/o2cb <<'WRAP'
#!/bin/sh
if [ "$1" = register-cluster ]; then sleep 15; fi
exec /usr/sbin/o2cb.real "$@"
WRAP
chmod 755 /usr/sbin/o2cb
"""

OFFLINE = ("umount /mnt/ocfs2 && for i in $(seq 1 30); do o2cb unregister-cluster labclu && break; sleep 1; done; "
           "! o2cb cluster-status")


def restarts(lab: Lab, node: str, phase: str, skip: int) -> list[dict]:
    return [r for r in audit(lab, node)[skip:] if r.get("action") == "restart_o2cb" and r.get("phase") == phase]


def at(record: dict) -> float:
    return datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()


def both_offline(lab: Lab) -> tuple[Guest, Guest, dict[str, int]]:
    """The pair mounted, then both nodes unmounted and o2cb offline at the
    same moment, then both daemons started enforcing with the cluster token
    (offline first, as after a reboot that did not bring o2cb back: started
    first, the daemons would remount before o2cb could go down)."""
    n1, n2 = lab.pair()
    # o2cb's own defaults, which a plain `o2cb register-cluster` restores.
    lab.online(n1, n2, dead=31, idle=30000)
    lab.mkfs_and_mount(n1, n2)
    for guest in (n1, n2):
        guest.sh(SLOW_REGISTER)
    errors: list[str] = []

    def offline(guest: Guest) -> None:
        try:
            guest.sh(OFFLINE, timeout=120)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(f"{guest.name}: {error}")

    threads = [threading.Thread(target=offline, args=(g,)) for g in (n1, n2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    expect(not errors, f"taking o2cb offline: {errors}")
    write_cluster_token(lab)
    earlier = {g.name: len(audit(lab, g.name)) for g in (n1, n2)}
    for guest in (n1, n2):
        guest.start_daemon(daemon_config(guest.name, EXPECTED + ENFORCE + PEER_PROTOCOL))
    return n1, n2, earlier


def back(guest: Guest) -> bool:
    m = guest.metrics()
    return (find(m, "ocfs2_o2cb_cluster_online", o2cb_cluster="labclu") == 1.0
            and find(m, "ocfs2_mount_missing", mountpoint="/mnt/ocfs2") == 0.0)


@scenario(480)
def scenario_concurrent_o2cb_restart(lab: Lab) -> None:
    """Both nodes unmounted and o2cb offline at the same time, both daemons
    enforcing: both come back, and the two restarts did not overlap."""
    n1, n2, earlier = both_offline(lab)

    def both_done():
        return all(restarts(lab, g, "after", earlier[g]) for g in ("n1", "n2"))
    wait_for("both nodes to restart o2cb", 300, both_done, interval=2)
    spans = {}
    for node in ("n1", "n2"):
        before = restarts(lab, node, "before", earlier[node])
        after = restarts(lab, node, "after", earlier[node])
        expect(len(before) == 1 and len(after) == 1, f"{node}: restarts {before} {after}")
        expect(after[0].get("outcome") == "success", f"{node}: {after[0]}")
        spans[node] = (at(before[0]), at(after[0]))
    first, second = sorted(spans, key=lambda n: spans[n][0])
    print(f"restarts: {first} {spans[first][1] - spans[first][0]:.1f} s, then {second} "
          f"{spans[second][0] - spans[first][1]:.1f} s after it ended", flush=True)
    expect(spans[second][0] > spans[first][1],
           f"the restarts overlapped: {first} {spans[first]}, {second} {spans[second]}")
    waited = [r for r in audit(lab, second)[earlier[second]:]
              if r.get("rule") == "o2cb_down" and r.get("outcome") == "skipped_lease"]
    expect(waited, f"{second} never waited for the lease")
    expect("lease busy by peers" in waited[0].get("detail", ""), f"{second}: {waited[0]}")
    for guest in (n1, n2):
        wait_for(f"{guest.name} online and remounted", 120, lambda g=guest: back(g), interval=2)
    n1.sh("touch /mnt/ocfs2/from-n1")
    n2.sh("ls /mnt/ocfs2/from-n1")
    expect(n1.boots() == 1 and n2.boots() == 1, "a node rebooted")


# How long the other node may wait after the holder's daemon was killed: the
# restart of the killed daemon (5 s, as systemd's RestartSec) plus its start,
# one tick and the lease's two rounds (2 x 2 s + up to 2 s of jitter).
KILLED_HOLDER_BOUND = 60


@scenario(480)
def scenario_lease_holder_killed(lab: Lab) -> None:
    """Both stacks down; the daemon that took the lease first is SIGKILLed
    mid-restart. While it is gone the other node fails closed (its peer is
    unreachable, its own stack down: nothing says the holder is not acting);
    the killed daemon restarts (as systemd would) answering "not holding",
    and the other node restarts within the bound."""
    n1, n2, earlier = both_offline(lab)
    nodes = {"n1": n1, "n2": n2}

    def started():
        return [(g, r) for g in nodes for r in restarts(lab, g, "before", earlier[g])]
    holder_name, _ = wait_for("one node to start its restart", 120, started, interval=0.5)[0]
    holder = nodes[holder_name]
    other = n2 if holder is n1 else n1
    def unreachable() -> float:
        return value(other.metrics(), "ocfs2_watchdog_lease_acquisitions_total",
                     route="peers", result="peers_unreachable")
    before_kill = unreachable()
    holder.sh("kill -9 $(pidof ocfs2-watchdog)")
    killed = time.monotonic()
    print(f"{holder.name} held the lease; its daemon killed mid-restart", flush=True)
    wait_for(f"{other.name} to fail closed on the unreachable holder", 30,
             lambda: unreachable() > before_kill)
    expect(not restarts(lab, other.name, "before", earlier[other.name]),
           f"{other.name} restarted while the holder's daemon was gone")
    time.sleep(max(0.0, 5 - (time.monotonic() - killed)))
    holder.start_daemon(daemon_config(holder.name, EXPECTED + ENFORCE + PEER_PROTOCOL))
    wait_for(f"{other.name} to restart o2cb", KILLED_HOLDER_BOUND + 30,
             lambda: restarts(lab, other.name, "before", earlier[other.name]), interval=0.5)
    took = time.monotonic() - killed
    print(f"{other.name} acted {took:.1f} s after the holder's daemon was killed", flush=True)
    expect(took <= KILLED_HOLDER_BOUND, f"{other.name} acted {took:.1f} s after the kill (bound {KILLED_HOLDER_BOUND} s)")
    interrupted = [r for r in audit(lab, holder.name)[earlier[holder.name]:]
                   if r.get("rule") == "o2cb_down" and r.get("outcome") == "interrupted"]
    expect(interrupted, f"{holder.name}'s restarted daemon did not audit the killed restart as interrupted")
    after = wait_for(f"{other.name}'s restart to end", 180,
                     lambda: restarts(lab, other.name, "after", earlier[other.name]), interval=2)
    expect(after[0].get("outcome") == "success", f"{other.name}: {after[0]}")
    wait_for(f"{other.name} online and remounted", 120, lambda: back(other), interval=2)


SECOND_VOLUME = """
[[mounts.expected]]
mountpoint = "/mnt/ocfs2b"
source = "LABEL=labvolb"
fstype = "ocfs2"
options = "_netdev"
"""


@scenario(360)
def scenario_serialized_remounts_by_dlmfs(lab: Lab) -> None:
    """Two volumes; both nodes keep the first mounted (their heartbeat, so
    the DLM can be trusted) and lose the second at the same moment, with
    `serialize_remounts`: each remount takes the lease through dlmfs, and a
    grant's release (close + unlink) lets the other node's trylock in."""
    second = lab.disk("volb", "256M")
    n1, n2 = lab.pair(extra_disks={"n1": [second], "n2": [second]})
    lab.online(n1, n2)
    lab.mkfs_and_mount(n1, n2)
    n1.sh("mkfs.ocfs2 -q -F -N 4 --cluster-stack=o2cb --cluster-name=labclu -L labvolb -J size=8M /dev/vdb",
          timeout=120)
    for guest in (n1, n2):
        guest.sh("mkdir -p /mnt/ocfs2b && mount.ocfs2 /dev/vdb /mnt/ocfs2b", timeout=180)
    write_cluster_token(lab)
    config = EXPECTED + SECOND_VOLUME + ENFORCE.replace(
        'startup_grace = "0s"\n', 'startup_grace = "0s"\nserialize_remounts = true\n') + PEER_PROTOCOL
    for guest in (n1, n2):
        guest.start_daemon(daemon_config(guest.name, config))
    errors: list[str] = []

    def unmount(guest: Guest) -> None:
        try:
            guest.sh("umount /mnt/ocfs2b", timeout=120)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(f"{guest.name}: {error}")

    threads = [threading.Thread(target=unmount, args=(g,)) for g in (n1, n2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    expect(not errors, f"unmounting the second volume: {errors}")

    def remounted(guest: Guest) -> bool:
        m = guest.metrics()
        return (find(m, "ocfs2_mount_missing", mountpoint="/mnt/ocfs2b") == 0.0
                and value(m, "ocfs2_watchdog_lease_acquisitions_total", route="dlmfs", result="acquired") >= 1)
    for guest in (n1, n2):
        wait_for(f"{guest.name} to remount the second volume under the DLM lease", 120,
                 lambda g=guest: remounted(g), interval=2)
    for guest in (n1, n2):
        m = guest.metrics()
        expect(value(m, "ocfs2_watchdog_lease_held", route="dlmfs") == 0.0, f"{guest.name} still holds the lease")
        expect(value(m, "ocfs2_watchdog_lease_acquisitions_total", route="peers", result="acquired") == 0.0,
               f"{guest.name} fell back to the peers")
        busy = value(m, "ocfs2_watchdog_lease_acquisitions_total", route="dlmfs", result="busy")
        print(f"{guest.name}: dlmfs busy {busy:.0f} times before its grant", flush=True)
        # Released: no lock file left in the domain, and no island: joined afresh.
        left = guest.sh("ls /dlm/ocfs2-watchdog 2>/dev/null | grep -c lease- || true").strip()
        expect(left == "0", f"{guest.name}: lock files left in the domain: {left}")
    n1.sh("touch /mnt/ocfs2b/from-n1")
    n2.sh("ls /mnt/ocfs2b/from-n1")
