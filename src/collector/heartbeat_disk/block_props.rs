//! Property tests of the on-disk heartbeat block: any bytes parse without a
//! panic, what `encode_block` writes (as the kernel's `o2hb_prepare_block`
//! does) decodes to the same fields with a valid checksum, and a single
//! flipped bit anywhere in a block is caught by the checksum. Case counts as
//! in tests/proptest_parsers.rs (`PROPTEST_CASES` raises them).

use proptest::prelude::*;

use super::block::{encode_block, parse_block};

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

fn block_bytes() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![512usize, 1024, 2048, 4096])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_parse_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..4200)) {
        let _ = parse_block(&bytes);
    }

    #[test]
    fn encode_then_decode_round_trips(
        size in block_bytes(),
        seq in any::<u64>(),
        node in any::<u8>(),
        generation in any::<u64>(),
        dead_ms in any::<u32>(),
    ) {
        let block = encode_block(size, seq, node, generation, dead_ms);
        prop_assert_eq!(block.len(), size);
        let parsed = parse_block(&block).unwrap();
        prop_assert!(parsed.crc_ok);
        prop_assert_eq!(
            (parsed.seq, parsed.node, parsed.generation, parsed.dead_ms),
            (seq, node, generation, dead_ms)
        );
    }

    #[test]
    fn one_flipped_bit_fails_the_checksum(
        size in block_bytes(),
        seq in any::<u64>(),
        generation in any::<u64>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut block = encode_block(size, seq, 1, generation, 14_000);
        let bit = bit.index(size * 8);
        block[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(!parse_block(&block).unwrap().crc_ok);
    }
}
