"""What every lab scenario uses: reading metrics, waiting, the daemon's
configs, the audit log, and the registry that `lab.py` runs.

A scenario is a function taking the `Lab`, registered with `@scenario(limit)`
(its time bound in seconds) in a `scenarios_*.py` module beside this file;
`lab.py` imports every such module, so a new group of scenarios is a new file,
not an edit of the runner. Scenarios run in registration order, modules in
name order (`scenarios_core.py` first).
"""

from __future__ import annotations

import json
import re
import threading
import time

from labkit import Guest, Lab, LabError

# name -> (function, time bound in seconds), in registration order.
REGISTRY: dict[str, tuple] = {}
# Scenarios that measure rather than assert a fault (benches/): run only
# when named, never by a plain `lab.py` (the test command's whole run).
BENCHES: set[str] = set()


def scenario(limit: int, name: str | None = None, bench: bool = False):
    """Registers the decorated function as scenario `name` (default: the
    function's name without its `scenario_` prefix) with a time bound;
    `bench`: only when named (`BENCHES`)."""
    def register(function):
        key = name or function.__name__.removeprefix("scenario_")
        if key in REGISTRY:
            raise LabError(f"scenario {key} registered twice")
        REGISTRY[key] = (function, limit)
        if bench:
            BENCHES.add(key)
        return function
    return register


LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def find(metrics: dict[str, float], name: str, **labels: str) -> float | None:
    """The value of the first series `name` whose labels include `labels`."""
    for series, value in metrics.items():
        base, _, rest = series.partition("{")
        if base != name:
            continue
        have = dict(LABEL.findall(rest))
        if all(have.get(k) == v for k, v in labels.items()):
            return value
    return None


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise LabError(message)


def wait_for(what: str, timeout: float, probe, interval: float = 1.0):
    """Polls `probe()` until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except LabError as error:
            last_error = error
        time.sleep(interval)
    raise LabError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" ({last_error})" if last_error else ""))


def daemon_config(name: str, extra: str = "") -> str:
    return (f'state_dir = "/host/state/{name}"\n'
            '[sampler]\ninterval = "1s"\n' + extra)


def watch_until_reboot(guest: Guest, observe, timeout: float = 150) -> None:
    """Calls `observe(guest.metrics())` every second until the guest has
    booted a second time (it fenced itself), then waits for that boot."""
    def watch():
        try:
            while guest.boots() < 2:
                observe(guest.metrics())
                time.sleep(1)
        except LabError:
            pass  # the guest died mid-request: it is fencing

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    guest.wait_booted(count=2, timeout=timeout)
    watcher.join(timeout=10)


def volume_uuid(guest: Guest) -> str:
    out = guest.sh("mounted.ocfs2 -d /dev/vda")
    match = re.search(r"\b([0-9A-F]{32})\b", out)
    expect(match is not None, f"no UUID in mounted.ocfs2 output: {out}")
    return match.group(1)


def value(metrics: dict[str, float], name: str, **labels: str) -> float:
    """Like `find`, but a missing series is an error, never a 0: a check
    such as "no fence counted" must not pass because the family is absent.
    Inside `wait_for` the error just means "not yet"."""
    found = find(metrics, name, **labels)
    if found is None:
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        raise LabError(f"no series {name}{{{wanted}}} in the daemon's metrics")
    return found


def events(metrics: dict[str, float], event: str) -> float:
    """The kernel event counter `event`; its series always exists (the
    event set is fixed), so a missing one fails the scenario."""
    return value(metrics, "ocfs2_kernel_events_total", event=event)


def mounted_pair(lab: Lab, reset_in_place: tuple[str, ...] = (), dead: int = 7) -> tuple[Guest, Guest, str]:
    n1, n2 = lab.pair(reset_in_place=reset_in_place)
    lab.online(n1, n2, dead=dead)
    lab.mkfs_and_mount(n1, n2)
    for guest in (n1, n2):
        guest.start_daemon(daemon_config(guest.name))
    return n1, n2, volume_uuid(n1)


# Scenarios ---------------------------------------------------------------------


ENFORCE = """
[remediation]
mode = "enforce"
startup_grace = "0s"
[remediation.rules.duplicate_mount_layers]
for = "2s"
[remediation.rules.missing_mount]
for = "2s"
[remediation.rules.o2cb_down]
for = "2s"
"""

EXPECTED = """
[[mounts.expected]]
mountpoint = "/mnt/ocfs2"
source = "LABEL=labvol"
fstype = "ocfs2"
options = "_netdev"
"""


def audit(lab: Lab, node: str) -> list[dict]:
    """Every line of the node's audit log; each must be one JSON object."""
    path = lab.share / "state" / node / "audit.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def action_outcomes(lab: Lab, node: str, rule: str) -> list[str]:
    return [r.get("outcome", "") for r in audit(lab, node) if r.get("rule") == rule]




# The peer protocol: every daemon of a scenario that restarts o2cb needs it,
# as the cluster lease asks the peers before an o2cb restart (fails closed
# without a token or with a live peer whose daemon does not answer).
PEER_PROTOCOL = """
[cluster]
token_file = "/host/lab/cluster-token"
poll_interval = "2s"
request_timeout = "2s"
"""


def write_cluster_token(lab: Lab) -> None:
    """The token file every daemon of the run reads (same on every node)."""
    (lab.share / "lab").mkdir(parents=True, exist_ok=True)
    (lab.share / "lab" / "cluster-token").write_text("lab-cluster-token-0123456789abcdef\n")
    # The daemon refuses a token file that group or others can read.
    (lab.share / "lab" / "cluster-token").chmod(0o600)
