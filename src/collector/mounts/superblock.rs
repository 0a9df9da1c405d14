//! OCFS2 volume identity read from the device itself, as blkid does.
//!
//! The superblock is an inode (`struct ocfs2_dinode`) at block 2
//! (`OCFS2_SUPER_BLOCK_BLKNO`) of the volume's block size, which is one of
//! 512, 1024, 2048 or 4096 and not recorded anywhere else, so every size is
//! tried in turn (ocfs2-tools `read_super_block`, util-linux
//! `libblkid/src/superblocks/ocfs.c`). A block starting with the signature
//! `OCFSV2` is the superblock; in it `id2.i_super` starts at byte 0xC0, and
//! `s_label[64]` (NUL-padded) and `s_uuid[16]` lie at 0x50 and 0x90 of that
//! (fs/ocfs2/ocfs2_fs.h), i.e. bytes 272 and 336 of the block. Checked
//! against `blkid -p` on volumes made by `mkfs.ocfs2`
//! (tests/fixtures/ocfs2-superblock).
//!
//! The read bypasses the page cache (O_DIRECT): after an iSCSI re-login or a
//! LUN swap the cache can still hold what the old device said. It can block
//! as long as the SAN does, so callers run it on a deadline probe
//! (`actions::identity`), never on a thread that must answer.

use std::path::Path;

use serde::Serialize;

use crate::collector::heartbeat_disk::{open_for_read, read_fully, AlignedBlocks};
use crate::collector::CollectError;

const SIGNATURE: &[u8] = b"OCFSV2";
const SUPER_BLOCK_BLKNO: usize = 2;
const BLOCK_SIZES: [usize; 4] = [512, 1024, 2048, 4096];
const LABEL_AT: usize = 0xC0 + 0x50;
const LABEL_LEN: usize = 64;
const UUID_AT: usize = 0xC0 + 0x90;
const UUID_LEN: usize = 16;
/// Bytes from the start of the device that hold the superblock at every
/// block size: block 2 of 4096-byte blocks ends at 12 KiB.
pub const PROBE_BYTES: usize = (SUPER_BLOCK_BLKNO + 1) * 4096;

/// Who an OCFS2 volume says it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeIdentity {
    /// 32 uppercase hex digits, the form o2cb names regions and domains with.
    pub uuid: String,
    pub label: String,
    pub block_size: u32,
}

/// The identity in the first `PROBE_BYTES` of a device, `None` when no
/// block size shows an OCFS2 superblock there (another filesystem, or none).
pub fn parse_superblock(head: &[u8]) -> Option<VolumeIdentity> {
    BLOCK_SIZES.iter().find_map(|&size| {
        let block = head.get(size * SUPER_BLOCK_BLKNO..size * (SUPER_BLOCK_BLKNO + 1))?;
        if !block.starts_with(SIGNATURE) {
            return None;
        }
        let uuid = block.get(UUID_AT..UUID_AT + UUID_LEN)?;
        let label = block.get(LABEL_AT..LABEL_AT + LABEL_LEN)?;
        let label_end = label.iter().position(|b| *b == 0).unwrap_or(LABEL_LEN);
        Some(VolumeIdentity {
            uuid: uuid.iter().map(|b| format!("{b:02X}")).collect(),
            label: String::from_utf8_lossy(&label[..label_end]).into_owned(),
            block_size: size as u32,
        })
    })
}

/// Reads the head of `device` with O_DIRECT and parses it. `Ok(None)`: the
/// device carries no OCFS2 volume. Blocks while the device does.
pub fn read_identity(device: &Path) -> Result<Option<VolumeIdentity>, CollectError> {
    let (file, _direct) = open_for_read(device)?;
    let mut buffer = AlignedBlocks::zeroed(PROBE_BYTES);
    let filled =
        read_fully(&file, buffer.as_mut_bytes(), 0).map_err(|e| CollectError::io(device, &e))?;
    Ok(parse_superblock(&buffer.as_bytes()[..filled]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ocfs2-superblock")
            .join(name);
        std::fs::read(path).unwrap()
    }

    #[test]
    fn real_superblocks_read_as_blkid_reads_them() {
        // blkid -p: LABEL="lab vol 4096" UUID="c5984e9e-3329-4cba-8af7-d6ca0c44fab0"
        assert_eq!(
            parse_superblock(&fixture("blocksize-4096.bin")),
            Some(VolumeIdentity {
                uuid: "C5984E9E33294CBA8AF7D6CA0C44FAB0".into(),
                label: "lab vol 4096".into(),
                block_size: 4096,
            })
        );
        // blkid -p: LABEL="lab vol 1024" UUID="c1e1eb59-a1bd-452f-8c87-7c2eb87e9fca"
        assert_eq!(
            parse_superblock(&fixture("blocksize-1024.bin")),
            Some(VolumeIdentity {
                uuid: "C1E1EB59A1BD452F8C877C2EB87E9FCA".into(),
                label: "lab vol 1024".into(),
                block_size: 1024,
            })
        );
    }

    #[test]
    fn no_signature_or_short_reads_are_not_volumes() {
        assert_eq!(parse_superblock(&[0u8; PROBE_BYTES]), None);
        let real = fixture("blocksize-4096.bin");
        // Cut inside the 4 KiB superblock: nothing is guessed from half a block.
        assert_eq!(parse_superblock(&real[..8192 + 300]), None);
        assert_eq!(parse_superblock(&[]), None);
    }

    #[test]
    fn reads_a_file_through_the_direct_path() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        let mut bytes = fixture("blocksize-1024.bin");
        bytes.resize(1 << 20, 0);
        std::fs::write(&image, &bytes).unwrap();
        let found = read_identity(&image).unwrap().unwrap();
        assert_eq!(found.uuid, "C1E1EB59A1BD452F8C877C2EB87E9FCA");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        assert_eq!(read_identity(&image).unwrap(), None);
        assert!(read_identity(&dir.path().join("absent")).is_err());
    }
}
