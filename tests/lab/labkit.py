"""The lab's machinery: QEMU guests, the 9p command agent, QMP, the daemon.

The default topology is a pair: two guests (n1, n2) boot the stock Debian
6.1 kernel from a busybox initramfs under TCG, share one raw disk (virtio, no
locking, like a SAN LUN) and a private L2 link (QEMU `socket` netdev
tunnelled over 127.0.0.1; the 10.99.0.0/24 addresses exist only on that
link). `Lab.switched` builds the bigger topology instead: N guests on a
virtual switch (`Switch`: Linux bridges and tap devices inside a network
namespace the lab creates and deletes, with no address and no route of its
own, so every packet stays on that private network), optionally with a
second fabric (eth1, 10.99.1.0/24) for two iSCSI paths. The host share
(`<run>/share`, mounted at /host in the guests) carries the daemon binary,
its configuration, state and logs, and the agent's job files.

Only the Python standard library is used, so the lab runs wherever CI does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
KVER = "6.1.0-56-amd64"
CACHE = Path(os.environ.get("OCFS2_LAB_CACHE", "/var/cache/ocfs2-watchdog-lab"))

# 768 MiB guests; the last MiB below 0x30000000 is kept from the kernel and
# given to ramoops, so the fence's last lines survive the in-place reset.
RAMOOPS = (
    "memmap=1M$0x2f000000 ramoops.mem_address=0x2f000000 ramoops.mem_size=0x100000 "
    "ramoops.record_size=0x20000 ramoops.max_reason=3 ramoops.ecc=0"
)


class LabError(Exception):
    pass


def run(*args: str) -> None:
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Switch:
    """The virtual switch of `Lab.switched`: one Linux bridge per fabric in a
    network namespace of the lab's own, one tap port per guest NIC. QEMU
    runs inside that namespace (`ip netns exec`) to open its taps; the
    namespace has no uplink, address or route, so nothing leaves it."""

    NAMESPACE = "ocfs2-lab"

    def __init__(self) -> None:
        self.bridges: set[str] = set()
        self.created = False

    def create(self) -> None:
        # A namespace left by a killed run (the lab lock serialises runs).
        subprocess.run(["ip", "netns", "del", self.NAMESPACE], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        run("ip", "netns", "add", self.NAMESPACE)
        self.created = True

    def port(self, fabric: int, tap: str) -> str:
        """Adds tap `tap` to fabric `fabric`'s bridge (made on first use);
        returns the QEMU netdev for it."""
        if not self.created:
            self.create()
        bridge = f"br{fabric}"
        if bridge not in self.bridges:
            # STP off (the default): a port forwards as soon as it is up.
            run("ip", "-n", self.NAMESPACE, "link", "add", bridge, "type", "bridge")
            run("ip", "-n", self.NAMESPACE, "link", "set", bridge, "up")
            self.bridges.add(bridge)
        run("ip", "-n", self.NAMESPACE, "tuntap", "add", "dev", tap, "mode", "tap")
        run("ip", "-n", self.NAMESPACE, "link", "set", tap, "master", bridge)
        run("ip", "-n", self.NAMESPACE, "link", "set", tap, "up")
        return f"tap,ifname={tap},script=no,downscript=no"

    def destroy(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.NAMESPACE], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self.bridges.clear()
        self.created = False


class Guest:
    """One QEMU guest, started and killed by this process (by PID)."""

    def __init__(self, lab: "Lab", name: str, ip: str, mac: str, netdev: str,
                 disks: list[Path], reset_in_place: bool = False, *,
                 second_nic: tuple[str, str] | None = None, scsi_disks: list[Path] | None = None,
                 memory: int = 768, netns: str | None = None):
        """`second_nic` is (netdev, address) of eth1; `scsi_disks` hang off a
        virtio-scsi controller (sdX in the guest: a SCSI device whose state
        can be set `offline`, as a failed LUN path); `netns` is where QEMU
        runs (the switch's namespace for tap netdevs)."""
        self.lab, self.name, self.ip, self.mac = lab, name, ip, mac
        self.netdev, self.disks, self.reset_in_place = netdev, disks, reset_in_place
        self.second_nic, self.scsi_disks = second_nic, scsi_disks or []
        self.memory, self.netns = memory, netns
        self.process: subprocess.Popen | None = None
        self.console = lab.run / f"{name}.console.log"
        self.qmp_path = lab.run / f"{name}.qmp"
        self.jobs = lab.share / "q" / name

    def start(self) -> None:
        self.jobs.mkdir(parents=True, exist_ok=True)
        for stale in self.jobs.iterdir():
            stale.unlink()
        qemu = CACHE / "qemu"
        append = f"console=ttyS0 panic=-1 quiet lab.node={self.name} lab.ip={self.ip}"
        if self.second_nic:
            append += f" lab.ip1={self.second_nic[1]}"
        if self.reset_in_place:
            if self.memory != 768:
                raise LabError(f"{self.name}: ramoops is laid out for 768 MiB guests")
            append += " " + RAMOOPS
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        args = prefix + [
            str(qemu / "usr/bin/qemu-system-x86_64"),
            "-L", str(qemu / "usr/share/qemu"), "-L", str(qemu / "usr/share/seabios"),
            "-name", self.name, "-machine", "q35", "-accel", "tcg", "-cpu", "max",
            "-smp", "1", "-m", str(self.memory), "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", str(CACHE / f"kern/boot/vmlinuz-{KVER}"),
            "-initrd", str(self.lab.initramfs),
            "-append", append,
            "-chardev", f"file,id=con,path={self.console}",
            "-serial", "chardev:con",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-virtfs", f"local,path={self.lab.share},mount_tag=host,security_model=none,id=host",
            "-netdev", f"{self.netdev},id=net0",
            "-device", f"virtio-net-pci,netdev=net0,mac=52:54:00:00:00:{self.mac}",
        ]
        if self.second_nic:
            args += ["-netdev", f"{self.second_nic[0]},id=net1",
                     "-device", f"virtio-net-pci,netdev=net1,mac=52:54:00:00:01:{self.mac}"]
        if not self.reset_in_place:
            # A fenced guest (emergency_restart) then ends its QEMU process.
            args.append("-no-reboot")
        for disk in self.disks:
            args += ["-drive", f"file={disk},format=raw,if=virtio,cache=none,aio=threads,file.locking=off"]
        if self.scsi_disks:
            args += ["-device", "virtio-scsi-pci,id=scsi0"]
        for index, disk in enumerate(self.scsi_disks):
            # serial: the LUN's identity (multipath WWIDs, the daemon's labels).
            args += ["-drive", f"file={disk},format=raw,if=none,id=sd{index},cache=none,aio=threads,file.locking=off",
                     "-device", f"scsi-hd,drive=sd{index},bus=scsi0.0,scsi-id={index},lun=0,serial={disk.stem}"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)

    def boots(self) -> int:
        try:
            return self.console.read_text(errors="replace").count("lab: boot-done")
        except FileNotFoundError:
            return 0

    def wait_booted(self, count: int = 1, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.boots() < count:
            if self.process and self.process.poll() is not None:
                raise LabError(f"{self.name}: QEMU exited ({self.process.returncode}) before boot {count}")
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: boot {count} not done after {timeout:.0f}s")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sh(self, script: str, timeout: float = 60, check: bool = True) -> str:
        """Runs `script` in the guest through the agent; returns its output."""
        job = uuid.uuid4().hex
        tmp = self.jobs / f".{job}.tmp"
        tmp.write_text(script + "\n")
        tmp.rename(self.jobs / f"{job}.sh")
        rc_path, out_path = self.jobs / f"{job}.rc", self.jobs / f"{job}.out"
        deadline = time.monotonic() + timeout
        while not rc_path.exists():
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: timed out after {timeout:.0f}s running: {script[:200]}")
            if not self.alive():
                raise LabError(f"{self.name}: guest died while running: {script[:200]}")
            time.sleep(0.1)
        rc = int(rc_path.read_text().strip() or "1")
        out = out_path.read_text(errors="replace") if out_path.exists() else ""
        if check and rc != 0:
            raise LabError(f"{self.name}: exit {rc} from: {script[:200]}\n{out}")
        return out

    def qmp(self, command: str) -> str:
        """Runs one HMP command (`stop`, `cont`, `set_link net0 off`) over QMP."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.qmp_path))
            stream = sock.makefile("rw")

            def reply() -> dict:
                while True:
                    message = json.loads(stream.readline())
                    if "event" not in message:
                        return message

            reply()
            stream.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
            stream.flush()
            reply()
            stream.write(json.dumps({"execute": "human-monitor-command",
                                     "arguments": {"command-line": command}}) + "\n")
            stream.flush()
            return str(reply().get("return", ""))

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)

    # The daemon -----------------------------------------------------------

    def start_daemon(self, config: str, args: str = "") -> None:
        (self.lab.share / "cfg").mkdir(exist_ok=True)
        (self.lab.share / "cfg" / f"{self.name}.toml").write_text(config)
        (self.lab.share / "state" / self.name).mkdir(parents=True, exist_ok=True)
        self.sh(f"/host/bin/ocfs2-watchdog --config /host/cfg/{self.name}.toml {args} "
                f">> /host/logs/{self.name}.daemon.log 2>&1 &\n"
                "for i in $(seq 1 100); do wget -q -O /dev/null http://127.0.0.1:9784/readyz && exit 0; sleep 0.2; done; exit 1",
                timeout=60)

    def stop_daemon(self) -> None:
        self.sh("killall ocfs2-watchdog; sleep 1", check=False)

    def metrics(self) -> dict[str, float]:
        text = self.sh("wget -q -O - http://127.0.0.1:9784/metrics", timeout=30)
        return parse_metrics(text)

    def status(self) -> dict:
        return json.loads(self.sh("wget -q -O - http://127.0.0.1:9784/status", timeout=30))


def parse_metrics(text: str) -> dict[str, float]:
    """Series (name plus labels as printed) to value, text format 0.0.4."""
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            series[name] = float(value)
        except ValueError:
            continue
    return series


def cluster_conf(nodes: int, regions: list[str] = ()) -> str:
    """cluster.conf (o2cb's tab-indented stanzas) for n1..nNODES at
    10.99.0.N; with `regions` (UUIDs), in global heartbeat mode."""
    mode = "global" if regions else "local"
    text = f"cluster:\n\tnode_count = {nodes}\n\theartbeat_mode = {mode}\n\tname = labclu\n\n"
    for n in range(1, nodes + 1):
        text += (f"node:\n\tip_port = 7777\n\tip_address = 10.99.0.{n}\n\tnumber = {n}\n"
                 f"\tname = n{n}\n\tcluster = labclu\n\n")
    for region in regions:
        text += f"heartbeat:\n\tregion = {region}\n\tcluster = labclu\n\n"
    return text


class Lab:
    """A run directory, the share, the shared disk and the guests."""

    def __init__(self, run: Path, daemon: Path):
        self.run, self.daemon = run, daemon
        self.share = run / "share"
        self.initramfs = run / "initramfs.cpio.gz"
        self.guests: list[Guest] = []
        self.switch = Switch()

    def prepare(self) -> None:
        if self.run.exists():
            shutil.rmtree(self.run)
        for sub in ["q", "bin", "cfg", "logs", "state", "lab"]:
            (self.share / sub).mkdir(parents=True)
        shutil.copy2(self.daemon, self.share / "bin" / "ocfs2-watchdog")
        for name in ["cluster.conf", "o2cb-online.sh", "iscsi.sh", "multipath.sh"]:
            shutil.copy2(HERE / "guest" / name, self.share / "lab" / name)
        subprocess.run([str(HERE / "build-initramfs.sh"), str(self.initramfs)], check=True,
                       env={**os.environ, "DAEMON": str(self.daemon)})

    def disk(self, name: str, size: str = "1G") -> Path:
        path = self.run / f"{name}.img"
        path.unlink(missing_ok=True)
        subprocess.run(["truncate", "-s", size, str(path)], check=True)
        return path

    def pair(self, reset_in_place: tuple[str, ...] = (), extra_disks: dict[str, list[Path]] | None = None,
             port: int = 10001, scsi_disks: list[Path] | None = None) -> tuple[Guest, Guest]:
        """The default topology; `scsi_disks` are shared by both guests."""
        shared = self.disk("shared")
        extra = extra_disks or {}
        # New guests are new hosts: no daemon state (remediation budget,
        # cooldowns, give-ups, audit log) carries over from an earlier scenario.
        for name in ("n1", "n2"):
            shutil.rmtree(self.share / "state" / name, ignore_errors=True)
        n1 = Guest(self, "n1", "10.99.0.1/24", "01", f"socket,listen=127.0.0.1:{port}",
                   [shared] + extra.get("n1", []), "n1" in reset_in_place, scsi_disks=scsi_disks)
        n2 = Guest(self, "n2", "10.99.0.2/24", "02", f"socket,connect=127.0.0.1:{port}",
                   [shared] + extra.get("n2", []), "n2" in reset_in_place, scsi_disks=scsi_disks)
        self.guests += [n1, n2]
        n1.start()
        time.sleep(0.5)
        n2.start()
        n1.wait_booted()
        n2.wait_booted()
        return n1, n2

    def switched_guest(self, name: str, number: int, disks: list[Path], *, fabrics: int = 1,
                       reset_in_place: bool = False, scsi_disks: list[Path] | None = None,
                       memory: int = 768) -> Guest:
        """A guest on the switch (not started): eth0 10.99.0.NUMBER on fabric
        0, with `fabrics=2` also eth1 10.99.1.NUMBER on fabric 1."""
        mac = f"{number:02x}"
        netdev = self.switch.port(0, f"lab{number}f0")
        second = (self.switch.port(1, f"lab{number}f1"), f"10.99.1.{number}/24") if fabrics > 1 else None
        guest = Guest(self, name, f"10.99.0.{number}/24", mac, netdev, disks, reset_in_place,
                      second_nic=second, scsi_disks=scsi_disks, memory=memory,
                      netns=Switch.NAMESPACE)
        self.guests.append(guest)
        return guest

    def switched(self, count: int, reset_in_place: tuple[str, ...] = (), shared: bool = True,
                 fabrics: int = 1, scsi_disks: list[Path] | None = None,
                 also: list[Guest] = ()) -> list[Guest]:
        """Boots n1..nCOUNT on the switch (plus `also`, guests made with
        `switched_guest`), all sharing one raw disk (vda) unless `shared` is
        off; returns n1..nCOUNT once every guest has booted."""
        disks = [self.disk("shared")] if shared else []
        nodes = [self.switched_guest(f"n{i}", i, list(disks), fabrics=fabrics,
                                     reset_in_place=f"n{i}" in reset_in_place, scsi_disks=scsi_disks)
                 for i in range(1, count + 1)]
        for guest in list(also) + nodes:
            guest.start()
        for guest in list(also) + nodes:
            # TCG guests booting together on two shared cores.
            guest.wait_booted(timeout=120 + 40 * count)
        return nodes

    def online(self, *guests: Guest, dead: int = 7, idle: int = 10000, conf: str | None = None) -> None:
        """o2cb online on `guests`; `conf` is a cluster.conf text (default: the pair's)."""
        env = ""
        if conf is not None:
            (self.share / "lab" / "cluster.run.conf").write_text(conf)
            env = "CONF=/host/lab/cluster.run.conf "
        for guest in guests:
            guest.sh(f"{env}DEAD={dead} IDLE={idle} sh /host/lab/o2cb-online.sh", timeout=90)

    def mkfs_and_mount(self, n1: Guest, n2: Guest, device: str = "/dev/vda") -> None:
        n1.sh(f"mkfs.ocfs2 -q -F -N 4 --cluster-stack=o2cb --cluster-name=labclu -L labvol -J size=16M {device}",
              timeout=120)
        for guest in (n1, n2):
            guest.sh(f"mount.ocfs2 {device} /mnt/ocfs2", timeout=180)

    def cleanup(self) -> None:
        for guest in self.guests:
            guest.kill()
        self.guests.clear()
        self.switch.destroy()

    def dump(self) -> str:
        """What a failed scenario prints: console and daemon log tails."""
        parts = []
        for guest in self.guests:
            for path in [guest.console, self.share / "logs" / f"{guest.name}.daemon.log"]:
                try:
                    tail = path.read_text(errors="replace").splitlines()[-60:]
                except FileNotFoundError:
                    tail = ["(none)"]
                parts.append(f"----- {path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)
