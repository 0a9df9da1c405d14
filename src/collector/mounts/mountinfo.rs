//! Parser for `/proc/<pid>/mountinfo`.
//!
//! Format (fs/proc_namespace.c `show_mountinfo`, Documentation/filesystems/proc.rst):
//! `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
//! = mount ID, parent ID, st_dev major:minor, root, mount point, per-mount
//! options, zero or more optional fields, `-`, fs type, source, super-block
//! options. Root, mount point and source escape space, TAB, newline and
//! backslash as `\040 \011 \012 \134` (fs/seq_file.c `mangle_path`).
//! Own parser rather than `procfs`'s: a garbage line must be skipped and
//! counted, not fail the whole table, and a 20 000-line table must stay cheap.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use serde::Serialize;

/// One line of mountinfo: one mount (one layer when mounts stack).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountEntry {
    pub id: u32,
    pub parent: u32,
    pub major: u32,
    pub minor: u32,
    pub root: String,
    pub mount_point: String,
    pub mount_options: String,
    /// `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

impl MountEntry {
    /// Peer group of a shared mount: an umount here propagates to its peers.
    pub fn shared_group(&self) -> Option<u32> {
        self.optional
            .iter()
            .find_map(|tag| tag.strip_prefix("shared:")?.parse().ok())
    }

    /// Read-only per mount (`ro` bind) or per superblock (error remount).
    pub fn is_readonly(&self) -> bool {
        first_option(&self.mount_options) == "ro" || first_option(&self.super_options) == "ro"
    }

    /// The filesystem went read-only under a read-write mount: OCFS2's
    /// `errors=remount-ro` sets SB_RDONLY on the superblock only, so field 6
    /// stays `rw` while field 11 says `ro` (fs/ocfs2/super.c `ocfs2_handle_error`).
    pub fn is_error_readonly(&self) -> bool {
        first_option(&self.mount_options) == "rw" && first_option(&self.super_options) == "ro"
    }
}

fn first_option(options: &str) -> &str {
    options.split(',').next().unwrap_or("")
}

/// The parsed table and how many lines could not be understood.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
    pub invalid_lines: usize,
}

pub fn parse_mountinfo(text: &str) -> MountTable {
    let mut table = MountTable::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(entry) => table.entries.push(entry),
            None => table.invalid_lines += 1,
        }
    }
    table
}

/// A table parsed for the mount points that matter, and the size of the whole.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartialTable {
    /// Every layer on the kept mount points, in table order.
    pub table: MountTable,
    /// Valid lines in the whole table (kept or not).
    pub total_entries: usize,
}

/// Parses only the lines on mount points that carry a mount whose type
/// `watched` accepts, or that `also_keep` names. Every layer on such a path
/// is kept (the stack analysis walks them all) and nothing else is: on a
/// container host with 20 000 mounts of other types the kept table is empty,
/// and the cost is one scan of the text without allocating per line (a second
/// one picks the kept lines when there are any).
pub fn parse_mountinfo_partial(
    text: &str,
    watched: impl Fn(&str) -> bool,
    also_keep: &BTreeSet<String>,
) -> PartialTable {
    let mut result = PartialTable::default();
    let mut points: HashSet<Cow<'_, str>> = HashSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match split_line(line) {
            Some(raw) => {
                result.total_entries += 1;
                if watched(raw.fstype) {
                    points.insert(unescape_cow(raw.mount_point));
                }
            }
            None => result.table.invalid_lines += 1,
        }
    }
    if points.is_empty() && also_keep.is_empty() {
        // The common case on a host without the watched type: one scan.
        return result;
    }
    for raw in text.lines().filter_map(split_line) {
        let mount_point = unescape_cow(raw.mount_point);
        if points.contains(&mount_point) || also_keep.contains(mount_point.as_ref()) {
            result.table.entries.push(raw.into_entry());
        }
    }
    result
}

/// One line split into its fields, still escaped: what `parse_line` and the
/// partial parser's scan share, so both accept exactly the same lines.
struct RawLine<'a> {
    id: u32,
    parent: u32,
    major: u32,
    minor: u32,
    root: &'a str,
    mount_point: &'a str,
    mount_options: &'a str,
    optional: &'a str,
    fstype: &'a str,
    source: &'a str,
    super_options: &'a str,
}

