//! `Coin::check_block`: what a server verifies of every block a node serves before indexing
//! it. Real blocks pass (every vector, in vectors.rs); here, blocks altered the ways a faulty
//! node or a tampering proxy would alter them are refused with the fault named.

mod common;

use anode_coins::{lookup, BlockFault, BlockTemplate, Coin, OutPoint, TxOut};
use common::*;

fn vector_block(stem: &str) -> (Vec<u8>, Option<u32>) {
    let v = load_json(&vectors_dir().join("blocks").join(format!("{stem}.json")));
    let raw = unhex(v["block"].as_str().expect("block"));
    (raw, v["height"].as_u64().map(|h| h as u32))
}

fn check(coin: &dyn Coin, raw: &[u8], height: Option<u32>) -> Result<(), BlockFault> {
    let block = coin
        .parse_block(raw, height)
        .expect("the block still parses");
    coin.check_block(&block, height)
}

#[test]
fn a_changed_transaction_no_longer_matches_the_headers_merkle_root() {
    let coin = lookup("Bitcoin", "mainnet").expect("bitcoin");
    let (mut raw, height) = vector_block("bitcoin_mainnet_951658");
    let txs = coin.parse_block(&raw, height).expect("parse").txs.len();
    assert_eq!(check(coin.as_ref(), &raw, height), Ok(()));
    // The last byte of the block is the last transaction's lock time: the block still
    // parses, its header (and so its hash) is unchanged, one txid differs.
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    match check(coin.as_ref(), &raw, height) {
        Err(BlockFault::MerkleMismatch {
            in_header,
            computed,
            txs: counted,
        }) => {
            assert_ne!(in_header, computed);
            assert_eq!(counted, txs);
        }
        other => panic!("expected a merkle mismatch, got {other:?}"),
    }
}

#[test]
fn bytes_after_the_last_transaction_are_refused_only_where_blocks_end_there() {
    let (mut raw, height) = vector_block("bitcoin_mainnet_951658");
    raw.extend_from_slice(&[0xde, 0xad, 0xbe]);
    for net in ["mainnet", "testnet", "regtest", "signet", "testnet4"] {
        let coin = lookup("Bitcoin", net).expect("bitcoin");
        assert!(!coin.params().trailing_data, "Bitcoin {net}");
    }
    let coin = lookup("Bitcoin", "mainnet").expect("bitcoin");
    assert_eq!(
        check(coin.as_ref(), &raw, height),
        Err(BlockFault::TrailingBytes(3))
    );
    // Proof-of-stake coins sign their blocks after the transactions, Litecoin appends its MWEB
    // block: every real block of such a network with trailing bytes is accepted.
    let mut with_trailer = 0;
    for file in vector_files("blocks") {
        let stem = stem(&file);
        let (coin, net) = coin_net(&stem);
        let Ok(coin) = lookup(&coin, &net) else {
            continue;
        };
        let v = load_json(&file);
        let raw = unhex(v["block"].as_str().expect("block"));
        let height = v["height"].as_u64().map(|h| h as u32);
        let Ok(block) = coin.parse_block(&raw, height) else {
            continue;
        };
        if block.trailing_bytes > 0 {
            assert!(coin.params().trailing_data, "{stem} has a trailer");
            assert_eq!(coin.check_block(&block, height), Ok(()), "{stem}");
            with_trailer += 1;
        }
    }
    assert!(
        with_trailer > 0,
        "no vector has bytes after its transactions"
    );
}

#[test]
fn a_repeated_last_transaction_is_a_mutated_block_even_with_the_right_root() {
    let coin = lookup("Bitcoin", "regtest").expect("regtest");
    let encoder = coin.encoder().expect("an encoder");
    let pay = |tag: u8| TxOut {
        value: 1_000,
        script: vec![0x51, tag],
    };
    let coinbase = encoder.coinbase(1, 0, &[pay(1)]).expect("coinbase");
    let spend = |vout: u32| {
        encoder
            .spend(
                &[OutPoint {
                    txid: coinbase.txid,
                    vout,
                }],
                &[pay(2)],
            )
            .expect("spend")
    };
    let txs = vec![coinbase.clone(), spend(0), spend(1)];
    let block = encoder
        .block(
            &BlockTemplate {
                version: 0x2000_0000,
                prev_hash: coin.params().genesis_hash,
                time: 1_700_000_000,
                bits: 0x207f_ffff,
                height: 1,
            },
            &txs,
        )
        .expect("block");
    assert_eq!(check(coin.as_ref(), &block.raw, Some(1)), Ok(()));
    // Three txids hash as [a, b, c, c]: the same root with the third transaction twice.
    let mut mutated = block.raw.clone();
    assert_eq!(mutated[80], 3, "a one-byte transaction count");
    mutated[80] = 4;
    mutated.extend_from_slice(&txs[2].raw);
    assert_eq!(
        check(coin.as_ref(), &mutated, Some(1)),
        Err(BlockFault::MutatedTransactions)
    );
}
