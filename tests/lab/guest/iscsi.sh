# iSCSI in a lab guest. usage: sh iscsi.sh target|initiator PORTAL
#   target:    start tgtd exporting /dev/vdb as LUN 1 of the lab's target
#   initiator: start iscsid (recovery_tmo 10 s, 2 s NOPs) and log in
set -e
iqn=iqn.2024-01.lab.ocfs2:shared
case $1 in
  target)
    mkdir -p /var/run/tgtd
    tgtd
    for i in $(seq 1 50); do tgtadm --lld iscsi --mode target --op show >/dev/null 2>&1 && break; sleep 0.1; done
    tgtadm --lld iscsi --op new --mode target --tid 1 -T $iqn
    tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b /dev/vdb
    tgtadm --lld iscsi --op bind --mode target --tid 1 -I ALL
    ;;
  initiator)
    modprobe crc32c_generic; modprobe iscsi_tcp; modprobe sd_mod
    mkdir -p /etc/iscsi /var/lib/iscsi /run/lock/iscsi /var/lock/iscsi
    echo "InitiatorName=iqn.2024-01.lab:$(hostname)" > /etc/iscsi/initiatorname.iscsi
    sed -i 's/^node.session.timeo.replacement_timeout = .*/node.session.timeo.replacement_timeout = 10/;
            s/^node.conn\[0\].timeo.noop_out_interval = .*/node.conn[0].timeo.noop_out_interval = 2/;
            s/^node.conn\[0\].timeo.noop_out_timeout = .*/node.conn[0].timeo.noop_out_timeout = 2/' /etc/iscsi/iscsid.conf
    pidof iscsid >/dev/null || iscsid
    sleep 1
    iscsiadm -m discovery -t sendtargets -p "$2"
    iscsiadm -m node -T $iqn -p "$2" --login
    for i in $(seq 1 50); do [ -b /dev/sda ] && exit 0; sleep 0.2; done
    echo "no /dev/sda after login" >&2; exit 1
    ;;
esac