/// The fields are separated by single spaces (the kernel escapes spaces in
/// paths as `\040`); optional fields run up to a lone `-`.
fn split_line(line: &str) -> Option<RawLine<'_>> {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let parent = fields.next()?.parse().ok()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let (major, minor) = (major.parse().ok()?, minor.parse().ok()?);
    let root = fields.next()?;
    let mount_point = fields.next()?;
    let mount_options = fields.next()?;
    // The optional fields stay one slice of the line: no allocation here.
    let offset = |field: &str| field.as_ptr() as usize - line.as_ptr() as usize;
    let mut optional: Option<(usize, usize)> = None;
    loop {
        match fields.next()? {
            "-" => break,
            "" => continue,
            tag => {
                let (start, end) = (offset(tag), offset(tag) + tag.len());
                optional = Some(optional.map_or((start, end), |(first, _)| (first, end)));
            }
        }
    }
    let optional = optional.map_or("", |(start, end)| &line[start..end]);
    let fstype = fields.next().filter(|s| !s.is_empty())?;
    let source = fields.next().unwrap_or("");
    let super_options = fields.next().unwrap_or("");
    if !mount_point.starts_with('/') {
        return None;
    }
    Some(RawLine {
        id,
        parent,
        major,
        minor,
        root,
        mount_point,
        mount_options,
        optional,
        fstype,
        source,
        super_options,
    })
}

impl RawLine<'_> {
    fn into_entry(self) -> MountEntry {
        MountEntry {
            id: self.id,
            parent: self.parent,
            major: self.major,
            minor: self.minor,
            root: unescape(self.root),
            mount_point: unescape(self.mount_point),
            mount_options: self.mount_options.to_string(),
            optional: self
                .optional
                .split(' ')
                .filter(|tag| !tag.is_empty())
                .map(str::to_string)
                .collect(),
            fstype: self.fstype.to_string(),
            source: unescape(self.source),
            super_options: self.super_options.to_string(),
        }
    }
}

fn parse_line(line: &str) -> Option<MountEntry> {
    split_line(line).map(RawLine::into_entry)
}

/// Undoes the kernel's `\ooo` octal escapes; anything else is kept verbatim.
pub fn unescape(field: &str) -> String {
    unescape_cow(field).into_owned()
}

