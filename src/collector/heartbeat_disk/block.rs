//! One heartbeat slot: `struct o2hb_disk_heartbeat_block` and its checksum.
//!
//! Layout (little-endian) from fs/ocfs2/cluster/ocfs2_heartbeat.h, identical
//! in ocfs2-tools include/o2cb/ocfs2_heartbeat.h (docs/interfaces.md §5.8):
//! `hb_seq` le64 @0, `hb_node` u8 @8, `hb_pad1` u8[3] @9, `hb_cksum` le32 @12,
//! `hb_generation` le64 @16, `hb_dead_ms` le32 @24; the rest of the slot
//! (block_bytes, one device sector) is zero. The kernel checksums the whole
//! slot with `o2hb_compute_block_crc_le()` = `crc32_le(0, block, block_bytes)`
//! over the block with `hb_cksum` zeroed (fs/ocfs2/cluster/heartbeat.c).

use serde::Serialize;

/// Bytes of the fixed header; a slot is at least one 512-byte sector.
pub const HEADER_BYTES: usize = 28;

const SEQ_AT: usize = 0;
const NODE_AT: usize = 8;
const CKSUM_AT: usize = 12;
const GENERATION_AT: usize = 16;
const DEAD_MS_AT: usize = 24;

/// One slot as the shared disk shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiskHeartbeat {
    /// The writer's wall clock in seconds (`ktime_get_real_seconds()`); 0 only
    /// in a slot nobody ever wrote.
    pub seq: u64,
    /// The node number the writer put in its own block.
    pub node: u8,
    /// The checksum stored in the block.
    pub cksum: u32,
    /// Random per heartbeat start; 0 after a clean stop.
    pub generation: u64,
    /// The writer's dead time, dead_threshold × 2000 ms.
    pub dead_ms: u32,
    /// Whether `cksum` matches the block's content.
    pub crc_ok: bool,
}

impl DiskHeartbeat {
    /// A slot that was never written (all zero): no writer to speak of.
    pub fn is_empty(&self) -> bool {
        self.seq == 0 && self.generation == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum BlockError {
    #[error("heartbeat block is {len} bytes, the header alone needs {HEADER_BYTES}")]
    Truncated { len: usize },
}

/// Parses one slot (exactly block_bytes long) and verifies its checksum.
pub fn parse_block(block: &[u8]) -> Result<DiskHeartbeat, BlockError> {
    if block.len() < HEADER_BYTES {
        return Err(BlockError::Truncated { len: block.len() });
    }
    let cksum = le_u32(block, CKSUM_AT);
    Ok(DiskHeartbeat {
        seq: le_u64(block, SEQ_AT),
        node: block[NODE_AT],
        cksum,
        generation: le_u64(block, GENERATION_AT),
        dead_ms: le_u32(block, DEAD_MS_AT),
        crc_ok: compute_crc(block) == cksum,
    })
}

/// The kernel's `crc32_le(0, buf, len)`: the reflected CRC-32 polynomial
/// (0x04C11DB7, 0xEDB88320 reflected) with initial value 0 and no final XOR,
/// i.e. zlib's CRC-32 without its pre- and post-inversion. No catalogue entry
/// has these parameters, so they are spelled out; `check` is the CRC of
/// "123456789" and `residue` 0 because nothing is XORed out (both checked in
/// the tests below against a bitwise definition).
const O2HB_CRC32: crc::Algorithm<u32> = crc::Algorithm {
    width: 32,
    poly: 0x04c1_1db7,
    init: 0,
    refin: true,
    refout: true,
    xorout: 0,
    check: 0x2dfd_2d88,
    residue: 0,
};

/// Table-driven (the bitwise loop cost 10 ms per 255 slots in a debug build).
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&O2HB_CRC32);

/// The kernel's `o2hb_compute_block_crc_le()`: `O2HB_CRC32` over the whole
/// block with the `hb_cksum` bytes taken as zero.
pub fn compute_crc(block: &[u8]) -> u32 {
    let cksum_start = CKSUM_AT.min(block.len());
    let cksum_end = (CKSUM_AT + 4).min(block.len());
    let mut digest = CRC.digest();
    digest.update(&block[..cksum_start]);
    digest.update(&[0u8; 4][..cksum_end - cksum_start]);
    digest.update(&block[cksum_end..]);
    digest.finalize()
}

/// Builds a slot as the kernel writes it (`o2hb_prepare_block`): for the test
/// writers and for checking captures; the daemon itself never writes.
pub fn encode_block(
    block_bytes: usize,
    seq: u64,
    node: u8,
    generation: u64,
    dead_ms: u32,
) -> Vec<u8> {
    let mut block = vec![0u8; block_bytes.max(HEADER_BYTES)];
    block[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_le_bytes());
    block[NODE_AT] = node;
    block[GENERATION_AT..GENERATION_AT + 8].copy_from_slice(&generation.to_le_bytes());
    block[DEAD_MS_AT..DEAD_MS_AT + 4].copy_from_slice(&dead_ms.to_le_bytes());
    let crc = compute_crc(&block);
    block[CKSUM_AT..CKSUM_AT + 4].copy_from_slice(&crc.to_le_bytes());
    block
}

fn le_u64(block: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&block[at..at + 8]);
    u64::from_le_bytes(bytes)
}

