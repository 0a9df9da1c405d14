//! Stacked mounts: the layers on one mount point, top first.
//!
//! Each mount made on top of another at the same path has the lower mount's
//! ID as its parent (fs/namespace.c; docs/interfaces.md §7.2), so the layers of a
//! path are the parent-ID chain from the visible top down to the first mount
//! whose parent sits elsewhere. Propagated copies under another path (a bind
//! of the parent with shared propagation) form their own chain under that
//! path, so every path is counted on its own. A layer *duplicates* the one
//! below only when nothing about it differs: same filesystem (device and
//! root), same per-mount flags (`ro`, `nosuid`, `nodev`, `noexec`, the atime
//! flags) and same propagation type (shared, slave, private, unbindable).
//! Popping such a layer changes nothing anyone can see. A layer of the same
//! filesystem that differs in flags or propagation was made on purpose (a
//! read-only self-bind: `mount --bind X X; mount -o remount,bind,ro X`) and
//! is neither a duplicate nor a shadow. A different filesystem or root on top
//! *shadows* what is below, which is never cleaned automatically.

use std::collections::{HashMap, HashSet};

use super::mountinfo::MountEntry;

/// Indices into the mount table per mount point, built once per read.
pub struct TableIndex<'a> {
    entries: &'a [MountEntry],
    by_id: HashMap<u32, usize>,
    by_mount_point: HashMap<&'a str, Vec<usize>>,
}

impl<'a> TableIndex<'a> {
    pub fn new(entries: &'a [MountEntry]) -> Self {
        let mut by_id = HashMap::with_capacity(entries.len());
        let mut by_mount_point: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            by_id.insert(entry.id, index);
            by_mount_point
                .entry(entry.mount_point.as_str())
                .or_default()
                .push(index);
        }
        Self {
            entries,
            by_id,
            by_mount_point,
        }
    }

    pub fn mount_points(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.by_mount_point.keys().copied()
    }

    /// The visible layers of `mount_point`, top first; empty when nothing is
    /// mounted there.
    pub fn layers(&self, mount_point: &str) -> Vec<&'a MountEntry> {
        let Some(indices) = self.by_mount_point.get(mount_point) else {
            return Vec::new();
        };
        let covered: HashSet<u32> = indices
            .iter()
            .map(|&i| &self.entries[i])
            .filter(|e| {
                self.at(e.parent)
                    .is_some_and(|p| p.mount_point == mount_point)
            })
            .map(|e| e.parent)
            .collect();
        // Several uncovered tops mean hidden chains (something mounted over a
        // parent directory): the one mounted last is the one path lookup sees.
        let Some(&top) = indices
            .iter()
            .rev()
            .find(|&&i| !covered.contains(&self.entries[i].id))
        else {
            return Vec::new();
        };
        let mut layers = vec![&self.entries[top]];
        let mut seen = HashSet::from([self.entries[top].id]);
        while let Some(below) = self.at(layers[layers.len() - 1].parent) {
            if below.mount_point != mount_point || !seen.insert(below.id) {
                break;
            }
            layers.push(below);
        }
        layers
    }

    fn at(&self, id: u32) -> Option<&'a MountEntry> {
        self.by_id.get(&id).map(|&i| &self.entries[i])
    }
}

/// Same filesystem and the same part of it (device and root).
pub fn same_filesystem(a: &MountEntry, b: &MountEntry) -> bool {
    (a.major, a.minor) == (b.major, b.minor) && a.root == b.root
}

/// Per-mount flags as mountinfo field 6 shows them (fs/proc_namespace.c
/// `show_mnt_opts`: `rw|ro` then `nosuid`, `nodev`, `noexec`, `noatime`,
/// `nodiratime`, `relatime`, `nosymfollow`), order-independent.
fn mount_flags(entry: &MountEntry) -> std::collections::BTreeSet<&str> {
    entry.mount_options.split(',').collect()
}

/// The propagation type from the optional fields: peer group numbers differ
/// between copies that behave the same, so only the kind is compared.
fn propagation(entry: &MountEntry) -> (bool, bool, bool) {
    let has = |prefix: &str| entry.optional.iter().any(|tag| tag.starts_with(prefix));
    (has("shared:"), has("master:"), has("unbindable"))
}

/// A layer identical to the one below: same filesystem, root, per-mount flags
/// and propagation type. Only these are safe to unmount.
pub fn duplicate_layer(upper: &MountEntry, lower: &MountEntry) -> bool {
    same_filesystem(upper, lower)
        && mount_flags(upper) == mount_flags(lower)
        && propagation(upper) == propagation(lower)
}

/// How a stack of layers (top first) is made up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackShape {
    pub layers: usize,
    /// Layers identical to the layer directly below them (`duplicate_layer`).
    pub duplicates: usize,
    /// Some layer shows a different filesystem than the one below it.
    pub shadowed: bool,
}

