#!/usr/bin/env bash
# Scrape latency and RSS under a 4096-layer stacked mount table, ocfs2-watchdog
# side by side with node_exporter's filesystem collector, in one private mount
# namespace. Needs root, wrk and prometheus-node-exporter (Debian packages).
# Usage: sudo benches/scrape_vs_node_exporter.sh [layers] [seconds]
set -euo pipefail
layers=${1:-4096}
seconds=${2:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --manifest-path "$here/Cargo.toml" -q
bin="$here/target/release/ocfs2-watchdog"
for tool in wrk prometheus-node-exporter unshare; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

exec unshare --mount --pid --fork --mount-proc --propagation private bash -s "$bin" "$layers" "$seconds" <<'INNER'
set -euo pipefail
bin=$1 layers=$2 seconds=$3
work=$(mktemp -d)
mkdir -p "$work/stack"
mount -t tmpfs -o size=1m tmpfs "$work/stack"
for ((i = 1; i < layers; i++)); do mount --bind "$work/stack" "$work/stack"; done
echo "mount table: $(wc -l < /proc/self/mountinfo) entries, $(grep -c " $work/stack " /proc/self/mountinfo) on $work/stack"
printf '[mounts]\nfstypes = ["tmpfs"]\nuse_fstab = false\n' > "$work/config.toml"
"$bin" --config "$work/config.toml" --web.listen-address 127.0.0.1:19784 --log.level warn &
watchdog=$!
prometheus-node-exporter --web.listen-address=127.0.0.1:19100 --collector.disable-defaults \
  --collector.filesystem --log.level=warn 2>/dev/null &
exporter=$!
rss() { awk '/VmRSS/ {print $2 " KiB"}' "/proc/$1/status"; }
first() {
  local start end
  start=$(date +%s%N)
  curl -s -o /dev/null --max-time 60 "$1" || true
  end=$(date +%s%N)
  echo "$(( (end - start) / 1000000 )) ms"
}
sleep 0.3
echo "first scrape: ocfs2-watchdog $(first http://127.0.0.1:19784/metrics), node_exporter $(first http://127.0.0.1:19100/metrics)"
for target in "ocfs2-watchdog http://127.0.0.1:19784/metrics $watchdog" "node_exporter http://127.0.0.1:19100/metrics $exporter"; do
  set -- $target
  echo "== $1"
  wrk -t1 -c1 -d"${seconds}s" --latency "$2" | grep -E "Requests/sec|50%|99%|Latency "
  echo "RSS after load: $(rss "$3")"
done
kill "$watchdog" "$exporter"
wait 2>/dev/null || true
INNER
