//! Address encodings against published examples (the real-address checks against
//! the transaction vectors are in vectors.rs).

use anode_coins::{hex_encode, lookup};

fn round_trip(coin: &str, net: &str, addr: &str, script_hex: &str) {
    let c = lookup(coin, net).expect("lookup");
    let script = c
        .address_to_script(addr)
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
    assert_eq!(hex_encode(&script), script_hex, "{addr}");
    let back = c.script_to_address(&script).expect("encodes");
    assert_eq!(back.to_ascii_lowercase(), addr.to_ascii_lowercase());
}

#[test]
fn bitcoin_addresses() {
    round_trip(
        "Bitcoin",
        "mainnet",
        "1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu",
        "76a91476a04053bda0a88bda5177b86a15c3b29f55987388ac",
    );
    round_trip(
        "Bitcoin",
        "mainnet",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "0014751e76e8199196d454941c45d1b3a323f1433bd6",
    );
    round_trip(
        "Bitcoin",
        "mainnet",
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    );
    let c = lookup("Bitcoin", "mainnet").expect("lookup");
    // Uppercase bech32 is accepted.
    assert!(c
        .address_to_script("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4")
        .is_ok());
    // Bad checksum, wrong network, bech32 used for v1.
    assert!(c
        .address_to_script("1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggv")
        .is_err());
    assert!(c
        .address_to_script("mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn")
        .is_err());
    assert!(c
        .address_to_script(
            "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx"
        )
        .is_err());
    // P2PK has no address.
    let mut p2pk = vec![33u8];
    p2pk.extend_from_slice(&[2; 33]);
    p2pk.push(0xac);
    assert!(c.script_to_address(&p2pk).is_none());
}

#[test]
fn cashaddr() {
    round_trip(
        "BitcoinCash",
        "mainnet",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        "76a91476a04053bda0a88bda5177b86a15c3b29f55987388ac",
    );
    round_trip(
        "BitcoinCash",
        "mainnet",
        "bitcoincash:ppm2qsznhks23z7629mms6s4cwef74vcwvn0h829pq",
        "a91476a04053bda0a88bda5177b86a15c3b29f55987387",
    );
    // Legacy Base58 addresses are still accepted; the prefix may be omitted.
    let c = lookup("BitcoinCash", "mainnet").expect("lookup");
    assert!(c
        .address_to_script("1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu")
        .is_ok());
    assert!(c
        .address_to_script("qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a")
        .is_ok());
    assert!(c
        .address_to_script("bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6b")
        .is_err());
}

#[test]
fn litecoin_and_groestlcoin() {
    // Litecoin: both P2SH prefixes decode; the first ('M...') is used to encode.
    let c = lookup("Litecoin", "mainnet").expect("lookup");
    let s = c
        .address_to_script("3MSvaVbVFFLML86rt5eqgA9SvW23upaXdY")
        .expect("legacy p2sh");
    let m = c.script_to_address(&s).expect("encode");
    assert!(m.starts_with('M'), "{m}");
    assert_eq!(c.address_to_script(&m).expect("decode"), s);
    // Groestlcoin's Base58 checksum is Groestl-512d: a Bitcoin-checksummed string fails.
    #[cfg(feature = "groestl")]
    {
        let g = lookup("Groestlcoin", "mainnet").expect("lookup");
        let script = anode_coins::hex_decode("76a91476a04053bda0a88bda5177b86a15c3b29f55987388ac")
            .expect("hex");
        let a = g.script_to_address(&script).expect("encode");
        assert!(a.starts_with('F'), "{a}");
        assert_eq!(g.address_to_script(&a).expect("decode"), script);
    }
}
