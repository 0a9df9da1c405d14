"""The bigger topologies: global heartbeat with three regions on
separate disks, three nodes on the lab's virtual switch, dm-multipath over
two iSCSI paths (a storage guest with one portal per fabric).

Each boots its own guests (`Lab.pair` with SCSI disks, or `Lab.switched`);
the pair stays the default topology of the other scenarios. Timings and
what each asserts: tests/lab/README.md.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

from labkit import Guest, Lab, cluster_conf
from scenario_kit import (ENFORCE, EXPECTED, LABEL, action_outcomes, audit, daemon_config, events, expect,
                          find, scenario, volume_uuid, wait_for, watch_until_reboot)


def in_parallel(guests, work) -> None:
    """Runs `work(guest)` for every guest at once (o2cb online in global
    mode waits for each region to settle: ~16 s a region, a node)."""
    errors: list[BaseException] = []

    def run(guest):
        try:
            work(guest)
        except BaseException as error:  # re-raised below, in the scenario's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(g,), daemon=True) for g in guests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def fresh_state(lab: Lab, *names: str) -> None:
    """Empties the nodes' state directories on the share: a run keeps them
    from scenario to scenario, and these scenarios count audit lines and
    fences exactly, for their own cluster only."""
    for name in names:
        state = lab.share / "state" / name
        if state.exists():
            shutil.rmtree(state)


def firing(m: dict[str, float], rule: str, target: str) -> bool:
    return find(m, "ocfs2_watchdog_rule_firing", rule=rule, target=target) == 1.0


def rule_actions(m: dict[str, float], rule: str) -> dict[str, float]:
    """Every `ocfs2_watchdog_actions_total` series of `rule`."""
    return {s: v for s, v in m.items()
            if s.startswith("ocfs2_watchdog_actions_total{") and f'rule="{rule}"' in s}


def region_state(m: dict[str, float], region: str, state: str) -> float | None:
    return find(m, "ocfs2_heartbeat_global_region_state", hb_region=region, state=state)


RULES = Path(__file__).resolve().parents[2] / "alerts" / "ocfs2.rules.yml"
ALERT_EXPR = re.compile(r'^(\w+)(\{[^}]*\})?\s*(==|!=|>=|<=|>|<)\s*(-?[0-9.]+)$')
COMPARE = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
           "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def alert_expr(alert: str) -> str:
    """The `expr` of `alert` in the project's alert rules. A block (`expr: |`)
    whose first line is `(selector OP number)` and whose rest only joins
    labels on (`* on (...) group_left (...) ... or ... unless on (...)`, which
    keeps every series of the comparison) is reduced to that comparison."""
    text = RULES.read_text()
    match = re.search(rf"- alert: {alert}\n\s+expr: (.+)\n(\s+)(.*)\n", text)
    expect(match is not None, f"alert {alert} not found in {RULES}")
    expr = match.group(1).strip()
    if expr == "|":
        first = match.group(3).strip()
        rest = text[match.end():].split("\n        for:", 1)[0]
        joins_only = all(line.strip().startswith(("*", "group by", "or", "unless", "(" + first[1:]))
                         or line.strip() == first for line in rest.splitlines() if line.strip())
        expect(first.startswith("(") and first.endswith(")") and joins_only,
               f"alert {alert}: its expression is more than a comparison with label joins")
        expr = first[1:-1]
    return expr


def alert_firing(alert: str, m: dict[str, float]) -> list[str]:
    """The series of scrape `m` for which `alert`'s expression holds (its
    `for` aside). Only `metric{label="v",...} OP number` is understood; any
    other expression fails the scenario rather than being guessed at."""
    expr = alert_expr(alert)
    match = ALERT_EXPR.match(expr)
    expect(match is not None, f"alert {alert}: cannot evaluate expression {expr!r} here")
    name, matchers, op, threshold = match.groups()
    labels = dict(LABEL.findall(matchers or ""))
    hits = []
    for series, value in m.items():
        base, _, rest = series.partition("{")
        have = dict(LABEL.findall(rest))
        if base == name and all(have.get(k) == v for k, v in labels.items()) \
                and COMPARE[op](value, float(threshold)):
            hits.append(series)
    return hits


# global_region_loss -------------------------------------------------------------


@scenario(600)
def scenario_global_region_loss(lab: Lab) -> None:
    """Global heartbeat, three regions on three SCSI disks; one region's disk
    goes offline on n2 only: n2 stays up (1 of 3 regions failed), the failed
    region shows in its metrics, and o2cb_down, enforcing, restarts nothing."""
    fresh_state(lab, "n1", "n2")
    disks = [lab.disk(f"hb{i}", "1G") for i in (1, 2, 3)]
    n1, n2 = lab.pair(scsi_disks=disks)
    for dev in ("sda", "sdb", "sdc"):
        n1.sh(f"mkfs.ocfs2 -q -F -b 4K -C 4K -N 4 -J size=4M --cluster-stack=o2cb --cluster-name=labclu "
              f"--global-heartbeat -L hb-{dev} /dev/{dev}", timeout=120)
    listing = n1.sh("mounted.ocfs2 -d")
    regions = []
    for dev in ("sda", "sdb", "sdc"):
        match = re.search(rf"/dev/{dev}\s+o2cb\s+labclu\s+G\s+([0-9A-F]{{32}})", listing)
        expect(match is not None, f"no global heartbeat UUID for /dev/{dev} in: {listing}")
        regions.append(match.group(1))
    conf = cluster_conf(2, regions)
    (lab.share / "lab" / "cluster.run.conf").write_text(conf)
    in_parallel((n1, n2), lambda g: g.sh("CONF=/host/lab/cluster.run.conf DEAD=7 IDLE=10000 "
                                         "sh /host/lab/o2cb-online.sh", timeout=150))
    n1.sh("mkfs.ocfs2 -q -F -N 4 --cluster-stack=o2cb --cluster-name=labclu --global-heartbeat "
          "-L labvol -J size=16M /dev/vda", timeout=120)
    for guest in (n1, n2):
        guest.sh("mount.ocfs2 /dev/vda /mnt/ocfs2", timeout=180)
    for guest in (n1, n2):
        guest.start_daemon(daemon_config(guest.name, EXPECTED + ENFORCE))

    def healthy(guest: Guest, peer: str):
        def probe():
            m = guest.metrics()
            ok = all(region_state(m, r, "live") == 1.0 and region_state(m, r, "quorum") == 1.0
                     and region_state(m, r, "failed") == 0.0
                     and find(m, "ocfs2_heartbeat_disk_active", hb_region=r, node_num=peer) == 1.0
                     for r in regions)
            return m if ok else None
        return wait_for(f"{guest.name}: three live quorum regions, peer active on each", 90, probe)

    for guest, peer in ((n1, "2"), (n2, "1")):
        m = healthy(guest, peer)
        expect(find(m, "ocfs2_o2cb_info", o2cb_cluster="labclu", heartbeat_mode="global") == 1.0,
               f"{guest.name}: o2cb_info does not say global heartbeat")
    # The disk behind region 2 (configfs `dev`), failed on n2 alone: its SCSI
    # device offline, so n2's heartbeat I/O on it fails (EIO) while n1's and
    # the other regions' work.
    lost = regions[1]
    dev = n2.sh(f"cat /sys/kernel/config/cluster/labclu/heartbeat/{lost}/dev").strip()
    num = n2.sh(f"cat /sys/kernel/debug/o2hb/{lost}/num").strip()
    n2.sh(f"echo offline > /sys/block/{dev}/device/state")

    def region_failed():
        m = n2.metrics()
        return m if region_state(m, lost, "failed") == 1.0 else None
    # The kernel marks it failed when its write timeout (12 s) fires.
    m = wait_for(f"n2 to mark region {lost} failed", 60, region_failed)
    for other in (regions[0], regions[2]):
        expect(region_state(m, other, "failed") == 0.0, f"n2: region {other} failed too")
        expect(find(m, "ocfs2_heartbeat_disk_active", hb_region=other, node_num="1") == 1.0,
               f"n2: n1 not active on region {other}")
    failed_file = n2.sh("cat /sys/kernel/debug/o2hb/failed_regions").split()
    expect(failed_file == [num], f"n2's o2hb failed_regions {failed_file}, expected [{num}]")
    expect((find(m, "ocfs2_heartbeat_disk_read_errors_total", hb_region=lost) or 0) >= 1,
           "n2 counted no failed slot read on the lost region")

    def alerted():
        m = n2.metrics()
        return m if firing(m, "o2cb_down", "labclu") and "alert_only" in action_outcomes(lab, "n2", "o2cb_down") else None
    m = wait_for("n2's o2cb_down to fire, alert only", 60, alerted)
    # Enforcing with `for` 2 s: ten more ticks in which it could (wrongly) act.
    time.sleep(10)
    m = n2.metrics()
    expect(rule_actions(m, "o2cb_down") == {}, f"n2 counted o2cb_down actions: {rule_actions(m, 'o2cb_down')}")
    records = [r for r in audit(lab, "n2") if r.get("rule") == "o2cb_down"]
    expect([r.get("outcome") for r in records] == ["alert_only"],
           f"n2's o2cb_down audit: {records}")
    expect(f"this node cannot read region {lost}" in records[0].get("evidence", ""),
           f"n2's audit evidence: {records[0].get('evidence')}")
    targets = [t for t in n2.status()["remediation"]["targets"] if t["rule"] == "o2cb_down"]
    expect(len(targets) == 1 and targets[0]["alert_only"] and targets[0]["state"] == "firing"
           and lost in targets[0]["evidence"], f"n2's /status o2cb_down: {targets}")
    # n1: nothing failed locally, n2 gone from the lost region only.
    m1 = n1.metrics()
    expect(all(region_state(m1, r, "failed") == 0.0 for r in regions), "n1 has a failed region")
    expect(find(m1, "ocfs2_heartbeat_node_live", hb_region=lost, node_num="2") == 0.0,
           "n1 still sees n2 live on the lost region")
    for other in (regions[0], regions[2]):
        expect(find(m1, "ocfs2_heartbeat_node_live", hb_region=other, node_num="2") == 1.0,
               f"n1 lost n2 on region {other}")
    # The alert on n1 for n2's absence from that region holds (its `for` aside), on that series only.
    not_live = alert_firing("Ocfs2HeartbeatNodeNotLive", m1)
    expect(not_live == [f'ocfs2_heartbeat_node_live{{hb_region="{lost}",node_num="2"}}'],
           f"n1: node-not-live alert series {not_live}")
    expect(action_outcomes(lab, "n1", "o2cb_down") == [], "n1 audited an o2cb_down decision")
    expect(rule_actions(m1, "o2cb_down") == {}, "n1 counted o2cb_down actions")
    # Both nodes up, the stack online, the volume writable on both, no eviction.
    for guest in (n1, n2):
        guest.sh("o2cb cluster-status labclu && touch /mnt/ocfs2/after-loss-$(hostname)")
        expect(guest.boots() == 1, f"{guest.name} rebooted")
        g = guest.metrics()
        expect(events(g, "fence") == 0.0 and events(g, "dlm_node_evicted") == 0.0,
               f"{guest.name}: a fence or eviction was counted")


# three_node_quorum --------------------------------------------------------------


@scenario(600)
def scenario_three_node_quorum(lab: Lab) -> None:
    """Three nodes on the switch; n1's interconnect port cut. With three
    heartbeating nodes the quorum is two connected (itself included): n1,
    alone, fences, although it is the lowest node (the pair's survivor of a
    cut); n2 and n3 keep quorum, evict n1 and one of them replays its
    journal. Every survivor's metrics agree on who is live."""
    fresh_state(lab, "n1", "n2", "n3")
    n1, n2, n3 = lab.switched(3, reset_in_place=("n1",))
    nodes = (n1, n2, n3)
    lab.online(*nodes, conf=cluster_conf(3))
    n1.sh("mkfs.ocfs2 -q -F -N 4 --cluster-stack=o2cb --cluster-name=labclu -L labvol -J size=16M /dev/vda",
          timeout=120)
    for guest in nodes:
        guest.sh("mount.ocfs2 /dev/vda /mnt/ocfs2", timeout=180)
    for guest in nodes:
        guest.start_daemon(daemon_config(guest.name))
    uuid = volume_uuid(n1)

    def sees_all(guest: Guest):
        def probe():
            m = guest.metrics()
            peers = [p for p in ("1", "2", "3") if p != guest.name[1:]]
            ok = (all(find(m, "ocfs2_heartbeat_disk_active", hb_region=uuid, node_num=p) == 1.0
                      and find(m, "ocfs2_net_connected", node_num=p) == 1.0 for p in peers)
                  and all(find(m, "ocfs2_dlm_domain_member", uuid=uuid, node_num=n) == 1.0
                          for n in ("1", "2", "3")))
            return m if ok else None
        return wait_for(f"{guest.name} to see all three nodes live, connected, in the domain", 90, probe)

    for guest in nodes:
        sees_all(guest)
    n1.qmp("set_link net0 off")
    seen = {"idle": 0.0}

    def observe(m):
        seen["idle"] = max(seen["idle"], events(m, "net_idle_timeout"))

    watch_until_reboot(n1, observe, timeout=180)
    console = n1.console.read_text(errors="replace")
    expect("ocfs2 is very sorry to be fencing this system" in console, "n1 rebooted without the fence message")
    expect("only connected to 1 nodes and 2 is needed to make a quorum out of 3 heartbeating nodes" in console,
           "n1's fence was not the quorum decision (1 of 3 connected)")

    def evicted(guest: Guest):
        def probe():
            m = guest.metrics()
            ok = (events(m, "dlm_node_evicted") >= 1
                  and find(m, "ocfs2_heartbeat_node_live", hb_region=uuid, node_num="1") == 0.0
                  and find(m, "ocfs2_dlm_domain_member", uuid=uuid, node_num="1") == 0.0)
            return m if ok else None
        return wait_for(f"{guest.name} to evict n1", 120, probe)

    survivors = {g.name: evicted(g) for g in (n2, n3)}

    def replayed():
        # Recovery (and the replay) follows the eviction: wait for it.
        now = {g.name: g.metrics() for g in (n2, n3)}
        return now if sum(events(m, "journal_replay") for m in now.values()) >= 1 else None
    wait_for("a survivor to replay n1's journal", 90, replayed)
    time.sleep(5)  # a second replay, were there one, would be logged by now
    survivors = {g.name: g.metrics() for g in (n2, n3)}
    replays = 0.0
    for name, m in survivors.items():
        # Both survivors agree: n2 and n3 live, connected, in the domain; n1 none of these.
        for node, want in (("1", 0.0), ("2", 1.0), ("3", 1.0)):
            expect(find(m, "ocfs2_heartbeat_node_live", hb_region=uuid, node_num=node) == want,
                   f"{name}: heartbeat live n{node} != {want}")
            expect(find(m, "ocfs2_dlm_domain_member", uuid=uuid, node_num=node) == want,
                   f"{name}: DLM domain member n{node} != {want}")
        peer = "3" if name == "n2" else "2"
        expect(find(m, "ocfs2_net_connected", node_num=peer) == 1.0, f"{name}: lost its surviving peer")
        expect(events(m, "net_idle_timeout") >= 1, f"{name}: counted no idle timeout to n1")
        expect(events(m, "fence") == 0.0, f"{name}: counted a fence of its own")
        replays += events(m, "journal_replay")
    expect(seen["idle"] >= 2, f"n1 counted {seen['idle']} idle timeouts before fencing, expected one per peer")
    # One survivor recovers n1's slot; the other finds it done.
    expect(replays == 1.0, f"journal replays of n1 counted on the survivors: {replays}, expected exactly 1")
    for guest in (n2, n3):
        expect(guest.boots() == 1, f"{guest.name} rebooted")
        guest.sh(f"touch /mnt/ocfs2/survivor-{guest.name}")
    n1.start_daemon(daemon_config("n1"))
    m = wait_for("n1 to report the previous boot's fence", 60,
                 lambda: (lambda m: m if m.get("ocfs2_fence_previous_boot") == 1.0 else None)(n1.metrics()))
    expect(m.get("ocfs2_fences_total") == 1.0, f"n1 fences_total {m.get('ocfs2_fences_total')}")


