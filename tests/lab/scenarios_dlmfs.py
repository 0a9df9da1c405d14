"""The o2dlm lock semantics the cluster lease stands on, proved on the lab's
real kernel through dlmfs (`ocfs2_dlmfs` at /dlm, a domain directory, one
file per lock; fs/ocfs2/dlmfs/dlmfs.c and userdlm.c). docs/design.md
("dlmfs lock semantics") says what each assertion means for the lease.

The guests have no Python, so locks are taken with `guest/dlmfs_probe.rs`,
built here with plain `rustc` (std only; CI has it, the test command is
cargo's) into the share. Timings are measured on the host: the probe writes
a signal file on the share the moment the kernel grants the lock.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from labkit import HERE, Guest, Lab
from scenario_kit import expect, scenario

PROBE = "/host/bin/dlmfs_probe"
DOMAIN = "/dlm/ocfs2-watchdog"
LOCK = f"{DOMAIN}/lease"
ETXTBSY = 26


def build_probe(lab: Lab) -> None:
    """Compiles the probe into the share's bin/ (under a second)."""
    out = lab.share / "bin" / "dlmfs_probe"
    rustc = os.environ.get("RUSTC") or shutil.which("rustc")
    if rustc is None and os.environ.get("CARGO"):
        # Run by `cargo test`: rustc sits next to the cargo that runs us.
        rustc = str(Path(os.environ["CARGO"]).with_name("rustc"))
    expect(rustc is not None, "no rustc to build the dlmfs probe (set RUSTC)")
    subprocess.run([rustc, "-O", "--edition", "2021", "-o", str(out),
                    str(HERE / "guest" / "dlmfs_probe.rs")], check=True)


def probe(guest: Guest, mode: str, wait: str, path: str = LOCK, retry: float = 0) -> str:
    """One lock attempt (released at once); returns the probe's line."""
    return guest.sh(f"{PROBE} {mode} {wait} {path} 0 {retry}", check=False, timeout=retry + 30).strip()


def errno(line: str) -> int | None:
    match = re.search(r"err errno=(\d+)", line)
    return int(match.group(1)) if match else None


def signal_path(lab: Lab, tag: str) -> tuple[Path, str]:
    path = lab.share / "logs" / f"granted-{tag}"
    path.unlink(missing_ok=True)
    return path, f"/host/logs/granted-{tag}"


def wait_signal(path: Path, timeout: float) -> float | None:
    """Seconds until `path` appears, None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if path.exists():
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def start_probe(lab: Lab, guest: Guest, tag: str, hold: float, retry: float, lvb: str = "") -> Path:
    """A probe in the background (output in logs/<tag>.out); returns its signal file."""
    signal, in_guest = signal_path(lab, tag)
    guest.sh(f"{PROBE} ex try {LOCK} {hold} {retry} {in_guest} {lvb} > /host/logs/{tag}.out 2>&1 &")
    return signal


def holder(lab: Lab, guest: Guest, tag: str, lvb: str) -> str:
    """Takes the lease lock on `guest` and keeps it until killed; returns the PID."""
    signal = start_probe(lab, guest, tag, -1, 0, lvb)
    expect(wait_signal(signal, 15) is not None,
           f"{guest.name}: no EX lock: {(lab.share / 'logs' / f'{tag}.out').read_text()}")
    out = lab.share / "logs" / f"{tag}.out"
    deadline = time.monotonic() + 5
    while "pid=" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    match = re.search(r"pid=(\d+)", out.read_text())
    expect(match is not None, f"{guest.name}: holder printed no pid: {out.read_text()}")
    return match.group(1)


@scenario(240)
def scenario_dlmfs_lease_semantics(lab: Lab) -> None:
    """Local heartbeat: no domain without a mounted volume; EX trylock is
    ETXTBSY on the other node, granted to any process of the holder's node;
    a killed holder's lock stays cached on its node until the lock file is
    unlinked there, then the other node gets it (with the LVB) within 2 s;
    unmounting a node's last volume leaves its old domain granting alone."""
    build_probe(lab)
    n1, n2 = lab.pair()
    lab.online(n1, n2)

    # (a) o2cb online, dlmfs mounted, no volume mounted: no domain.
    out = n1.sh(f"mkdir {DOMAIN} 2>&1; echo rc=$?; dmesg | tail -5")
    expect("Invalid argument" in out and "rc=1" in out, f"n1 joined a domain without heartbeat: {out}")
    expect("Local heartbeat has not been started" in out and "could not register domain" in out,
           f"n1: not the kernel's no-heartbeat refusal: {out}")

    lab.mkfs_and_mount(n1, n2)
    for guest in (n1, n2):
        guest.sh(f"mkdir {DOMAIN}")

    # (b) EX on n1; n2's trylocks (EX and PR) refused with ETXTBSY.
    pid = holder(lab, n1, "holder", "held-by-n1")
    for mode in ("ex", "pr"):
        line = probe(n2, mode, "try")
        expect(errno(line) == ETXTBSY, f"n2 {mode} trylock while n1 holds EX: {line}")
    line = probe(n1, "ex", "try")
    expect(line.startswith("ok"), f"a second process on the holder's node was refused: {line}")
    line = probe(n1, "ex", "try", f"{DOMAIN}/{'x' * 32}")
    expect(errno(line) == 22, f"a 32-character lock name was accepted: {line}")

    # (c) SIGKILL the holder: the lock stays cached EX on n1 (the kernel
    # releases the holder's fd, but NOQUEUE requests send no blocking AST),
    # so n2's trylocks keep failing until n1 unlinks the lock file.
    waiter = start_probe(lab, n2, "waiter", 0, 60)
    n1.sh(f"kill -9 {pid}")
    expect(wait_signal(waiter, 4) is None, "n2 got the lock while n1's node still caches it")
    line = n1.sh(f"rm {LOCK} 2>&1; echo rc=$?")
    expect("rc=0" in line, f"n1 could not unlink the released lock file: {line}")
    took = wait_signal(waiter, 2)
    expect(took is not None, "n2 did not get the lock within 2 s of n1's unlink")
    time.sleep(0.3)
    out = (lab.share / "logs" / "waiter.out").read_text()
    expect("held-by-n1" in out, f"n2 did not read the holder's LVB: {out}")
    print(f"dlmfs_lease_semantics: n2 granted {took:.2f}s after n1's unlink; {out.strip()}", flush=True)

    # n2's probe has closed the lock; hand it back the way a lease releases.
    n2.sh(f"for i in $(seq 1 50); do rm {LOCK} 2>/dev/null && exit 0; sleep 0.1; done; exit 1")

    # An unlink of a lock file that is held is refused (EBUSY).
    pid = holder(lab, n1, "holder2", "again")
    line = n1.sh(f"rm {LOCK} 2>&1; echo rc=$?")
    expect("busy" in line and "rc=1" in line, f"unlink of a held lock: {line}")
    line = probe(n2, "ex", "try")
    expect(errno(line) == ETXTBSY, f"n2 trylock after the refused unlink: {line}")

    # Local heartbeat stops with n2's last unmount: each node evicts the other
    # from the domain and n2's stale domain grants the lock n1 still holds.
    n2.sh("umount /mnt/ocfs2", timeout=120)
    line = probe(n2, "ex", "try", retry=5)
    expect(line.startswith("ok"), f"n2, unmounted, did not get the lock from its stale domain: {line}")
    out = n2.sh("dmesg | tail -20")
    expect("has evicted node 1 from domain ocfs2-watchdog" in out, f"n2 did not evict n1: {out}")
    n1.sh(f"kill -9 {pid}")
