//! Per-network behaviour that is data: unspendable rule, RPC dialects, header sizes,
//! genesis handling, name prefixes.

use anode_coins::{lookup, FeeStyle, RpcDialect};

#[test]
fn bitcoin_sv_genesis_unspendable_rule() {
    let sv = lookup("BitcoinSV", "mainnet").expect("lookup");
    let btc = lookup("Bitcoin", "mainnet").expect("lookup");
    let op_return = [0x6a, 0x01, 0x00];
    let false_return = [0x00, 0x6a, 0x01, 0x00];
    assert!(sv.is_unspendable(&op_return, 620_537));
    assert!(!sv.is_unspendable(&op_return, 620_538));
    assert!(sv.is_unspendable(&false_return, 700_000));
    assert!(btc.is_unspendable(&op_return, 900_000));
    assert!(btc.is_unspendable(&false_return, 900_000));
    assert!(!btc.is_unspendable(&[0x76, 0xa9], 900_000));
    assert_eq!(
        lookup("BitcoinSV", "regtest")
            .expect("l")
            .params()
            .genesis_activation,
        Some(10_000)
    );
}

#[test]
fn rpc_dialects() {
    let ppc = lookup("Peercoin", "mainnet").expect("lookup").rpc();
    assert_eq!(ppc.dialect, RpcDialect::FixedFee);
    assert_eq!(ppc.fee_style, FeeStyle::Fixed);
    assert_eq!(ppc.estimate_fee, Some(0.001));
    assert_eq!(ppc.relay_fee, Some(0.01));
    assert!(ppc.raw_blocks);
    let gzro = lookup("GravityZeroCoin", "mainnet").expect("lookup").rpc();
    assert_eq!(gzro.dialect, RpcDialect::FixedFeeLegacy);
    assert!(!gzro.raw_blocks);
    let btc = lookup("Bitcoin", "mainnet").expect("lookup");
    let rpc = btc.rpc();
    assert_eq!(rpc.fee_style, FeeStyle::EstimateSmartFee);
    assert_eq!(btc.params().rpc.min_daemon_version.as_deref(), Some("31.0"));
    assert!(btc.params().rpc.bucket_fee_targets);
    assert_eq!(
        lookup("Dash", "mainnet").expect("l").rpc().dialect,
        RpcDialect::Dash
    );
    assert_eq!(
        lookup("Decred", "mainnet").expect("l").rpc().dialect,
        RpcDialect::Decred
    );
}

#[test]
fn header_lengths_by_height() {
    let rvn = lookup("Ravencoin", "mainnet").expect("lookup");
    assert_eq!(rvn.header_len_at(1_219_735), Some(80));
    assert_eq!(rvn.header_len_at(1_219_736), Some(120));
    assert_eq!(
        lookup("Ravencoin", "testnet")
            .expect("l")
            .header_len_at(231_544),
        Some(120)
    );
    let pivx = lookup("PIVX", "mainnet").expect("lookup");
    assert_eq!(pivx.header_len_at(863_786), Some(80));
    assert_eq!(pivx.header_len_at(863_787), Some(112));
    assert_eq!(pivx.header_len_at(2_153_200), Some(80));
    assert_eq!(pivx.header_len_at(2_700_500), Some(112));
    assert_eq!(
        lookup("PIVX", "testnet").expect("l").header_len_at(201),
        Some(112)
    );
    assert_eq!(
        lookup("ODIN", "mainnet").expect("l").header_len_at(143_447),
        Some(112)
    );
    let doge = lookup("Dogecoin", "mainnet").expect("lookup");
    assert_eq!(doge.header_len_at(1), Some(80));
    assert!(!doge.static_headers());
    assert_eq!(
        lookup("Xaya", "mainnet").expect("l").header_len_at(1),
        Some(85)
    );
    assert_eq!(
        lookup("Zcash", "mainnet").expect("l").header_len_at(1),
        None
    );
    assert_eq!(
        lookup("Decred", "mainnet").expect("l").header_len_at(1),
        Some(180)
    );
    assert_eq!(
        lookup("FairCoin", "mainnet").expect("l").header_len_at(1),
        Some(108)
    );
    assert!(lookup("Bitcoin", "mainnet").expect("l").static_headers());
}

#[test]
fn genesis_rules() {
    use anode_coins::GenesisRule;
    assert!(lookup("Xaya", "mainnet")
        .expect("l")
        .index_genesis_outputs());
    assert!(lookup("ElectraProtocol", "mainnet")
        .expect("l")
        .index_genesis_outputs());
    assert!(!lookup("Bitcoin", "mainnet")
        .expect("l")
        .index_genesis_outputs());
    assert_eq!(
        lookup("FairCoin", "mainnet").expect("l").params().genesis,
        GenesisRule::NoTransactions
    );
    // Decred at height 0: header only, no transactions parsed.
    let dcr = lookup("Decred", "mainnet").expect("lookup");
    let mut raw = vec![0u8; 180];
    raw.push(0xff); // garbage where transactions would start
    let b = dcr.parse_block(&raw, Some(0)).expect("genesis");
    assert!(b.txs.is_empty());
    assert!(dcr.parse_block(&raw, Some(1)).is_err());
}

#[test]
fn name_scripts() {
    let nmc = lookup("Namecoin", "mainnet").expect("lookup");
    let p2pkh =
        anode_coins::hex_decode("76a914ce26e759dbb966466446aab6e48cf39a23badd7588ac").expect("hex");
    // name_update "d/x" = "{}": OP_3 <name> <value> OP_2DROP OP_DROP <p2pkh>
    let mut s = vec![0x53, 3, b'd', b'/', b'x', 2, b'{', b'}', 0x6d, 0x75];
    s.extend_from_slice(&p2pkh);
    assert_eq!(nmc.script_hash(&s), anode_coins::hash::sha256(&p2pkh));
    assert_eq!(
        nmc.name_index_script(&s),
        Some(vec![0x53, 3, b'd', b'/', b'x', 0x00, 0x6d, 0x75, 0x6a])
    );
    assert_eq!(nmc.name_index_script(&p2pkh), None);
    // Bitcoin does not strip anything.
    let btc = lookup("Bitcoin", "mainnet").expect("lookup");
    assert_eq!(btc.script_hash(&s), anode_coins::hash::sha256(&s));
    // Unbalanced prefixes are not stripped.
    let bad = [0x53, 3, b'd', b'/', b'x', 0x75];
    assert_eq!(nmc.script_hash(&bad), anode_coins::hash::sha256(&bad));
}

#[test]
fn auxpow_header_hash_ignores_the_proof() {
    let doge = lookup("Dogecoin", "mainnet").expect("lookup");
    let mut header = vec![0u8; 80];
    header[1] = 1; // version bit 8: merge-mined
    let h80 = doge.header_hash(&header).expect("hash");
    header.extend_from_slice(&[0xab; 300]);
    assert_eq!(doge.header_hash(&header).expect("hash"), h80);
}
