# Two iSCSI paths to one LUN and dm-multipath over them, in a lab guest.
# usage: sh multipath.sh target
#          tgtd exporting /dev/vda as LUN 1 on every address of this guest
#          (one portal per fabric: 10.99.0.N and 10.99.1.N)
#        sh multipath.sh initiator PORTAL_A PORTAL_B
#          iscsid (recovery_tmo 10 s, 2 s NOPs), a login through each portal,
#          then multipathd (no udev here: WWIDs come from sysfs VPD page 0x83)
#          and waits for the map with two active paths.
# env NO_PATH_RETRY (default 5 = 10 s of queueing at polling_interval 2)
set -e
iqn=iqn.2024-01.lab.ocfs2:shared
case $1 in
  target)
    mkdir -p /var/run/tgtd
    tgtd
    for i in $(seq 1 50); do tgtadm --lld iscsi --mode target --op show >/dev/null 2>&1 && break; sleep 0.1; done
    tgtadm --lld iscsi --op new --mode target --tid 1 -T $iqn
    tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b /dev/vda
    tgtadm --lld iscsi --op bind --mode target --tid 1 -I ALL
    ;;
  initiator)
    modprobe crc32c_generic; modprobe iscsi_tcp; modprobe sd_mod
    modprobe dm-multipath; modprobe dm-round-robin; modprobe dm-service-time
    mkdir -p /etc/iscsi /var/lib/iscsi /run/lock/iscsi /var/lock/iscsi /etc/multipath
    echo "InitiatorName=iqn.2024-01.lab:$(hostname)" > /etc/iscsi/initiatorname.iscsi
    sed -i 's/^node.session.timeo.replacement_timeout = .*/node.session.timeo.replacement_timeout = 10/;
            s/^node.conn\[0\].timeo.noop_out_interval = .*/node.conn[0].timeo.noop_out_interval = 2/;
            s/^node.conn\[0\].timeo.noop_out_timeout = .*/node.conn[0].timeo.noop_out_timeout = 2/' /etc/iscsi/iscsid.conf
    pidof iscsid >/dev/null || iscsid
    sleep 1
    for portal in "$2" "$3"; do
      iscsiadm -m discovery -t sendtargets -p "$portal" >/dev/null
      iscsiadm -m node -T $iqn -p "$portal" --login
    done
    for i in $(seq 1 50); do [ -b /dev/sda ] && [ -b /dev/sdb ] && break; sleep 0.2; done
    # No udevd in the guests: record for each path what udev's scsi_id rules
    # would (ID_SERIAL and ID_WWN from the LUN's VPD page 0x83 identifier).
    # libudev then reports the disks initialized, multipath's default
    # property whitelist (ID_WWN) passes them, and their WWIDs match.
    mkdir -p /run/udev/data
    for disk in /sys/block/sd*; do
      wwid=$(cat "$disk/device/wwid"); wwid=${wwid#naa.}
      printf 'E:ID_SERIAL=3%s\nE:ID_WWN=0x%s\nE:DEVTYPE=disk\n' "$wwid" "$wwid" > "/run/udev/data/b$(cat "$disk/dev")"
    done
    cat > /etc/multipath.conf <<CONF
defaults {
	user_friendly_names yes
	find_multipaths no
	polling_interval 2
	no_path_retry ${NO_PATH_RETRY:-5}
	path_checker tur
	path_grouping_policy multibus
}
blacklist {
	devnode "^vd[a-z]"
}
CONF
    # Started after the paths exist: it builds the map itself on start-up
    # (it would learn of later paths only from udev events).
    pidof multipathd >/dev/null || multipathd
    for i in $(seq 1 100); do
      [ "$(multipath -ll 2>/dev/null | grep -c 'active ready running')" = 2 ] && break
      sleep 0.3
    done
    # libdevmapper makes no /dev/mapper node without udev.
    dmsetup mknodes
    multipath -ll
    [ -b /dev/mapper/mpatha ]
    ;;
esac
