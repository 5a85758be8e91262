//! Every network with a block encoder: blocks it builds parse back identically.
#![allow(clippy::print_stdout)]

use anode_coins::{builtin_networks, coin_from_params, BlockTemplate, OutPoint, TxOut};

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
            without.push(params.id());
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
        "no encoder for {} networks: {}",
        without.len(),
        without.join(", ")
    );
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
