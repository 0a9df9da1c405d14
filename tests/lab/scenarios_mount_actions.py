"""Device identity on the real kernel: a remount never mounts another volume.

The lab's guests have no udev links, so `LABEL=` in `failed_mount` (the
shared EXPECTED) is already resolved from the superblocks. Here the expected
source is the kernel name `/dev/vda`, allowed with
`[mounts] allow_kernel_names`: after the volume was seen mounted, it is
unmounted and a new OCFS2 volume is made on the same disk (what a LUN swap
or a re-numbered `/dev/sdX` after an iSCSI re-login looks like), and the
daemon must refuse to mount it.
"""

from __future__ import annotations

import json

from labkit import Lab
from scenario_kit import ENFORCE, audit, daemon_config, expect, find, scenario, volume_uuid, wait_for

KERNEL_NAME = """
[mounts]
allow_kernel_names = true
[[mounts.expected]]
mountpoint = "/mnt/ocfs2"
source = "/dev/vda"
fstype = "ocfs2"
options = "_netdev"
"""


@scenario(300)
def scenario_swapped_volume(lab: Lab) -> None:
    """Another volume appears under the expected kernel name: not mounted."""
    n1, n2 = lab.pair()
    lab.online(n1, n2)
    lab.mkfs_and_mount(n1, n2)
    old = volume_uuid(n1)
    n2.start_daemon(daemon_config("n2", KERNEL_NAME + ENFORCE))
    wait_for("n2 to see the volume's UUID", 60,
             lambda: find(n2.metrics(), "ocfs2_mount_info", mountpoint="/mnt/ocfs2", uuid=old) == 1.0)
    # Hold remediation while the disk changes hands, as a swap would be quick.
    n2.sh("touch /host/state/n2/pause")
    wait_for("n2 to pause", 30, lambda: find(n2.metrics(), "ocfs2_watchdog_paused") == 1.0)
    n2.sh("umount /mnt/ocfs2", timeout=120)
    n1.sh("umount /mnt/ocfs2", timeout=120)
    # Overwriting a volume, mkfs.ocfs2 asks for confirmation even with -F.
    n1.sh("echo y | mkfs.ocfs2 -q -F -N 4 --cluster-stack=o2cb --cluster-name=labclu -L labvol -J size=16M /dev/vda",
          timeout=120)
    new = volume_uuid(n1)
    expect(new != old, f"mkfs.ocfs2 kept the UUID {old}")
    n2.sh("rm /host/state/n2/pause")

    def refused():
        for record in audit(lab, "n2"):
            if (record.get("rule") == "missing_mount" and record.get("outcome") == "precondition_changed"
                    and f"is volume {new}, expected {old}" in json.dumps(record)):
                return record
        return None
    wait_for("n2 to refuse the other volume", 60, refused)
    m = n2.metrics()
    expect(find(m, "ocfs2_mount_missing", mountpoint="/mnt/ocfs2") == 1.0, "the path is no longer missing")
    outcomes = [r.get("outcome") for r in audit(lab, "n2") if r.get("rule") == "missing_mount"]
    expect("success" not in outcomes, f"a remount succeeded: {outcomes}")
    n2.sh("! grep ' /mnt/ocfs2 ' /proc/mounts")
