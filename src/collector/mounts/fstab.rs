//! Parser for `/etc/fstab` (fstab(5)): the mounts this node is told to have.
//!
//! Fields are `spec file vfstype mntops freq passno`, separated by blanks;
//! `#` starts a comment; spaces inside `spec`/`file` are written `\040`
//! (getmntent(3)). Entries of watched types without `noauto` count as
//! expected mounts. A line that cannot be read is counted, never fatal.

use super::mountinfo::unescape;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub source: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
}

impl FstabEntry {
    pub fn is_noauto(&self) -> bool {
        self.options.split(',').any(|o| o == "noauto")
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fstab {
    pub entries: Vec<FstabEntry>,
    pub invalid_lines: usize,
}

pub fn parse_fstab(text: &str) -> Fstab {
    let mut fstab = Fstab::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 || !fields[1].starts_with('/') && fields[1] != "none" {
            fstab.invalid_lines += 1;
            continue;
        }
        fstab.entries.push(FstabEntry {
            source: unescape(fields[0]),
            mountpoint: unescape(fields[1]),
            fstype: fields[2].to_string(),
            options: fields.get(3).unwrap_or(&"defaults").to_string(),
        });
    }
    fstab
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_comments_and_garbage() {
        let fstab = parse_fstab(
            "# /etc/fstab\n\
             UUID=0B8F4E2C /srv/data ocfs2 _netdev,defaults 0 0\n\
             LABEL=web\t/srv/my\\040web\tocfs2\t_netdev,noauto\n\
             /dev/sdb /srv/raw ocfs2\n\
             garbage\n\
             proc proc proc defaults 0 0\n",
        );
        assert_eq!(fstab.invalid_lines, 2);
        assert_eq!(fstab.entries.len(), 3);
        assert_eq!(fstab.entries[1].mountpoint, "/srv/my web");
        assert!(fstab.entries[1].is_noauto());
        assert_eq!(fstab.entries[2].options, "defaults");
    }
}
