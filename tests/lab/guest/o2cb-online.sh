# Brings the o2cb stack online in a lab guest without an init system, with
# the lab's short timeouts. env: DEAD (heartbeat dead_threshold), IDLE (ms),
# CONF (the cluster.conf to install, default the pair's), and for global
# heartbeat mode (regions listed in CONF) starts heartbeat on every region
# after the timeouts are set, as the o2cb init script does.
set -e
mkdir -p /etc/ocfs2 /dlm /mnt/ocfs2
cp "${CONF:-/host/lab/cluster.conf}" /etc/ocfs2/cluster.conf
modprobe ocfs2_stack_o2cb
modprobe ocfs2_dlmfs
modprobe ocfs2
grep -q " /dlm " /proc/mounts || mount -t ocfs2_dlmfs ocfs2_dlmfs /dlm
o2cb register-cluster labclu
c=/sys/kernel/config/cluster/labclu
echo "${DEAD:-7}" > $c/heartbeat/dead_threshold
echo "${IDLE:-10000}" > $c/idle_timeout_ms
# A no-op unless cluster.conf says heartbeat_mode = global.
o2cb start-heartbeat labclu
o2cb cluster-status
