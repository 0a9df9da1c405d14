"""Builds the mount tables of benches/steady_state.sh inside its namespace.

mount(2) through ctypes: 20 000 mounts in a second or two, where a shell
loop of mount(8) takes minutes. Run only inside a private mount namespace.

  distinct DIR N        N binds of one directory on N distinct paths
  stacked DIR N         a tmpfs on DIR, then N-1 binds of DIR onto itself
  stacked-ramfs DIR N   the same with ramfs (the "watched" type of the bench)
  kubelet ROOT N        one ramfs volume staged under ROOT/plugins and bound
                        on N pod volume paths under ROOT/pods, as kubelet does
"""

import ctypes
import os
import sys
import uuid

MS_BIND = 4096
libc = ctypes.CDLL(None, use_errno=True)


def mount(source, target, fstype=None, flags=0, data=None):
    enc = lambda s: s.encode() if s is not None else None
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def distinct(base, count):
    source = os.path.join(base, "source")
    os.makedirs(source, exist_ok=True)
    for i in range(count):
        target = os.path.join(base, f"{i:05d}")
        os.makedirs(target, exist_ok=True)
        mount(source, target, flags=MS_BIND)


def stacked(path, count, fstype):
    os.makedirs(path, exist_ok=True)
    mount(fstype, path, fstype, 0, "size=1m" if fstype == "tmpfs" else None)
    for _ in range(count - 1):
        mount(path, path, flags=MS_BIND)


def kubelet(root, count):
    volume = "pvc-" + str(uuid.UUID(int=15))
    staged = os.path.join(root, "plugins/kubernetes.io/csi/ocfs2.csi/", volume, "globalmount")
    os.makedirs(staged, exist_ok=True)
    mount("ramfs", staged, "ramfs")
    for i in range(count):
        pod = str(uuid.UUID(int=i))
        target = os.path.join(root, "pods", pod, "volumes/kubernetes.io~csi", volume, "mount")
        os.makedirs(target, exist_ok=True)
        mount(staged, target, flags=MS_BIND)


def main():
    mode, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "distinct":
        distinct(path, count)
    elif mode == "stacked":
        stacked(path, count, "tmpfs")
    elif mode == "stacked-ramfs":
        stacked(path, count, "ramfs")
    elif mode == "kubelet":
        kubelet(root=path, count=count)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