# multipath ---------------------------------------------------------------------

TARGET = "iqn.2024-01.lab.ocfs2:shared"
PORTAL_A, PORTAL_B = "10.99.0.9", "10.99.1.9"
MAP = "mpatha"


def multipath_pair(lab: Lab, no_path_retry: int, dead: int, idle: int,
                   reset_in_place: tuple[str, ...] = ()) -> tuple[Guest, Guest, Guest]:
    """A storage guest `st` (tgt, one portal per fabric: fabric 0 is also
    the cluster interconnect, fabric 1 is SAN only) and n1, n2 with two
    iSCSI sessions each, dm-multipath over them, OCFS2 on the map, daemons
    running. Returns (st, n1, n2)."""
    fresh_state(lab, "n1", "n2")
    lun = lab.disk("lun", "512M")
    st = lab.switched_guest("st", 9, [lun], fabrics=2, memory=384)
    n1, n2 = lab.switched(2, shared=False, fabrics=2, also=[st], reset_in_place=reset_in_place)
    st.sh("sh /host/lab/multipath.sh target", timeout=60)
    in_parallel((n1, n2), lambda g: g.sh(
        f"NO_PATH_RETRY={no_path_retry} sh /host/lab/multipath.sh initiator {PORTAL_A}:3260 {PORTAL_B}:3260",
        timeout=180))
    lab.online(n1, n2, dead=dead, idle=idle)
    device = f"/dev/mapper/{MAP}"
    lab.mkfs_and_mount(n1, n2, device=device)
    for guest in (n1, n2):
        guest.start_daemon(daemon_config(guest.name))
    return st, n1, n2


