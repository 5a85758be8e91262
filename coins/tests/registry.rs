//! Registry: ElectrumX names, helpful errors, group-A data, run-time TOML networks.

mod common;

use anode_coins::{
    builtin_networks, hash_to_hex, load_networks_from_dir, lookup, Error, HashAlgo, HeaderLayout,
    Registry, TxFormat,
};
use common::*;

#[test]
fn electrumx_names_case_insensitive() {
    let c = lookup("BitcoinCash", "nolnet").expect("nolnet");
    assert_eq!(c.params().net, "nolnet");
    assert_eq!(c.params().electrum_ports.tcp, 52001);
    assert_eq!(
        hash_to_hex(&c.params().genesis_hash),
        "0000000057e31bd2066c939a63b7b8623bd0f10d8c001304bdfc1a7902ae6d35"
    );
    for (coin, net) in [
        ("bitcoin", "MAINNET"),
        ("BITCOIN", "testnet4"),
        ("bitcoinsv", "scalingtest"),
        ("namecoin", ""),
        ("Viacoin", "testnet-segwit"),
        ("Bitg", "mainnet"),
        ("UFO", "mainnet"),
        ("Batacoin", "mainnet"),
    ] {
        lookup(coin, net).unwrap_or_else(|e| panic!("{coin}/{net}: {e}"));
    }
}

#[test]
fn unknown_network_lists_close_names() {
    let err = lookup("Bitcoin Cash", "nolnet").err().expect("error");
    let msg = err.to_string();
    assert!(matches!(err, Error::UnknownNetwork { .. }));
    assert!(msg.contains("COIN=BitcoinCash NET=nolnet"), "{msg}");
    let msg = lookup("Litecoin", "signet")
        .err()
        .expect("error")
        .to_string();
    assert!(msg.contains("COIN=Litecoin NET=testnet"), "{msg}");
    let msg = lookup("dogecon", "mainnet")
        .err()
        .expect("error")
        .to_string();
    assert!(msg.contains("COIN=Dogecoin NET=mainnet"), "{msg}");
}

/// Group A of docs/coins.md (How much of a network is data): the 61 parameters-only networks.
const GROUP_A: &[(&str, &[&str])] = &[
    (
        "Bitcoin",
        &[
            "mainnet",
            "testnet",
            "testnet4",
            "signet",
            "regtest",
            "mutinynet",
        ],
    ),
    ("BitcoinCash", &["mainnet", "testnet", "regtest", "nolnet"]),
    (
        "BitcoinSV",
        &["mainnet", "testnet", "scalingtest", "regtest"],
    ),
    ("Litecoin", &["mainnet", "testnet", "regtest"]),
    ("Monacoin", &["mainnet", "testnet", "regtest"]),
    ("DigiByte", &["mainnet", "testnet"]),
    ("Vertcoin", &["mainnet", "testnet"]),
    ("Ferrite", &["mainnet", "testnet"]),
    ("NIX", &["mainnet", "testnet"]),
    ("Adcoin", &["mainnet"]),
    ("Aryacoin", &["mainnet"]),
    ("Auroracoin", &["mainnet"]),
    ("Bata", &["mainnet"]),
    ("Beyondcoin", &["mainnet"]),
    ("Bitcoinzero", &["mainnet"]),
    ("Bitcore", &["mainnet"]),
    ("Chips", &["mainnet"]),
    ("Defcoin", &["mainnet"]),
    ("Digitalcoin", &["mainnet"]),
    ("Donu", &["mainnet"]),
    ("Egulden", &["mainnet"]),
    ("Einsteinium", &["mainnet"]),
    ("ElectraProtocol", &["mainnet"]),
    ("Europecoin", &["mainnet"]),
    ("Feathercoin", &["mainnet"]),
    ("Flashcoin", &["mainnet"]),
    ("Fujicoin", &["mainnet"]),
    ("GameCredits", &["mainnet"]),
    ("Garlicoin", &["mainnet"]),
    ("GravityCoin", &["mainnet"]),
    ("HOdlcoin", &["mainnet"]),
    ("Iop", &["mainnet"]),
    ("Lbry", &["mainnet"]),
    ("Linx", &["mainnet"]),
    ("LitecoinCash", &["mainnet"]),
    ("Lynx", &["mainnet"]),
    ("Machinecoin", &["mainnet"]),
    ("Noir", &["mainnet"]),
    ("Smileycoin", &["mainnet"]),
    ("Sumcoin", &["mainnet"]),
    ("UniformFiscalObject", &["mainnet"]),
    ("Unitus", &["mainnet"]),
];