pub fn shape(layers: &[&MountEntry]) -> StackShape {
    let mut shape = StackShape {
        layers: layers.len(),
        ..StackShape::default()
    };
    for pair in layers.windows(2) {
        if duplicate_layer(pair[0], pair[1]) {
            shape.duplicates += 1;
        } else if !same_filesystem(pair[0], pair[1]) {
            shape.shadowed = true;
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::super::mountinfo::parse_mountinfo;
    use super::*;

    #[test]
    fn chain_of_duplicates() {
        let table = parse_mountinfo(
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
             20 1 0:40 / /srv/data rw - tmpfs t rw\n\
             21 20 0:40 / /srv/data rw - tmpfs t rw\n\
             22 21 0:40 / /srv/data rw - tmpfs t rw\n\
             23 22 0:41 /sub /srv/data/x rw - tmpfs u rw\n",
        );
        let index = TableIndex::new(&table.entries);
        let layers = index.layers("/srv/data");
        assert_eq!(
            layers.iter().map(|e| e.id).collect::<Vec<_>>(),
            [22, 21, 20]
        );
        assert_eq!(
            shape(&layers),
            StackShape {
                layers: 3,
                duplicates: 2,
                shadowed: false
            }
        );
        assert_eq!(index.layers("/srv/data/x").len(), 1);
        assert!(index.layers("/nowhere").is_empty());
    }

    #[test]
    fn different_filesystem_on_top_is_a_shadow() {
        let table = parse_mountinfo(
            "20 1 254:0 / /mnt/ocfs2 rw - ocfs2 /dev/vda rw\n\
             21 20 254:0 / /mnt/ocfs2 rw - ocfs2 /dev/vda rw\n\
             22 21 0:44 / /mnt/ocfs2 rw - tmpfs tmpfs rw\n",
        );
        let index = TableIndex::new(&table.entries);
        let layers = index.layers("/mnt/ocfs2");
        assert_eq!(
            shape(&layers),
            StackShape {
                layers: 3,
                duplicates: 1,
                shadowed: true
            }
        );
    }

    #[test]
    fn same_device_other_root_is_a_shadow() {
        let table = parse_mountinfo(
            "20 1 254:0 / /m rw - ocfs2 /dev/vda rw\n\
             21 20 254:0 /sub /m rw - ocfs2 /dev/vda rw\n",
        );
        let index = TableIndex::new(&table.entries);
        assert!(shape(&index.layers("/m")).shadowed);
    }

    #[test]
    fn hidden_chain_and_cycles_do_not_confuse_the_count() {
        // 30 hides /a (and the /a/b mounted before it); 31 is the visible /a/b.
        let table = parse_mountinfo(
            "10 1 0:40 / /a/b rw - tmpfs t rw\n\
             11 10 0:40 / /a/b rw - tmpfs t rw\n\
             30 1 0:50 / /a rw - tmpfs v rw\n\
             31 30 0:40 / /a/b rw - tmpfs t rw\n\
             40 41 0:60 / /loop rw - tmpfs w rw\n\
             41 40 0:60 / /loop rw - tmpfs w rw\n",
        );
        let index = TableIndex::new(&table.entries);
        assert_eq!(
            index
                .layers("/a/b")
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            [31]
        );
        assert_eq!(index.layers("/loop").len(), 0);
    }

    #[test]
    fn a_read_only_self_bind_is_neither_duplicate_nor_shadow() {
        // mount --bind X X; mount -o remount,bind,ro X (shapes from a real table).
        let table = parse_mountinfo(
            "20 1 0:40 / /x rw,relatime shared:5 - tmpfs t rw\n\
             21 20 0:40 / /x ro,relatime shared:5 - tmpfs t rw\n",
        );
        let index = TableIndex::new(&table.entries);
        assert_eq!(
            shape(&index.layers("/x")),
            StackShape {
                layers: 2,
                duplicates: 0,
                shadowed: false
            }
        );
    }

    #[test]
    fn flags_and_propagation_type_make_a_layer_different() {
        let differs = |upper: &str| {
            let table = parse_mountinfo(&format!(
                "20 1 0:40 / /x rw,nosuid,relatime shared:5 - tmpfs t rw\n{upper}\n"
            ));
            let index = TableIndex::new(&table.entries);
            shape(&index.layers("/x")).duplicates == 0
        };
        // Peer group numbers and flag order do not matter; the kind does.
        assert!(!differs(
            "21 20 0:40 / /x relatime,rw,nosuid shared:9 - tmpfs t rw"
        ));
        for upper in [
            "21 20 0:40 / /x rw,nosuid,nodev,relatime shared:5 - tmpfs t rw",
            "21 20 0:40 / /x rw,nosuid,noexec,relatime shared:5 - tmpfs t rw",
            "21 20 0:40 / /x rw,nosuid,noatime shared:5 - tmpfs t rw",
            "21 20 0:40 / /x rw,relatime shared:5 - tmpfs t rw",
            "21 20 0:40 / /x rw,nosuid,relatime - tmpfs t rw",
            "21 20 0:40 / /x rw,nosuid,relatime master:5 - tmpfs t rw",
            "21 20 0:40 / /x rw,nosuid,relatime shared:5 unbindable - tmpfs t rw",
        ] {
            assert!(differs(upper), "{upper}");
        }
    }
}
