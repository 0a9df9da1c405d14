//! Stacked mounts: the layers on one mount point, top first.
//!
//! Each mount made on top of another at the same path has the lower mount's
//! ID as its parent (fs/namespace.c; docs/interfaces.md §7.2), so the layers of a
//! path are the parent-ID chain from the visible top down to the first mount
//! whose parent sits elsewhere. Propagated copies under another path (a bind
//! of the parent with shared propagation) form their own chain under that
//! path, so every path is counted on its own. A layer *duplicates* the one
//! below when both show the same filesystem (device and root); anything else
//! is a different filesystem *shadowing* what is below, which is never
//! cleaned automatically.

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

/// Same filesystem seen the same way: what makes a layer a pure duplicate.
pub fn same_filesystem(a: &MountEntry, b: &MountEntry) -> bool {
    (a.major, a.minor) == (b.major, b.minor) && a.root == b.root
}

/// How a stack of layers (top first) is made up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackShape {
    pub layers: usize,
    /// Layers identical to the layer directly below them.
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
        if same_filesystem(pair[0], pair[1]) {
            shape.duplicates += 1;
        } else {
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
}