#[test]
fn group_a_networks_are_plain_data() {
    let mut n = 0;
    for (coin, nets) in GROUP_A {
        for net in *nets {
            let c = lookup(coin, net).unwrap_or_else(|e| panic!("{coin}/{net}: {e}"));
            let p = c.params();
            assert_eq!(p.header.layout, HeaderLayout::Fixed, "{coin}/{net}");
            assert_eq!(p.header.hash, HashAlgo::Sha256d, "{coin}/{net}");
            assert!(p.header.hash_rules.is_empty(), "{coin}/{net}");
            assert!(
                matches!(
                    p.tx_format,
                    TxFormat::Legacy | TxFormat::Segwit | TxFormat::LitecoinMweb
                ),
                "{coin}/{net}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 61);
    assert_eq!(builtin_networks().expect("built-ins").len(), 164);
}

#[test]
fn network_from_toml_only() {
    // A network that exists only as a data file: the zero-Rust path. It reuses the
    // Garlicoin vector with a new coin name.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("newcoin.toml"),
        r#"
[[network]]
coin = "Newcoin"
net = "mainnet"
ticker = "NEW"
genesis_hash = "2ada80bf415a89358d697569c96eb98cdbf4c3b8878ac5722c01284492e27228"
rpc_port = 42068
p2pkh = "26"
p2sh = ["32", "05"]
bech32_hrp = "grlc"
header = { layout = "fixed", size = 80, hash = "sha256d" }
tx_format = "segwit"
"#,
    )
    .expect("write");
    std::fs::write(dir.path().join("ignored.txt"), "not toml").expect("write");
    let nets = load_networks_from_dir(dir.path()).expect("load");
    assert_eq!(nets.len(), 1);
    let mut reg = Registry::builtin().expect("builtin");
    assert!(reg.lookup("newcoin", "mainnet").is_err());
    reg.load_dir(dir.path()).expect("load dir");
    let coin = reg.lookup("NEWCOIN", "mainnet").expect("lookup");
    let v = load_json(&vectors_dir().join("blocks/garlicoin_mainnet_42069.json"));
    let raw = unhex(v["block"].as_str().expect("block"));
    let b = coin
        .parse_block(&raw, v["height"].as_u64().map(|h| h as u32))
        .expect("parse");
    assert_eq!(
        hash_to_hex(&b.hash),
        clean_hex(v["hash"].as_str().expect("hash"))
    );
    let want: Vec<String> = v["tx"]
        .as_array()
        .expect("tx")
        .iter()
        .map(|t| clean_hex(t.as_str().expect("txid")))
        .collect();
    let got: Vec<String> = b.txs.iter().map(|t| hash_to_hex(&t.txid)).collect();
    assert_eq!(got, want);
}

#[test]
fn bad_toml_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.toml"),
        r#"
[[network]]
coin = "Bad"
net = "mainnet"
ticker = "BAD"
genesis_hash = "00"
p2pkh = "00"
p2sh = ["05"]
header = { layout = "fixed", size = 80, hash = "sha256d" }
tx_format = "segwit"
"#,
    )
    .expect("write");
    let err = load_networks_from_dir(dir.path())
        .expect_err("error")
        .to_string();
    assert!(err.contains("Bad/mainnet"), "{err}");
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[network]]\ncoin = \"Bad\"\nnet = \"x\"\nticker = \"B\"\ngenesis_hash = \"\"\np2pkh = \"00\"\np2sh = [\"05\"]\nheader = { layout = \"fixed\", hash = \"x99\" }\ntx_format = \"segwit\"\n",
    )
    .expect("write");
    let err = load_networks_from_dir(dir.path())
        .expect_err("error")
        .to_string();
    assert!(err.contains("unknown hash algorithm"), "{err}");
}

#[test]
fn unavailable_hashes_are_listed() {
    // Networks whose block hash this build cannot compute: they still parse and
    // index (the server can store the node's block hash), but header_hash errs.
    let mut missing = Vec::new();
    for p in builtin_networks().expect("built-ins") {
        let algos: Vec<&str> = p
            .hash_algos()
            .into_iter()
            .filter(|a| !a.available())
            .map(|a| a.name())
            .collect();
        if !algos.is_empty() {
            missing.push(format!("{} ({})", p.id(), algos.join("+")));
            let coin = anode_coins::coin_from_params(p.clone());
            let header = [0u8; 200];
            if p.header.hash_rules.is_empty() {
                assert!(matches!(
                    coin.header_hash(&header[..p.header.size.clamp(80, 180)]),
                    Err(Error::HashUnavailable(_))
                ));
            }
        }
    }
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{} networks without their block hash in this build:",
            missing.len()
        );
        for m in &missing {
            println!("  {m}");
        }
    }
}