def path_devices(guest: Guest) -> dict[str, str]:
    """Portal address -> the SCSI disk of the session through it."""
    out = guest.sh("for s in /sys/class/iscsi_session/session*; do n=${s##*session}; "
                   "echo $(cat /sys/class/iscsi_connection/connection$n:0/persistent_address) "
                   "$(ls $s/device/target*/*/block/); done")
    return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)


def paths(m: dict[str, float], state: str) -> float | None:
    return find(m, "ocfs2_multipath_paths", map=MAP, state=state)


def both_paths_active(guest: Guest):
    def probe():
        m = guest.metrics()
        return m if paths(m, "active") == 2.0 and paths(m, "failed") == 0.0 else None
    return wait_for(f"{guest.name}: map {MAP} with two active paths", 90, probe)


@scenario(600)
def scenario_multipath_path_loss(lab: Lab) -> None:
    """Portal B's port on the storage guest goes down (QMP link off): each
    node's map keeps path A active and fails path B, the storage path info
    and disk counts follow, heartbeat stays healthy, nobody fences; the port
    comes back and multipathd reinstates the path. The path-failed alert
    expression holds on the scraped series, the no-active-path one does not."""
    # Heartbeat 60 s (o2cb's default): a path failing over must not fence.
    st, n1, n2 = multipath_pair(lab, no_path_retry=5, dead=31, idle=30000)
    uuid = volume_uuid_on(n1, f"/dev/mapper/{MAP}")
    devices = {g.name: path_devices(g) for g in (n1, n2)}
    for guest in (n1, n2):
        m = both_paths_active(guest)
        mine = devices[guest.name]
        expect(set(mine) == {PORTAL_A, PORTAL_B}, f"{guest.name}: sessions {mine}")
        for portal, disk in mine.items():
            expect(find(m, "ocfs2_storage_path_info", mountpoint="/mnt/ocfs2", map=MAP,
                        path_device=f"/dev/{disk}", target=TARGET) == 1.0,
                   f"{guest.name}: no storage path through {disk} ({portal})")
        expect(find(m, "ocfs2_storage_path_disks", mountpoint="/mnt/ocfs2", state="usable") == 2.0,
               f"{guest.name}: usable disks under the mount != 2")
        expect(find(m, "ocfs2_multipath_map_info", map=MAP) == 1.0, f"{guest.name}: no map info")
        expect(alert_firing("Ocfs2MultipathPathFailed", m) == [], f"{guest.name}: path-failed alert while healthy")
    st.qmp("set_link net1 off")

    def degraded(guest: Guest):
        lost = f"/dev/{devices[guest.name][PORTAL_B]}"
        kept = f"/dev/{devices[guest.name][PORTAL_A]}"

        def probe():
            m = guest.metrics()
            ok = (paths(m, "active") == 1.0 and paths(m, "failed") == 1.0
                  and find(m, "ocfs2_multipath_path_active", map=MAP, device=lost) == 0.0
                  and find(m, "ocfs2_multipath_path_active", map=MAP, device=kept) == 1.0
                  and find(m, "ocfs2_storage_path_disks", mountpoint="/mnt/ocfs2", state="down") == 1.0
                  and find(m, "ocfs2_storage_path_disks", mountpoint="/mnt/ocfs2", state="usable") == 1.0)
            return m if ok else None
        return wait_for(f"{guest.name}: path B ({lost}) failed, path A active", 120, probe)

    for guest in (n1, n2):
        m = degraded(guest)
        expect(find(m, "ocfs2_multipath_map_queueing", map=MAP) == 0.0, f"{guest.name}: map queueing")
        failed = alert_firing("Ocfs2MultipathPathFailed", m)
        expect(failed == [f'ocfs2_multipath_paths{{map="{MAP}",state="failed"}}'],
               f"{guest.name}: path-failed alert series {failed}")
        expect(alert_firing("Ocfs2MultipathNoActivePath", m) == [],
               f"{guest.name}: no-active-path alert holds with one path left")
        expect(events(m, "iscsi_conn_error") >= 1, f"{guest.name}: no iSCSI connection error counted")
        guest.sh(f"touch /mnt/ocfs2/on-one-path-{guest.name}", timeout=60)
    st.qmp("set_link net1 on")
    for guest in (n1, n2):
        m = both_paths_active(guest)
        expect(alert_firing("Ocfs2MultipathPathFailed", m) == [], f"{guest.name}: path-failed alert after reinstate")
    for guest, peer in ((n1, "2"), (n2, "1")):
        m = guest.metrics()
        expect(find(m, "ocfs2_heartbeat_node_live", hb_region=uuid, node_num=peer) == 1.0,
               f"{guest.name}: peer not live in heartbeat")
        ratio = find(m, "ocfs2_heartbeat_timeout_ratio_max", hb_region=uuid)
        expect(ratio is not None and ratio < 0.5, f"{guest.name}: heartbeat ratio max {ratio} during the path loss")
        expect(events(m, "fence") == 0.0 and events(m, "dlm_node_evicted") == 0.0
               and events(m, "hb_write_timeout") == 0.0, f"{guest.name}: fence, eviction or write timeout counted")
        expect(guest.boots() == 1, f"{guest.name} rebooted")


