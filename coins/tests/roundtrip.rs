//! Every network with a block encoder: blocks it builds parse back identically.
#![allow(clippy::print_stdout)]

mod common;

use anode_coins::{
    builtin_networks, coin_from_params, hex_decode, merkle_root, BlockTemplate, OutPoint, TxOut,
};

fn p2pkh_script(tag: u8) -> Vec<u8> {
    let mut s = vec![0x76, 0xa9, 20];
    s.extend_from_slice(&[tag; 20]);
    s.extend_from_slice(&[0x88, 0xac]);
    s
}

#[test]
fn encoders_round_trip() {
    let mut encoded = Vec::new();
    let mut without = Vec::new();
    for params in builtin_networks().expect("built-in networks") {
        let coin = coin_from_params(params.clone());
        let Some(enc) = coin.encoder() else {
            let missing: Vec<_> = params
                .hash_algos()
                .into_iter()
                .filter(|a| !a.available())
                .map(|a| a.name())
                .collect();
            without.push((params.id(), missing.join("+")));
            continue;
        };
        let mut prev = params.genesis_hash;
        let mut spendable: Vec<OutPoint> = Vec::new();
        for height in 1..=3u32 {
            let cb = enc
                .coinbase(
                    height,
                    7,
                    &[
                        TxOut {
                            value: 50 * params.value_per_coin,
                            script: p2pkh_script(height as u8),
                        },
                        TxOut {
                            value: 0,
                            script: vec![0x6a, 0x04, 1, 2, 3, 4],
                        },
                    ],
                )
                .unwrap_or_else(|e| panic!("{}: coinbase: {e}", params.id()));
            let mut txs = vec![cb.clone()];
            if let Some(op) = spendable.pop() {
                let spend = enc
                    .spend(
                        &[op],
                        &[
                            TxOut {
                                value: 10 * params.value_per_coin,
                                script: p2pkh_script(0xaa),
                            },
                            TxOut {
                                value: 39 * params.value_per_coin,
                                script: vec![
                                    0x00, 0x14, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb,
                                    0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb,
                                    0xbb, 0xbb,
                                ],
                            },
                        ],
                    )
                    .unwrap_or_else(|e| panic!("{}: spend: {e}", params.id()));
                txs.push(spend);
            }
            spendable.push(OutPoint {
                txid: cb.txid,
                vout: 0,
            });
            let template = BlockTemplate {
                version: 0x2000_0000,
                prev_hash: prev,
                time: 1_700_000_000 + height * 600,
                bits: 0x207f_ffff,
                height,
            };
            let block = enc
                .block(&template, &txs)
                .unwrap_or_else(|e| panic!("{}: block: {e}", params.id()));
            let parsed = coin
                .parse_block(&block.raw, Some(height))
                .unwrap_or_else(|e| panic!("{}: {e}", params.id()));
            assert_eq!(parsed.header, block.header, "{}: header", params.id());
            assert_eq!(parsed.hash, block.hash, "{}: hash", params.id());
            assert!(parsed.hash_available);
            assert_eq!(parsed.prev_hash, prev, "{}: prev", params.id());
            let ids: Vec<_> = parsed.txs.iter().map(|t| t.txid).collect();
            assert_eq!(ids, block.txids, "{}: txids", params.id());
            assert_eq!(parsed.trailing_bytes, 0);
            assert!(parsed.txs[0].is_coinbase);
            for (tx, enc_tx) in parsed.txs.iter().zip(&txs) {
                assert_eq!(&block.raw[tx.range.clone()], &enc_tx.raw[..]);
                let again = coin.parse_tx(&enc_tx.raw).expect("parse_tx");
                assert_eq!(again.txid, enc_tx.txid);
            }
            if txs.len() > 1 {
                assert_eq!(parsed.txs[1].inputs.len(), 1);
                assert_eq!(parsed.txs[1].outputs.len(), 2);
            }
            // The served header hashes to the block hash.
            assert_eq!(coin.header_hash(&parsed.header).expect("hash"), block.hash);
            prev = block.hash;
        }
        encoded.push(params.id());
    }
    println!(
        "encoders round-trip on {} networks: {}",
        encoded.len(),
        encoded.join(", ")
    );
    println!(
        "no encoder for {} networks (block hash not available): {}",
        without.len(),
        without
            .iter()
            .map(|(id, algo)| format!("{id} ({algo})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The only networks without an encoder are those using a block hash that cannot
    // be computed in this build: the simulator keys its chain by block hash, so a
    // block it cannot hash is of no use to it (and `EncodedBlock::hash` would be a
    // made-up value). Algorithms implemented in no build, listed by hand:
    let mut expected: Vec<(String, String)> = [
        ("Sibcoin/mainnet", "x11-gost"),
        ("Sibcoin/testnet", "x11-gost"),
        ("DeepOnion/mainnet", "x13"),
        ("BitcoinPlus/mainnet", "x13"),
        ("Navcoin/mainnet", "x13"), // headers up to version 6
        ("Denarius/mainnet", "tribus"),
        ("Denarius/testnet", "tribus"),
        ("Bitzeny/mainnet", "yespower"),
        ("Xuez/mainnet", "xevan"),
        ("Bitsend/mainnet", "xevan"),
        ("Ravencoin/mainnet", "kawpow+x16r+x16rv2"),
        ("Ravencoin/testnet", "kawpow+x16r+x16rv2"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    // Plus, in builds without some cargo feature, every network that needs it
    // (Bitsend also needs x11 for its old headers).
    for params in builtin_networks().expect("built-in networks") {
        let off: Vec<_> = params
            .hash_algos()
            .into_iter()
            .filter(|a| a.feature().is_some() && !a.available())
            .map(|a| a.name())
            .collect();
        if off.is_empty() {
            continue;
        }
        match expected.iter_mut().find(|(id, _)| *id == params.id()) {
            Some((_, algos)) => {
                let mut all: Vec<&str> = algos.split('+').chain(off).collect();
                all.sort();
                *algos = all.join("+");
            }
            None => expected.push((params.id(), off.join("+"))),
        }
    }
    let mut got: Vec<(String, String)> = without
        .iter()
        .map(|(id, algos)| {
            let mut a: Vec<&str> = algos.split('+').collect();
            a.sort();
            (id.clone(), a.join("+"))
        })
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "networks without an encoder");
    for must in [
        "Bitcoin/mainnet",
        "Bitcoin/regtest",
        "BitcoinCash/regtest",
        "BitcoinSV/mainnet",
        "Litecoin/regtest",
        "Dogecoin/mainnet",
        "Namecoin/regtest",
        "Peercoin/mainnet",
        "Zcash/mainnet",
        "BitcoinGold/regtest",
        "Lbry/mainnet",
        "HOdlcoin/mainnet",
        "Adcoin/mainnet",
        "europecoin/mainnet",
        "FairCoin/mainnet",
        #[cfg(feature = "groestl")]
        "Groestlcoin/regtest",
        #[cfg(feature = "scrypt")]
        "Blackcoin/mainnet",
        "Reddcoin/mainnet",
        #[cfg(feature = "decred")]
        "Decred/mainnet",
        #[cfg(feature = "decred")]
        "Decred/testnet",
        "Xaya/regtest",
        "Primecoin/mainnet",
        "Zcoin/mainnet",
        "BitcoinAtom/mainnet",
        "Emercoin/mainnet",
        #[cfg(feature = "keccak")]
        "SmartCash/mainnet",
        #[cfg(feature = "x11")]
        "Dash/regtest",
        #[cfg(feature = "x11")]
        "Axe/testnet",
    ] {
        assert!(encoded.iter().any(|e| e == must), "{must} has no encoder");
    }
}

#[test]
#[allow(clippy::single_element_loop)] // with --no-default-features
fn scheduled_header_sizes_round_trip() {
    for (coin, net, height, size) in [
        #[cfg(feature = "quark")]
        ("PIVX", "testnet", 300u32, 112usize),
        #[cfg(feature = "quark")]
        ("PIVX", "mainnet", 2_000_000, 112),
        #[cfg(feature = "quark")]
        ("PIVX", "mainnet", 2_500_000, 80),
        #[cfg(feature = "quark")]
        ("ODIN", "mainnet", 150_000, 112),
        #[cfg(feature = "quark")]
        ("ColossusXT", "mainnet", 600_000, 112),
        ("BitcoinAtom", "mainnet", 600_000, 84),
    ] {
        let c = anode_coins::lookup(coin, net).expect("lookup");
        let enc = c.encoder().expect("encoder");
        let cb = enc
            .coinbase(
                height,
                0,
                &[TxOut {
                    value: 1,
                    script: p2pkh_script(1),
                }],
            )
            .expect("coinbase");
        let t = BlockTemplate {
            version: 0x2000_0000,
            prev_hash: [7; 32],
            time: 1_700_000_000,
            bits: 0x207f_ffff,
            height,
        };
        let b = enc.block(&t, std::slice::from_ref(&cb)).expect("block");
        assert_eq!(b.header.len(), size, "{coin}/{net} at {height}");
        assert_eq!(c.header_len_at(height), Some(size));
        let p = c.parse_block(&b.raw, Some(height)).expect("parse");
        assert_eq!(p.hash, b.hash);
        assert_eq!(p.header, b.header);
        assert_eq!(p.txs[0].txid, cb.txid);
    }
}

/// Headers longer than 80 bytes: the encoder writes time, bits and nonce where the
/// network's real blocks have them (Lbry after its claim-trie root, the others right
/// after the merkle root with extra bytes at the end), checked against real blocks.
#[test]
fn long_fixed_headers_match_real_layouts() {
    let dir = common::vectors_dir().join("blocks");
    for (file, coin, net) in [
        ("lbry_mainnet_1000000.json", "Lbry", "mainnet"),
        ("hodlcoin_mainnet_38200.json", "HOdlcoin", "mainnet"),
        ("adcoin_mainnet_1000.json", "Adcoin", "mainnet"),
        ("europecoin_mainnet_1000.json", "europecoin", "mainnet"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("vector");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let raw = hex_decode(v["block"].as_str().expect("block")).expect("hex");
        let height = v["height"].as_u64().expect("height") as u32;
        let c = anode_coins::lookup(coin, net).expect("lookup");
        let spec = &c.params().header;
        let real = c.block_header(&raw, Some(height)).expect("header");
        let field = |h: &[u8], at: usize| u32::from_le_bytes(h[at..at + 4].try_into().unwrap());
        let at = spec.time_offset;
        assert_eq!(
            spec.time(&real),
            v["time"].as_u64().map(|t| t as u32),
            "{file}"
        );
        let bits = u32::from_str_radix(v["bits"].as_str().expect("bits"), 16).expect("bits hex");
        assert_eq!(field(&real, at + 4), bits, "{file}: bits");
        assert_eq!(
            field(&real, at + 8) as u64,
            v["nonce"].as_u64().expect("nonce"),
            "{file}: nonce"
        );

        let enc = c.encoder().expect("encoder");
        let cb = enc
            .coinbase(
                height,
                0,
                &[TxOut {
                    value: 1,
                    script: p2pkh_script(1),
                }],
            )
            .expect("coinbase");
        let t = BlockTemplate {
            version: 0x2000_0000,
            prev_hash: [7; 32],
            time: 1_700_000_123,
            bits: 0x207f_ffff,
            height,
        };
        let b = enc.block(&t, std::slice::from_ref(&cb)).expect("block");
        assert_eq!(b.header.len(), real.len(), "{file}: header length");
        assert_eq!(spec.time(&b.header), Some(t.time), "{file}: time");
        assert_eq!(field(&b.header, at + 4), t.bits, "{file}: bits");
        assert_eq!(&b.header[36..68], &merkle_root(&[cb.txid])[..]);
        let p = c.parse_block(&b.raw, Some(height)).expect("parse");
        assert_eq!((p.hash, p.header), (b.hash, b.header));
    }
}

/// FairCoin: no proof of work, so nothing is ground; the 108-byte header carries the
/// time at 100 and a creator id instead of bits and nonce, and hashes with SHA-256d.
#[test]
fn faircoin_blocks_need_no_proof_of_work() {
    let c = anode_coins::lookup("FairCoin", "mainnet").expect("lookup");
    let enc = c.encoder().expect("encoder");
    let cb = enc
        .coinbase(
            5,
            0,
            &[TxOut {
                value: 1,
                script: p2pkh_script(1),
            }],
        )
        .expect("coinbase");
    // A target no nonce could meet in 50 million tries: irrelevant without PoW.
    let t = BlockTemplate {
        version: 0x0000_0001,
        prev_hash: [9; 32],
        time: 1_600_000_000,
        bits: 0x0300_0001,
        height: 5,
    };
    let b = enc.block(&t, std::slice::from_ref(&cb)).expect("block");
    assert_eq!(b.header.len(), 108);
    assert_eq!(c.params().header.time(&b.header), Some(t.time));
    assert_eq!(&b.header[104..108], &[0; 4], "creator id");
    assert_eq!(b.hash, anode_coins::hash::sha256d(&b.header));
    let p = c.parse_block(&b.raw, Some(5)).expect("parse");
    assert_eq!(p.hash, b.hash);
    assert_eq!(p.txs.len(), 1);
    // Height 0 has no transactions by the network's genesis rule.
    let g = c
        .parse_block(&b.raw, Some(0))
        .expect("genesis-height parse");
    assert!(g.txs.is_empty());
}
