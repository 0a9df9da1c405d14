#!/usr/bin/env bash
# Time to heal on the real kernel: runs the lab's `heal_times` scenario
# (tests/lab/scenarios_clusterview.py; root, QEMU, ~6 min) with the release
# binary and prints p50 and max per action, in seconds after the rule's
# `for` (the `for` part apart): remount of an unmounted volume, unstack of
# 4096 layers to 1, and the o2cb restart to the stack online and then to the
# volume mounted again. The numbers are what `ocfs2_watchdog_heal_seconds`
# observed (the daemon's "Target healed." log lines); the scenario fails
# when the histogram's counts disagree with them. The table is also left in
# /tmp/ocfs2-watchdog-lab/share/logs/heal_times.json.
#
# Targets (default settings, after the `for`): remount <= 5 s, unstack
# 4096 -> 1 <= 2 s, o2cb restart to stack online and volumes mounted
# <= 60 s. The lab's slowed tools are not used here.
#
# usage: benches/heal_times.sh [BINARY]   (default target/release/ocfs2-watchdog)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-${CARGO_TARGET_DIR:-target}/release/ocfs2-watchdog}
[ -x "$binary" ] || cargo build --release
exec python3 tests/lab/lab.py --daemon "$binary" heal_times
