#!/usr/bin/env python3
"""The daemon on a real OCFS2 kernel: a two-node QEMU lab with real faults.

usage: tests/lab/lab.py --daemon target/release/ocfs2-watchdog [SCENARIO ...]

Fills the package cache (setup.sh), builds the initramfs, then runs each
scenario on a freshly booted pair: brings o2cb online, formats and mounts the
shared volume, starts the daemon in both guests, injects a real fault and
asserts on the daemon's /metrics, /status and audit log in the guests. Every
scenario has a time bound and kills its guests by PID; a failure prints the
guests' consoles and the daemon logs. Ends with `N passed, M failed` and
exits non-zero when anything failed or could not start.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from labkit import HERE, Lab
from scenario_kit import BENCHES, REGISTRY

for module in sorted(HERE.glob("scenarios_*.py"), key=lambda p: (p.stem != "scenarios_core", p.stem)):
    importlib.import_module(module.stem)
SCENARIOS = REGISTRY


def run_scenario(lab: Lab, name: str) -> tuple[bool, float]:
    function, limit = SCENARIOS[name]
    started = time.monotonic()
    result = {"error": None}

    def body():
        try:
            function(lab)
        except Exception as error:  # the scenario's failure, reported below
            result["error"] = error
            result["trace"] = traceback.format_exc()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout=limit)
    elapsed = time.monotonic() - started
    ok = not thread.is_alive() and result["error"] is None
    if not ok:
        reason = f"time bound of {limit}s exceeded" if thread.is_alive() else result.get("trace", "")
        print(f"FAIL {name} ({elapsed:.0f}s): {reason}\n{lab.dump()}", flush=True)
    else:
        print(f"PASS {name} ({elapsed:.0f}s)", flush=True)
    lab.cleanup()
    return ok, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--daemon", required=True, type=Path, help="the ocfs2-watchdog binary to run in the guests")
    parser.add_argument("--run-dir", type=Path, default=Path(os.environ.get("OCFS2_LAB_RUN", "/tmp/ocfs2-watchdog-lab")))
    parser.add_argument("scenarios", nargs="*", default=[s for s in SCENARIOS if s not in BENCHES],
                        help="default: every scenario but the benches (named only: " + ", ".join(sorted(BENCHES)) + ")")
    args = parser.parse_args()
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {list(SCENARIOS)}")
    started = time.monotonic()
    try:
        subprocess.run([str(HERE / "setup.sh")], check=True)
        lab = Lab(args.run_dir, args.daemon.resolve())
        lab.prepare()
    except (subprocess.CalledProcessError, OSError) as error:
        print(f"lab: cannot start: {error}", flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1
    passed = failed = 0
    for name in args.scenarios:
        ok, _ = run_scenario(lab, name)
        passed += ok
        failed += not ok
    print(f"lab: whole run {time.monotonic() - started:.0f}s", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