fn le_u32(block: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&block[at..at + 4]);
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/interfaces.md §5.8 test vector.
    #[test]
    fn crc_test_vector() {
        let block = encode_block(512, 0x65f0_a1b2, 3, 0x1122_3344_5566_7788, 60000);
        assert_eq!(compute_crc(&block), 0x6cba_9e6c);
        assert_eq!(&block[12..16], &0x6cba_9e6cu32.to_le_bytes());
        assert_eq!(compute_crc(&[0u8; 512]), 0);
        // The stored checksum never feeds into the CRC.
        let mut tampered = block.clone();
        tampered[12..16].copy_from_slice(&[0xff; 4]);
        assert_eq!(compute_crc(&tampered), 0x6cba_9e6c);
    }

    /// `debugfs.ocfs2 -R hb /dev/vda` lines from the lab (512-byte sectors,
    /// `%4u: %4u %016x %016x %08x %6u`): our CRC must give the kernel's.
    /// The crc crate's table must agree with the plain bitwise definition
    /// of the kernel's loop (lib/crc32.c, `crc32_le` with poly 0xEDB88320).
    #[test]
    fn crate_crc_equals_bitwise_crc() {
        const CRC32_POLY_REFLECTED: u32 = 0xEDB8_8320;
        fn bitwise(block: &[u8]) -> u32 {
            let mut crc: u32 = 0;
            for (at, &byte) in block.iter().enumerate() {
                crc ^= u32::from(if (12..16).contains(&at) { 0 } else { byte });
                for _ in 0..8 {
                    crc = (crc >> 1) ^ (CRC32_POLY_REFLECTED & (crc & 1).wrapping_neg());
                }
            }
            crc
        }
        assert_eq!(CRC.checksum(b"123456789"), O2HB_CRC32.check);
        let crc = CRC.checksum(b"123456789");
        let mut codeword = b"123456789".to_vec();
        codeword.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(CRC.checksum(&codeword), O2HB_CRC32.residue);
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in [0, 1, 12, 13, 15, 16, 28, 512, 4096] {
            assert_eq!(
                compute_crc(&pattern[..len]),
                bitwise(&pattern[..len]),
                "{len}"
            );
        }
    }

    #[test]
    fn crc_matches_lab_captures() {
        let captures = [
            // n1-02-2node-mounted-debugfs.ocfs2.txt
            "   1:    1 000000006b017fb3 1e87d3afa515340e 40d6eeba  14000",
            "   2:    2 000000006b017fb3 2804b6c0b00728fe d04d0800  14000",
            // n2-02-2node-mounted-debugfs.ocfs2.txt
            "   1:    1 000000006b017fb7 1e87d3afa515340e 011d821a  14000",
            "   2:    2 000000006b017fb7 2804b6c0b00728fe 918664a0  14000",
        ];
        for line in captures {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let node: u8 = fields[1].parse().unwrap();
            let seq = u64::from_str_radix(fields[2], 16).unwrap();
            let generation = u64::from_str_radix(fields[3], 16).unwrap();
            let cksum = u32::from_str_radix(fields[4], 16).unwrap();
            let dead_ms: u32 = fields[5].parse().unwrap();
            let block = encode_block(512, seq, node, generation, dead_ms);
            let parsed = parse_block(&block).unwrap();
            assert_eq!(parsed.cksum, cksum, "{line}");
            assert!(parsed.crc_ok);
        }
    }

    #[test]
    fn parse_table() {
        let good = encode_block(512, 0x6b01_7fb3, 1, 0x1e87_d3af_a515_340e, 14000);
        let mut bad_crc = good.clone();
        bad_crc[12] ^= 0x01;
        let mut bad_body = good.clone();
        bad_body[300] = 0x5a;
        let four_k = encode_block(4096, 0x6b01_7fb7, 2, 0x2804_b6c0_b007_28fe, 14000);
        let clean_stop = encode_block(512, 0x6b01_7fc0, 2, 0, 14000);
        let cases: Vec<(&str, Vec<u8>, Result<DiskHeartbeat, BlockError>)> = vec![
            (
                "good",
                good.clone(),
                Ok(DiskHeartbeat {
                    seq: 0x6b01_7fb3,
                    node: 1,
                    cksum: 0x40d6_eeba,
                    generation: 0x1e87_d3af_a515_340e,
                    dead_ms: 14000,
                    crc_ok: true,
                }),
            ),
            (
                "bad stored crc",
                bad_crc,
                Ok(DiskHeartbeat {
                    cksum: 0x40d6_eebb,
                    crc_ok: false,
                    ..parse_block(&good).unwrap()
                }),
            ),
            (
                "garbage after the header",
                bad_body,
                Ok(DiskHeartbeat {
                    crc_ok: false,
                    ..parse_block(&good).unwrap()
                }),
            ),
            (
                "4 KiB sector",
                four_k.clone(),
                Ok(DiskHeartbeat {
                    seq: 0x6b01_7fb7,
                    node: 2,
                    cksum: compute_crc(&four_k),
                    generation: 0x2804_b6c0_b007_28fe,
                    dead_ms: 14000,
                    crc_ok: true,
                }),
            ),
            (
                "clean stop",
                clean_stop.clone(),
                Ok(DiskHeartbeat {
                    seq: 0x6b01_7fc0,
                    node: 2,
                    cksum: compute_crc(&clean_stop),
                    generation: 0,
                    dead_ms: 14000,
                    crc_ok: true,
                }),
            ),
            (
                "all zero",
                vec![0; 512],
                Ok(DiskHeartbeat {
                    seq: 0,
                    node: 0,
                    cksum: 0,
                    generation: 0,
                    dead_ms: 0,
                    crc_ok: true,
                }),
            ),
            (
                "truncated",
                good[..27].to_vec(),
                Err(BlockError::Truncated { len: 27 }),
            ),
            ("empty", Vec::new(), Err(BlockError::Truncated { len: 0 })),
        ];
        for (name, block, want) in cases {
            assert_eq!(parse_block(&block), want, "{name}");
        }
        assert!(parse_block(&[0; 512]).unwrap().is_empty());
        assert!(!parse_block(&clean_stop).unwrap().is_empty());
    }
}
