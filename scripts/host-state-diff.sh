#!/usr/bin/env bash
# Records the host paths the test suite could touch and fails on any change.
#
#   scripts/host-state-diff.sh snapshot [DIR]   record the state into DIR
#   scripts/host-state-diff.sh compare  [DIR]   record again, print every
#                                               difference, exit 1 on any
#
# DIR defaults to ${TMPDIR:-/tmp}/ocfs2-watchdog-host-state. Tests run as root
# on machines people use and must never write outside a scratch directory
# (DEVELOPERS.md); .ci/run wraps `cargo test` in this, so a test that writes
# under /etc, /var/lib or /run, or into the kernel log, fails CI by name of
# the path it changed.
#
# What is recorded: every entry of /etc, /var/lib and /run, one filesystem
# each (-xdev: nothing mounted below them), as type, mode, owner, size, mtime
# and path (a write changes the mtime, a create or delete the parent
# directory's mtime and the listing); and the kernel log records written
# from user space (facility other than kern: a test writing to /dev/kmsg) or
# naming this project, with their timestamps, when dmesg can read the log.
#
# Left out, each because something other than the suite changes it while
# the suite runs:
#   /var/lib/apt, /var/lib/dpkg, /var/lib/PackageKit  the package manager
#                               (unattended upgrades, CI's own installs)
#   /var/lib/systemd/timers, /var/lib/systemd/timesync  timer stamps and
#                               the clock file, rewritten by systemd
#   /run/systemd, /run/user, /run/log  systemd's and the journal's runtime
#                               state (units, sessions, journal files)
#   /run/blkid                  libblkid's cache of probed devices: any
#                               mount or mkfs of a loop device rewrites it,
#                               and it is rebuilt from the devices on demand
#   /run/utmp                   logins
#   /run/netns (the directory's own size and times, not its entries)  the
#                               lab's network namespace comes and goes there
# The kernel's own records (facility kern) are listed but not a failure: a
# test that mounts a loop device makes the kernel log it.
set -euo pipefail

mode=${1:-}
dir=${2:-${TMPDIR:-/tmp}/ocfs2-watchdog-host-state}

excluded=(
  /var/lib/apt /var/lib/dpkg /var/lib/PackageKit
  /var/lib/systemd/timers /var/lib/systemd/timesync
  /run/systemd /run/user /run/log /run/blkid /run/utmp
)

listing() {
  local prune=()
  for path in "${excluded[@]}"; do
    prune+=(-path "$path" -prune -o)
  done
  # -xdev: a scratch mount or a container's /proc below these is not host
  # state; %T@ to the nanosecond so two writes in one second still differ.
  # /run/netns itself without its times: the lab adds and deletes its own
  # network namespace there (tests/lab), which touches the directory; a
  # namespace left behind is still an entry of its own and shows.
  find /etc /var/lib /run -xdev "${prune[@]}" \
    \( -path /run/netns -printf '%y %m %U:%G - - %p\n' \
    -o -printf '%y %m %U:%G %s %T@ %p\n' \) 2>/dev/null | LC_ALL=C sort -k6
}

# Kernel log records as "<pri>[seconds] text", oldest first; empty when
# the log cannot be read (dmesg_restrict without root): then said on stderr.
kernel_log() {
  if ! dmesg -r 2>/dev/null; then
    echo "host-state-diff: the kernel log is not readable here; not checked" >&2
  fi
}

# Seconds of the last record (0 when none).
last_seconds() {
  sed -n 's/^<[0-9]*>\[ *\([0-9.]*\)\].*/\1/p' | tail -n 1 | grep . || echo 0
}

snapshot() {
  mkdir -p "$dir"
  listing >"$dir/files"
  kernel_log | last_seconds >"$dir/kernel-log-last"
  echo "host-state-diff: recorded $(wc -l <"$dir/files") paths into $dir" >&2
}

compare() {
  [ -s "$dir/files" ] || { echo "host-state-diff: no snapshot in $dir" >&2; exit 2; }
  local failed=0 since
  listing >"$dir/files.after"
  if ! diff -u "$dir/files" "$dir/files.after" >"$dir/files.diff"; then
    echo "host-state-diff: host paths changed (- before, + after):" >&2
    grep '^[-+][^-+]' "$dir/files.diff" >&2 || true
    failed=1
  fi
  since=$(cat "$dir/kernel-log-last")
  kernel_log | awk -v since="$since" '
    match($0, /^<[0-9]+>\[ *[0-9.]+\]/) {
      head = substr($0, 1, RLENGTH)
      pri = substr(head, 2, index(head, ">") - 2) + 0
      t = head; sub(/^<[0-9]+>\[ */, "", t); sub(/\]$/, "", t)
      if (t + 0 <= since + 0) next
      if (pri >= 8 || $0 ~ /ocfs2-watchdog/) print "written " $0
      else print "kernel  " $0
    }' >"$dir/kernel-log.new"
  if grep -q '^kernel ' "$dir/kernel-log.new"; then
    echo "host-state-diff: the kernel logged (not a failure):" >&2
    grep '^kernel ' "$dir/kernel-log.new" | cut -c9- | tail -n 20 >&2
  fi
  if grep -q '^written ' "$dir/kernel-log.new"; then
    echo "host-state-diff: records written into the kernel log:" >&2
    grep '^written ' "$dir/kernel-log.new" | cut -c9- >&2
    failed=1
  fi
  if [ "$failed" = 0 ]; then
    echo "host-state-diff: no change to /etc, /var/lib, /run or the kernel log" >&2
  fi
  return "$failed"
}

case "$mode" in
  snapshot) snapshot ;;
  compare) compare ;;
  *) echo "usage: $0 snapshot|compare [DIR]" >&2; exit 2 ;;
esac