def volume_uuid_on(guest: Guest, device: str) -> str:
    out = guest.sh(f"mounted.ocfs2 -d {device}")
    match = re.search(r"\b([0-9A-F]{32})\b", out)
    expect(match is not None, f"no UUID in mounted.ocfs2 output: {out}")
    return match.group(1)


@scenario(720)
def scenario_multipath_all_paths_lost(lab: Lab) -> None:
    """Both portals down for longer than the heartbeat timeout, with the
    map queueing for 20 s (no_path_retry 10 × polling_interval 2) against a
    12 s heartbeat: the timeout invariant flags it before the fault, and the
    nodes fence exactly as it predicts (I/O fails after the queue time, the
    heartbeat write times out); each counts its fence on the next boot."""
    st, n1, n2 = multipath_pair(lab, no_path_retry=10, dead=7, idle=10000, reset_in_place=("n1", "n2"))
    check = "heartbeat_timeout_exceeds_storage_stall"
    for guest in (n1, n2):
        m = both_paths_active(guest)
        expect(find(m, "ocfs2_multipath_queue_timeout_seconds", map=MAP) == 20.0,
               f"{guest.name}: queue timeout {find(m, 'ocfs2_multipath_queue_timeout_seconds', map=MAP)}")
        expect(find(m, "ocfs2_storage_stall_timeout_seconds", mountpoint="/mnt/ocfs2") == 20.0,
               f"{guest.name}: stall timeout {find(m, 'ocfs2_storage_stall_timeout_seconds', mountpoint='/mnt/ocfs2')}")
        expect(find(m, "ocfs2_timeout_invariant_violated", check=check) == 1.0,
               f"{guest.name}: the invariant did not flag a 20 s stall against a 12 s heartbeat")
        expect(find(m, "ocfs2_timeout_invariant_larger_seconds", check=check) == 12.0
               and find(m, "ocfs2_timeout_invariant_smaller_seconds", check=check) == 20.0,
               f"{guest.name}: invariant values")
        expect(alert_firing("Ocfs2TimeoutInvariantViolated", m) != [], f"{guest.name}: invariant alert expression")
    st.qmp("set_link net0 off")
    st.qmp("set_link net1 off")
    # What dm itself says while the map has no path (before the fence).
    wait_for("n1: no active path", 60,
             lambda: find(n1.metrics(), "ocfs2_multipath_paths", map=MAP, state="active") == 0.0)
    dm = n1.sh("dmsetup status --target multipath; dmsetup table --target multipath", timeout=20)
    print(f"n1 with both paths down:\n{dm}", flush=True)
    expect("queue_if_no_path" in dm, f"n1: the map stopped queueing before its retries ran out:\n{dm}")
    seen: dict[str, dict] = {}
    queued: set[str] = set()

    def watch(guest: Guest):
        def observe(m):
            seen[guest.name] = m
            if find(m, "ocfs2_multipath_map_queueing", map=MAP) == 1.0:
                queued.add(guest.name)
        watch_until_reboot(guest, observe, timeout=240)

    in_parallel((n1, n2), watch)
    for guest in (n1, n2):
        console = guest.console.read_text(errors="replace")
        expect("ocfs2 is very sorry to be fencing this system" in console, f"{guest.name}: no fence message")
        expect("Heartbeat write timeout" in console, f"{guest.name}: fenced, but not on a heartbeat write timeout")
        print("\n".join(f"{guest.name}: {line.strip()}" for line in console.splitlines()
                        if re.search(r"o2hb|hb write|Heartbeat|multipath|remaining active paths|sorry", line)),
              flush=True)
        last = seen.get(guest.name, {})
        expect(find(last, "ocfs2_multipath_paths", map=MAP, state="active") == 0.0,
               f"{guest.name}: last scrape before the fence still had an active path")
        expect(guest.name in queued, f"{guest.name}: the map was never seen queueing without a path")
    st.qmp("set_link net0 on")
    st.qmp("set_link net1 on")
    for guest in (n1, n2):
        guest.start_daemon(daemon_config(guest.name))
        m = wait_for(f"{guest.name} to report the previous boot's fence", 60,
                     lambda: (lambda m: m if m.get("ocfs2_fence_previous_boot") == 1.0 else None)(guest.metrics()))
        expect(m.get("ocfs2_fences_total") == 1.0, f"{guest.name}: fences_total {m.get('ocfs2_fences_total')}")
