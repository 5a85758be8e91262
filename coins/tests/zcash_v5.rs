//! Zcash v5 transactions (NU5: ZIP 225 layout, ZIP 244 txid) against published data:
//! the ZIP 244 test vectors and real mainnet blocks from just after NU5 activation
//! (see `tests/data/zcash/README.md` for where each file comes from).
#![allow(clippy::print_stdout)]

use anode_coins::{hash_to_hex, hex_decode, hex_encode, lookup, merkle_root, Coin, Error};

fn data(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/zcash")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn zcash() -> std::sync::Arc<dyn Coin> {
    lookup("Zcash", "mainnet").expect("Zcash mainnet")
}

/// (raw tx, txid as the digest bytes) of every ZIP 244 vector.
fn zip244_vectors() -> Vec<(Vec<u8>, Vec<u8>)> {
    let v: serde_json::Value =
        serde_json::from_str(&data("zip_0244_txids.json")).expect("vector json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| {
            let tx = hex_decode(e["tx"].as_str().expect("tx")).expect("tx hex");
            let txid = hex_decode(e["txid"].as_str().expect("txid")).expect("txid hex");
            (tx, txid)
        })
        .collect()
}

#[test]
fn zip244_vector_txids() {
    let coin = zcash();
    let vectors = zip244_vectors();
    assert_eq!(vectors.len(), 10);
    for (i, (raw, txid)) in vectors.iter().enumerate() {
        let tx = coin
            .parse_tx(raw)
            .unwrap_or_else(|e| panic!("vector {i}: {e}"));
        // The vectors give the digest bytes as computed (internal order).
        assert_eq!(hex_encode(&tx.txid), hex_encode(txid), "vector {i} txid");
        assert_eq!(tx.range, 0..raw.len(), "vector {i} range");
        assert_eq!(tx.version, 0x8000_0005, "vector {i} version");
        assert_eq!(tx.witness_bytes, 0);
    }
}

#[test]
fn v5_data_covers_every_bundle() {
    // The txid test only means something if the vectors exercise each optional
    // bundle; this reads the counts straight from the ZIP 225 layout.
    // The real blocks add v5 transactions without any shielded part.
    let mut txs: Vec<Vec<u8>> = zip244_vectors().into_iter().map(|(raw, _)| raw).collect();
    for (height, file) in BLOCKS {
        let raw = hex_decode(data(file).trim()).expect("block hex");
        let block = zcash().parse_block(&raw, Some(height)).expect("block");
        txs.extend(
            block
                .txs
                .iter()
                .filter(|t| t.version == 0x8000_0005)
                .map(|t| raw[t.range.clone()].to_vec()),
        );
    }
    let mut seen = [false; 4]; // transparent-only, sapling spends, sapling outputs, orchard
    for raw in txs {
        zcash().parse_tx(&raw).expect("parse");
        let shielded_start = shielded_offset(&raw);
        let (spends, n) = varint(&raw[shielded_start..]);
        let mut at = shielded_start + n;
        at += spends as usize * 96;
        let (outs, n) = varint(&raw[at..]);
        at += n + outs as usize * 756;
        if spends + outs > 0 {
            at += 8;
        }
        if spends > 0 {
            at += 32;
        }
        at += spends as usize * (192 + 64) + outs as usize * 192;
        if spends + outs > 0 {
            at += 64;
        }
        let (actions, _) = varint(&raw[at..]);
        seen[0] |= spends + outs + actions == 0;
        seen[1] |= spends > 0;
        seen[2] |= outs > 0;
        seen[3] |= actions > 0;
    }
    assert_eq!(seen, [true; 4], "bundles exercised by the vectors");
}

fn varint(b: &[u8]) -> (u64, usize) {
    match b[0] {
        0xfd => (u16::from_le_bytes([b[1], b[2]]) as u64, 3),
        0xfe => (u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as u64, 5),
        0xff => (u64::from_le_bytes(b[1..9].try_into().unwrap()), 9),
        n => (n as u64, 1),
    }
}

/// Offset of the Sapling spend count: after header (20), inputs and outputs.
fn shielded_offset(raw: &[u8]) -> usize {
    let mut at = 20;
    let (n_in, n) = varint(&raw[at..]);
    at += n;
    for _ in 0..n_in {
        at += 36;
        let (len, n) = varint(&raw[at..]);
        at += n + len as usize + 4;
    }
    let (n_out, n) = varint(&raw[at..]);
    at += n;
    for _ in 0..n_out {
        at += 8;
        let (len, n) = varint(&raw[at..]);
        at += n + len as usize;
    }
    at
}