/// `unescape` without a copy when there is nothing to undo (nearly always).
pub fn unescape_cow(field: &str) -> Cow<'_, str> {
    if !field.contains('\\') {
        return Cow::Borrowed(field);
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = &bytes[i + 1..(i + 4).min(bytes.len())];
            if digits.len() == 3 && digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCFS2_LINE: &str = "32 1 254:0 / /mnt/ocfs2 rw,relatime - ocfs2 /dev/vda rw,_netdev,heartbeat=local,nointr,data=ordered,errors=remount-ro,atime_quantum=60,cluster_stack=o2cb,coherency=full,user_xattr,acl";

    #[test]
    fn real_ocfs2_line_from_the_lab() {
        let table = parse_mountinfo(OCFS2_LINE);
        assert_eq!(table.invalid_lines, 0);
        let entry = &table.entries[0];
        assert_eq!(
            (entry.id, entry.parent, entry.major, entry.minor),
            (32, 1, 254, 0)
        );
        assert_eq!(entry.mount_point, "/mnt/ocfs2");
        assert_eq!(entry.fstype, "ocfs2");
        assert_eq!(entry.source, "/dev/vda");
        assert!(!entry.is_readonly());
    }

    #[test]
    fn table_of_lines() {
        struct Case {
            line: &'static str,
            mount_point: Option<&'static str>,
            optional: &'static [&'static str],
            source: &'static str,
        }
        let cases = [
            Case {
                line: r"36 35 98:0 /mnt1 /mnt\040two\011tab rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
                mount_point: Some("/mnt two\ttab"),
                optional: &["master:1"],
                source: "/dev/root",
            },
            Case {
                line: r"40 1 0:50 / /a\134b\012c rw shared:7 propagate_from:2 unbindable - tmpfs tmp\040fs rw",
                mount_point: Some("/a\\b\nc"),
                optional: &["shared:7", "propagate_from:2", "unbindable"],
                source: "tmp fs",
            },
            // No optional fields at all.
            Case {
                line: "41 1 0:51 / /x rw - tmpfs tmpfs rw",
                mount_point: Some("/x"),
                optional: &[],
                source: "tmpfs",
            },
            // Source and super options missing (very old kernels print none).
            Case {
                line: "42 1 0:52 / /y rw - tmpfs",
                mount_point: Some("/y"),
                optional: &[],
                source: "",
            },
            // Deleted mount point keeps the kernel's suffix, unescaped.
            Case {
                line: r"43 1 0:53 / /gone\040(deleted) rw - tmpfs tmpfs rw",
                mount_point: Some("/gone (deleted)"),
                optional: &[],
                source: "tmpfs",
            },
            // Not octal, or too short: kept verbatim.
            Case {
                line: r"44 1 0:54 / /q\9x\04 rw - tmpfs t rw",
                mount_point: Some(r"/q\9x\04"),
                optional: &[],
                source: "t",
            },
            // Garbage.
            Case {
                line: "44 1 0:54 / /x rw shared:1 tmpfs tmpfs rw",
                mount_point: None,
                optional: &[],
                source: "",
            },
            Case {
                line: "not a mount line",
                mount_point: None,
                optional: &[],
                source: "",
            },
            Case {
                line: "45 1 8 / /z rw - ext4 /dev/sda rw",
                mount_point: None,
                optional: &[],
                source: "",
            },
            Case {
                line: "46 1 8:1 / /z rw -",
                mount_point: None,
                optional: &[],
                source: "",
            },
            Case {
                line: "47 1 8:1 / relative rw - ext4 /dev/sda rw",
                mount_point: None,
                optional: &[],
                source: "",
            },
            Case {
                line: "48",
                mount_point: None,
                optional: &[],
                source: "",
            },
        ];
        for case in cases {
            let table = parse_mountinfo(case.line);
            match case.mount_point {
                Some(mount_point) => {
                    assert_eq!(table.invalid_lines, 0, "{}", case.line);
                    let entry = &table.entries[0];
                    assert_eq!(entry.mount_point, mount_point, "{}", case.line);
                    assert_eq!(entry.optional, case.optional, "{}", case.line);
                    assert_eq!(entry.source, case.source, "{}", case.line);
                }
                None => assert_eq!(table.invalid_lines, 1, "{}", case.line),
            }
        }
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let text = format!("{OCFS2_LINE}\n\u{0}\u{1}garbage\n\n{OCFS2_LINE}\n");
        let table = parse_mountinfo(&text);
        assert_eq!(table.entries.len(), 2);
        assert_eq!(table.invalid_lines, 1);
    }

    #[test]
    fn error_readonly_is_rw_mount_on_ro_superblock() {
        let line = OCFS2_LINE.replace("- ocfs2 /dev/vda rw,", "- ocfs2 /dev/vda ro,");
        let entry = &parse_mountinfo(&line).entries[0];
        assert!(entry.is_readonly() && entry.is_error_readonly());
        let line = OCFS2_LINE.replace("rw,relatime", "ro,relatime");
        let entry = &parse_mountinfo(&line).entries[0];
        assert!(entry.is_readonly() && !entry.is_error_readonly());
    }

    #[test]
    fn partial_parse_keeps_every_layer_of_the_paths_that_matter() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    20 1 0:40 / /srv/data rw - tmpfs t rw\n\
                    21 20 0:41 / /srv/data rw shared:3 - ext4 /dev/sdb rw\n\
                    22 1 0:42 / /srv/other rw - ext4 /dev/sdc rw\n\
                    garbage\n\
                    23 1 0:43 / /srv/with\\040space rw - tmpfs u rw\n\
                    24 1 0:44 / /srv/expected rw - ext4 /dev/sdd rw\n";
        let expected = BTreeSet::from(["/srv/expected".to_string()]);
        let partial = parse_mountinfo_partial(text, |t| t == "tmpfs", &expected);
        let full = parse_mountinfo(text);
        assert_eq!(partial.total_entries, full.entries.len());
        assert_eq!(partial.table.invalid_lines, full.invalid_lines);
        let kept: Vec<MountEntry> = full
            .entries
            .into_iter()
            .filter(|e| {
                ["/srv/data", "/srv/with space", "/srv/expected"].contains(&e.mount_point.as_str())
            })
            .collect();
        assert_eq!(partial.table.entries, kept);
        assert_eq!(
            kept.len(),
            4,
            "both layers of /srv/data, whatever their type"
        );
    }

    #[test]
    fn shared_group() {
        let entry = &parse_mountinfo("40 1 0:50 / /a rw master:3 shared:7 - tmpfs t rw").entries[0];
        assert_eq!(entry.shared_group(), Some(7));
    }
}
