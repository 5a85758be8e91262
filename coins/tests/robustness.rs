//! Untrusted bytes: truncated and corrupted blocks are errors (with height and
//! offset), never panics.

mod common;

use anode_coins::{lookup, Error};
use common::*;

#[test]
fn truncated_and_corrupted_blocks_never_panic() {
    let mut seed: u64 = 0x1234_5678_9abc_def0;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for f in vector_files("blocks") {
        let stem = stem(&f);
        let (coin, net) = coin_net(&stem);
        let coin = lookup(&coin, &net).expect("lookup");
        let v = load_json(&f);
        let raw = unhex(v["block"].as_str().expect("block"));
        let height = v["height"].as_u64().map(|h| h as u32);
        // Truncations: every byte of the first 300, then a sample.
        let step = (raw.len() / 200).max(1);
        for cut in (0..raw.len().min(300)).chain((300..raw.len()).step_by(step)) {
            match coin.parse_block(&raw[..cut], height) {
                Err(Error::Malformed {
                    height: h, offset, ..
                }) => {
                    assert_eq!(h, height, "{stem}: height missing from error");
                    assert!(offset <= cut, "{stem}: offset {offset} past end {cut}");
                }
                // Unsupported formats; Decred's txid without the `decred` feature.
                Err(Error::Unsupported(_)) | Err(Error::HashUnavailable(_)) => {}
                Err(e) => panic!("{stem}: unexpected error kind {e}"),
                // A cut inside trailing data (signature, MWEB block) still parses.
                Ok(_) => {}
            }
        }
        // Random corruptions.
        for _ in 0..40 {
            let mut bad = raw.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % bad.len();
                bad[i] = next() as u8;
            }
            let _ = coin.parse_block(&bad, height);
            let _ = coin.parse_block(&bad, None);
        }
    }
}

#[test]
fn huge_counts_do_not_allocate() {
    let coin = lookup("Bitcoin", "mainnet").expect("lookup");
    // version, 0xff count of inputs claiming 2^64-1 entries.
    let mut tx = vec![1, 0, 0, 0, 0xff];
    tx.extend_from_slice(&[0xff; 8]);
    assert!(matches!(coin.parse_tx(&tx), Err(Error::Malformed { .. })));
    // A header followed by a huge transaction count.
    let mut block = vec![0u8; 80];
    block.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x7f]);
    let err = coin.parse_block(&block, Some(5)).expect_err("error");
    assert!(err.to_string().contains("height 5"), "{err}");
    assert!(err.to_string().contains("offset 80"), "{err}");
}