const BLOCKS: [(u32, &str); 4] = [
    (1_687_106, "mainnet_1687106.hex"),
    (1_687_107, "mainnet_1687107.hex"),
    (1_687_108, "mainnet_1687108.hex"),
    (1_687_118, "mainnet_1687118.hex"),
];

/// Real mainnet blocks 1,687,106 to 1,687,108 (NU5 activated at 1,687,104) and
/// 1,687,118: every txid, v4 and v5, reproduces the header's merkle root, and the
/// three consecutive blocks link by hash.
#[test]
fn nu5_mainnet_blocks() {
    let coin = zcash();
    let mut prev_hash = None;
    let mut v5_total = 0;
    for (height, file) in BLOCKS {
        let raw = hex_decode(data(file).trim()).expect("block hex");
        let block = coin
            .parse_block(&raw, Some(height))
            .unwrap_or_else(|e| panic!("{height}: {e}"));
        assert!(block.hash_available);
        assert_eq!(block.trailing_bytes, 0, "{height}");
        let ids: Vec<_> = block.txs.iter().map(|t| t.txid).collect();
        assert_eq!(
            hash_to_hex(&merkle_root(&ids)),
            hash_to_hex(&block.header[36..68].try_into().expect("32 bytes")),
            "{height}: merkle root of the parsed txids"
        );
        if let Some((h, hash)) = prev_hash {
            if h + 1 == height {
                assert_eq!(block.prev_hash, hash, "{height} links to {h}");
            }
        }
        prev_hash = Some((height, block.hash));
        let v5 = block
            .txs
            .iter()
            .filter(|t| t.version == 0x8000_0005)
            .count();
        v5_total += v5;
        for tx in &block.txs {
            let again = coin.parse_tx(&raw[tx.range.clone()]).expect("parse_tx");
            assert_eq!(again.txid, tx.txid);
        }
        println!(
            "Zcash mainnet {height}: {} txs ({v5} v5), hash {}",
            block.txs.len(),
            hash_to_hex(&block.hash)
        );
    }
    assert!(v5_total >= 4, "the NU5 blocks carry v5 transactions");
}

/// Every truncation of every vector is an error with an offset inside the input,
/// never a panic or an over-read.
#[test]
fn truncated_v5_transactions_are_errors() {
    let coin = zcash();
    for (raw, _) in zip244_vectors() {
        for len in 0..raw.len() {
            match coin.parse_tx(&raw[..len]) {
                Err(Error::Malformed { offset, .. }) => assert!(offset <= len),
                other => panic!("truncated to {len} of {}: {other:?}", raw.len()),
            }
        }
    }
}

#[test]
fn v5_header_checks() {
    let coin = zcash();
    let (raw, _) = zip244_vectors().swap_remove(2);
    let mut bad_group = raw.clone();
    bad_group[4] ^= 1;
    assert!(matches!(
        coin.parse_tx(&bad_group),
        Err(Error::Malformed { offset: 4, .. })
    ));
    let mut v6 = raw.clone();
    v6[0] = 6;
    assert!(matches!(coin.parse_tx(&v6), Err(Error::Unsupported(_))));
    // parse_tx refuses bytes after a complete v5 transaction.
    let mut trailing = raw;
    trailing.push(0);
    assert!(coin.parse_tx(&trailing).is_err());
}

/// Every byte of every vector set to 0x00 and to 0xff in turn (a count becoming huge,
/// a flag or length vanishing): the parser returns an error or a transaction inside
/// the input, never panics.
#[test]
fn corrupted_v5_transactions_never_panic() {
    let coin = zcash();
    let mut parsed = 0;
    for (raw, _) in zip244_vectors() {
        for i in 0..raw.len() {
            for b in [0x00, 0xff] {
                let mut bad = raw.clone();
                bad[i] = b;
                match coin.parse_tx(&bad) {
                    Ok(tx) => {
                        assert!(tx.range.end <= bad.len());
                        parsed += 1;
                    }
                    Err(Error::Malformed { offset, .. }) => assert!(offset <= bad.len()),
                    Err(Error::Unsupported(_)) => assert!(i < 4, "only the version word"),
                    Err(e) => panic!("byte {i} = {b:#x}: {e}"),
                }
            }
        }
    }
    // Most single-byte changes inside hashed data still parse (with another txid).
    assert!(parsed > 0);
}
