#!/usr/bin/env bash
# Fetches and unpacks everything the two-node OCFS2 lab needs, from Debian
# packages only, into a cache kept between runs:
#   $OCFS2_LAB_CACHE (default /var/cache/ocfs2-watchdog-lab)
#     qemu/   qemu-system-x86 + firmware, extracted (it cannot be installed
#             next to the machine's qemu-utils from backports)
#     kern/   the Debian 6.1 kernel with the ocfs2, dlm, dm and iSCSI modules
#     pkgs/   ocfs2-tools, open-iscsi, tgt, multipath-tools and the
#             libraries they link
# Idempotent: a filled cache costs nothing. Host packages the lab needs to run
# QEMU and build the initramfs are installed with apt-get.
set -euo pipefail
CACHE=${OCFS2_LAB_CACHE:-/var/cache/ocfs2-watchdog-lab}
KVER=6.1.0-56-amd64
mkdir -p "$CACHE"/{debs,qemu,kern,pkgs}
export DEBIAN_FRONTEND=noninteractive

host_packages=(libcapstone4 libfdt1 libpmem1 librdmacm1 libibverbs1 libslirp0 libvdeplug2
               busybox-static cpio e2fsprogs kmod file iproute2)
missing=()
for p in "${host_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
updated=0
update_once() { [ $updated = 1 ] || { apt-get update -qq; updated=1; }; }
if [ ${#missing[@]} -gt 0 ]; then
  update_once
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

download() {  # download PKG... into debs unless already there
  local want=()
  for p in "$@"; do ls "$CACHE/debs/${p}_"*.deb >/dev/null 2>&1 || want+=("$p"); done
  [ ${#want[@]} -eq 0 ] && return 0
  update_once
  (cd "$CACHE/debs" && apt-get download -qq "${want[@]}")
}

if [ ! -x "$CACHE/qemu/usr/bin/qemu-system-x86_64" ]; then
  download qemu-system-x86 qemu-system-common qemu-system-data seabios ipxe-qemu
  for p in qemu-system-x86 qemu-system-common qemu-system-data seabios ipxe-qemu; do
    dpkg -x "$CACHE"/debs/${p}_*.deb "$CACHE/qemu"
  done
fi
if [ ! -e "$CACHE/kern/boot/vmlinuz-$KVER" ]; then
  download "linux-image-$KVER"
  dpkg -x "$CACHE"/debs/linux-image-${KVER}_*.deb "$CACHE/kern"
  depmod -b "$CACHE/kern" "$KVER"
fi
tools=(ocfs2-tools open-iscsi tgt libdlm3 libcmap4 libcorosync-common4 libqb100 libisns0 libopeniscsiusr)
if [ ! -x "$CACHE/pkgs/sbin/mkfs.ocfs2" ] && [ ! -x "$CACHE/pkgs/usr/sbin/mkfs.ocfs2" ]; then
  download "${tools[@]}"
  for p in "${tools[@]}"; do dpkg -x "$CACHE"/debs/${p}_*.deb "$CACHE/pkgs"; done
fi
# dm-multipath over two iSCSI paths (the topology scenarios): multipathd
# checks and reinstates paths; kpartx is its dependency, liburcu8 its library.
multipath=(multipath-tools kpartx liburcu8)
if [ ! -x "$CACHE/pkgs/sbin/multipathd" ]; then
  download "${multipath[@]}"
  for p in "${multipath[@]}"; do dpkg -x "$CACHE"/debs/${p}_*.deb "$CACHE/pkgs"; done
fi
"$CACHE/qemu/usr/bin/qemu-system-x86_64" --version | head -1
echo "lab cache ready: $CACHE"