#[test]
fn p2p_parameters_of_the_major_networks() {
    for (coin, net, magic, port) in [
        ("Bitcoin", "mainnet", "f9beb4d9", 8333),
        ("Bitcoin", "testnet", "0b110907", 18333),
        ("Bitcoin", "testnet4", "1c163f28", 48333),
        ("Bitcoin", "signet", "0a03cf40", 38333),
        ("Bitcoin", "regtest", "fabfb5da", 18444),
        ("BitcoinCash", "mainnet", "e3e1f3e8", 8333),
        ("BitcoinCash", "testnet", "f4e5f3f4", 18333),
        ("BitcoinCash", "regtest", "dab5bffa", 18444),
        ("BitcoinSV", "mainnet", "e3e1f3e8", 8333),
        ("BitcoinSV", "testnet", "f4e5f3f4", 18333),
        ("BitcoinSV", "regtest", "dab5bffa", 18444),
        ("Litecoin", "mainnet", "fbc0b6db", 9333),
        ("Litecoin", "testnet", "fdd2c8f1", 19335),
        ("Litecoin", "regtest", "fabfb5da", 19444),
        ("Dogecoin", "mainnet", "c0c0c0c0", 22556),
    ] {
        let c = lookup(coin, net).unwrap_or_else(|e| panic!("{coin}/{net}: {e}"));
        let p = c.params();
        let got = p.p2p_magic.map(|m| anode_coins::hex_encode(&m));
        assert_eq!(got.as_deref(), Some(magic), "{coin}/{net} magic");
        assert_eq!(p.p2p_port, Some(port), "{coin}/{net} port");
    }
    let bsv = lookup("BitcoinSV", "regtest").expect("bsv");
    assert_eq!(bsv.params().p2p_max_message, Some(1 << 30));
    assert_eq!(
        lookup("Bitcoin", "mainnet")
            .expect("btc")
            .params()
            .p2p_max_message,
        None
    );
    // Networks whose values are not recorded have none.
    assert_eq!(
        lookup("Dogecoin", "testnet")
            .expect("doge")
            .params()
            .p2p_magic,
        None
    );
}

#[test]
fn p2p_magic_must_be_four_hex_bytes() {
    let entry = |magic: &str| {
        format!(
            "[[network]]\ncoin = \"X\"\nnet = \"mainnet\"\nticker = \"X\"\n\
             genesis_hash = \"{}\"\np2p_magic = \"{magic}\"\np2pkh = \"00\"\np2sh = [\"05\"]\n\
             header = {{ layout = \"fixed\", size = 80 }}\ntx_format = \"legacy\"\n",
            "00".repeat(32)
        )
    };
    let ok = anode_coins::load_networks_from_str(&entry("fabfb5da"), "t").expect("valid");
    assert_eq!(ok[0].p2p_magic, Some([0xfa, 0xbf, 0xb5, 0xda]));
    for bad in ["fabfb5", "fabfb5da00", "zzzzzzzz"] {
        let err = anode_coins::load_networks_from_str(&entry(bad), "t").expect_err(bad);
        assert!(err.to_string().contains("p2p_magic"), "{err}");
    }
}

#[test]
fn header_field_offsets_are_validated() {
    let net = |header: &str| {
        format!(
            "[[network]]\ncoin = \"T\"\nnet = \"mainnet\"\nticker = \"T\"\n\
             genesis_hash = \"{}\"\np2pkh = \"00\"\np2sh = [\"05\"]\n\
             header = {{ {header} }}\ntx_format = \"legacy\"\n",
            "00".repeat(32)
        )
    };
    let load = |header: &str| anode_coins::load_networks_from_str(&net(header), "test");
    let ok = load(r#"layout = "fixed", size = 112, time_offset = 100"#).expect("Lbry-like");
    assert_eq!(ok[0].header.time_offset, 100);
    assert!(ok[0].header.proof_of_work);
    let ok = load(r#"layout = "fixed", size = 108, time_offset = 100, proof_of_work = false"#)
        .expect("FairCoin-like");
    assert!(!ok[0].header.proof_of_work);
    assert_eq!(ok[0].header.time(&[0u8; 108]), Some(0));
    assert_eq!(ok[0].header.time(&[0u8; 103]), None);
    for (bad, why) in [
        // time, bits, nonce would end at 112 > 108
        (
            r#"layout = "fixed", size = 108, time_offset = 100"#,
            "exceed",
        ),
        (
            r#"layout = "fixed", size = 112, time_offset = 60"#,
            "overlap",
        ),
        (
            r#"layout = "fixed", size = 112, size_schedule = [[0, 80], [10, 112]], time_offset = 100"#,
            "exceed",
        ),
        (
            r#"layout = "auxpow", size = 80, proof_of_work = false"#,
            "fixed",
        ),
    ] {
        let err = load(bad).expect_err(bad).to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}
