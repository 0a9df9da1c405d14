#!/usr/bin/env bash
# Builds the lab guests' initramfs from the cache filled by setup.sh:
# busybox, the kernel modules the scenarios load, ocfs2-tools, open-iscsi,
# tgt, multipath-tools, dmsetup, and the libraries they link. The daemon itself is not in it:
# it runs from the host share, so a rebuilt binary needs no new initramfs.
# usage: build-initramfs.sh OUT.cpio.gz
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${OCFS2_LAB_CACHE:-/var/cache/ocfs2-watchdog-lab}
KVER=6.1.0-56-amd64
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64} \
         "$root"/{etc,proc,sys,dev,run,tmp,mnt,root,var/lib,var/lock,var/run,host,dlm}
ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"; ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
cp /bin/busybox "$root/usr/bin/busybox"
export LD_LIBRARY_PATH=$CACHE/pkgs/usr/lib/x86_64-linux-gnu:$CACHE/pkgs/lib
add_libs() {
  ldd "$1" 2>/dev/null | awk '/=> \//{print $3}' | while read -r lib; do
    [ -e "$root/usr/lib/x86_64-linux-gnu/$(basename "$lib")" ] || cp -L "$lib" "$root/usr/lib/x86_64-linux-gnu/"
  done
}
add_binary() {  # add_binary PATH DIR
  cp -L "$1" "$root/usr/$2/"
  if file -L "$1" | grep -q ELF; then add_libs "$1"; fi
}
cp -L /lib64/ld-linux-x86-64.so.2 "$root/usr/lib64/"
for b in "$CACHE"/pkgs/sbin/* "$CACHE"/pkgs/usr/sbin/*; do add_binary "$b" sbin; done
# util-linux mount/umount, as on a real host: `mount -t ocfs2` runs the
# mount.ocfs2 helper (busybox's mount would call mount(2) directly).
for b in /usr/sbin/dmsetup /usr/bin/bash /usr/bin/mount /usr/bin/umount; do add_binary "$b" bin; done
# multipathd's checker and prioritizer plugins (its multipath_dir is /lib/multipath).
if [ -d "$CACHE/pkgs/lib/multipath" ]; then
  mkdir -p "$root/usr/lib/multipath"
  for plugin in "$CACHE"/pkgs/lib/multipath/*.so; do add_binary "$plugin" lib/multipath; done
fi
# The daemon's own libraries (it runs from the share).
add_libs "${DAEMON:-/bin/true}"
for lib in libgcc_s.so.1 libm.so.6 libc.so.6; do
  [ -e "$root/usr/lib/x86_64-linux-gnu/$lib" ] || cp -L "/lib/x86_64-linux-gnu/$lib" "$root/usr/lib/x86_64-linux-gnu/"
done
cp -a "$CACHE"/pkgs/etc/ocfs2 "$CACHE"/pkgs/etc/iscsi "$CACHE"/pkgs/etc/tgt "$root/etc/" 2>/dev/null || true
ln -s /proc/self/mounts "$root/etc/mtab"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
modules="virtio_pci virtio_blk virtio_net 9p 9pnet_virtio configfs ocfs2 ocfs2_stack_o2cb ocfs2_dlm
  ocfs2_dlmfs dm-mod dm-delay dm-flakey iscsi_tcp sd_mod crc32c_generic ramoops virtio_scsi
  dm-multipath dm-round-robin dm-service-time dm-queue-length"
for m in $modules; do
  modprobe -d "$CACHE/kern" -S "$KVER" --show-depends "$m"
done | awk '$1 == "insmod" {print $2}' | sort -u | while read -r ko; do
  rel=${ko#"$CACHE/kern"/}
  mkdir -p "$root/usr/$(dirname "$rel")"
  cp "$ko" "$root/usr/$rel"
done
cp "$CACHE"/kern/lib/modules/$KVER/modules.{order,builtin,builtin.modinfo} "$root/usr/lib/modules/$KVER/"
depmod -b "$root/usr" "$KVER"
cp "$here/guest/init" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$out")
