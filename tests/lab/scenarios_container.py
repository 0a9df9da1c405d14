"""The daemon as the DaemonSet runs it, on a real OCFS2 kernel: in a mount
namespace of its own (`unshare -m`, the guest's root bound at `/host`, rslave
as a HostToContainer/Bidirectional hostPath is, same PID namespace as
`hostPID`), its binary and config on a tmpfs only that namespace sees. It
must heal the guest's own mount table, PID 1's: unstack binds on the real
OCFS2 mount and remount it after it is unmounted behind its back. See
tests/lab/README.md.
"""

from __future__ import annotations

from labkit import Guest, Lab
from scenario_kit import ENFORCE, EXPECTED, action_outcomes, audit, expect, find, scenario, wait_for


def start_container_daemon(guest: Guest) -> None:
    """Starts the daemon in a container-like mount namespace on `guest`.

    The guest root is made rshared first, as systemd makes a host's; the
    OCFS2 mount itself is private so that binding it onto itself stacks one
    layer per bind instead of doubling through propagation. Inside the new
    namespace the root turns rslave (container mounts stay in), the binary and
    config are copied to a namespace-only tmpfs (the path does not exist on
    the "host"), and the root is bound over `/host`, hiding the share there
    (it is reachable again as `/host/host`)."""
    name = guest.name
    config = (f'state_dir = "/host/host/state/{name}"\n'
              '[sampler]\ninterval = "1s"\n' + EXPECTED + ENFORCE)
    (guest.lab.share / "cfg").mkdir(exist_ok=True)
    (guest.lab.share / "cfg" / f"{name}-container.toml").write_text(config)
    (guest.lab.share / "state" / name).mkdir(parents=True, exist_ok=True)
    inner = ("set -e; mount --make-rslave /; mount -t tmpfs tmpfs /ctr; "
             "cp /host/bin/ocfs2-watchdog /ctr/ocfs2-watchdog; "
             f"cp /host/cfg/{name}-container.toml /ctr/config.toml; "
             "mount --rbind / /host; "
             "exec /ctr/ocfs2-watchdog --path.rootfs=/host --config=/ctr/config.toml")
    guest.sh("mount --make-rshared / && mount --make-private /mnt/ocfs2 && mkdir -p /ctr\n"
             f"busybox unshare -m sh -c '{inner}' >> /host/logs/{name}.daemon.log 2>&1 &\n"
             "for i in $(seq 1 100); do wget -q -O /dev/null http://127.0.0.1:9784/readyz && exit 0; sleep 0.2; done; exit 1",
             timeout=60)


def layers(guest: Guest) -> str:
    """Layers on /mnt/ocfs2 in PID 1's (the guest's own) mount table."""
    return guest.sh("grep -c ' /mnt/ocfs2 ' /proc/1/mountinfo || true").strip()


@scenario(300)
def scenario_container_daemon(lab: Lab) -> None:
    """The daemon in a container namespace heals the guest: 20 stacked binds
    unstacked to one, then the unmounted volume mounted again, once."""
    n1, n2 = lab.pair()
    lab.online(n1, n2)
    lab.mkfs_and_mount(n1, n2)
    start_container_daemon(n1)
    namespaces = n1.sh("readlink /proc/1/ns/mnt; readlink /proc/$(pidof ocfs2-watchdog)/ns/mnt").split()
    expect(len(namespaces) == 2 and namespaces[0] != namespaces[1],
           f"the daemon must run in a mount namespace of its own: {namespaces}")
    expect(n1.sh("test -e /ctr/ocfs2-watchdog && echo host-sees-it || echo absent").strip() == "absent",
           "the daemon's binary path must not exist in the guest's own namespace")
    # The engine publishes after its first tick; wait for it.
    placement = wait_for("the engine's first report", 30,
                         lambda: (n1.status().get("remediation") or {}).get("action_namespace"))
    expect("PID 1's mount namespace" in placement, f"actions placed in {placement}")

    n1.sh("for i in $(seq 1 20); do mount --bind /mnt/ocfs2 /mnt/ocfs2; done")
    expect(layers(n1) == "21", f"{layers(n1)} layers stacked")
    wait_for("n1 to unstack to one layer", 90,
             lambda: layers(n1) == "1"
             and (find(n1.metrics(), "ocfs2_watchdog_actions_total", rule="duplicate_mount_layers",
                       outcome="success") or 0) >= 1)
    n1.sh("touch /mnt/ocfs2/still-here && ls /mnt/ocfs2/still-here")

    n1.sh("umount /mnt/ocfs2", timeout=120)
    wait_for("n1 to remount the volume", 120,
             lambda: layers(n1) == "1"
             and (find(n1.metrics(), "ocfs2_watchdog_actions_total", rule="missing_mount",
                       outcome="success") or 0) >= 1)
    n1.sh("grep ' /mnt/ocfs2 ocfs2 ' /proc/1/mounts && touch /mnt/ocfs2/remounted")
    # Mounted once in the guest, and it is what n2 sees: the real volume.
    expect(layers(n1) == "1", f"{layers(n1)} layers after the remount")
    n2.sh("ls /mnt/ocfs2/remounted")
    expect("success" in action_outcomes(lab, "n1", "duplicate_mount_layers"), "no successful unstack audited")
    expect("success" in action_outcomes(lab, "n1", "missing_mount"), "no successful remount audited")
    failed = [r for r in audit(lab, "n1") if r.get("outcome") == "failed"]
    expect(not failed, f"failed actions: {failed}")
