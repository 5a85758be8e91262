//! Bitcoin Core 31's JSON renderings of scripts, transactions and proof-of-work fields, built
//! from raw bytes: what `getrawtransaction`, `getblock` and the REST endpoints print. Only the
//! byte-level pieces live here; the chain-aware parts (confirmations, prevouts, block
//! heights) are in the RPC module.

use serde_json::{json, Map, Value};

use anode_coins::hash::sha256d;
use anode_coins::{Coin, Hash32};

use crate::daemon::hash_to_hex;

/// An amount in the coin's units as Core prints it (`ValueFromAmount`): whole coins with
/// eight decimals. Built from the decimal text so that 0.3 stays 0.3 and not 0.30000000000000004.
pub(crate) fn amount(coin: &dyn Coin, base_units: u64) -> Value {
    let per = coin.params().value_per_coin.max(1);
    let digits = per.ilog10() as usize;
    let text = format!(
        "{}.{:0width$}",
        base_units / per,
        base_units % per,
        width = digits
    );
    text.parse::<f64>().map_or(Value::Null, |f| json!(f))
}

// ---------------------------------------------------------------------------------------------
// Proof of work: bits, target, difficulty, work

/// The 256-bit target encoded by compact `bits`, big-endian (display order).
pub(crate) fn target_from_bits(bits: u32) -> [u8; 32] {
    let exponent = (bits >> 24) as usize;
    let mantissa = bits & 0x007f_ffff;
    let mut target = [0u8; 32];
    let bytes = [
        (mantissa >> 16) as u8,
        (mantissa >> 8) as u8,
        mantissa as u8,
    ];
    // The mantissa's most significant byte lands `exponent` bytes from the right.
    for (i, b) in bytes.iter().enumerate() {
        let from_right = exponent as isize - 1 - i as isize;
        if (0..32).contains(&from_right) {
            target[31 - from_right as usize] = *b;
        }
    }
    target
}

/// Core's `GetDifficulty`: how many times harder than the minimum difficulty (`0x1d00ffff`),
/// as Core's JSON prints it (16 significant digits).
pub(crate) fn difficulty(bits: u32) -> f64 {
    let exact = exact_difficulty(bits);
    format!("{exact:.15e}").parse().unwrap_or(exact)
}

fn exact_difficulty(bits: u32) -> f64 {
    let mut shift = (bits >> 24) & 0xff;
    let mantissa = f64::from(bits & 0x00ff_ffff).max(1.0);
    let mut diff = f64::from(0x0000_ffffu32) / mantissa;
    while shift < 29 {
        diff *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        diff /= 256.0;
        shift -= 1;
    }
    diff
}

/// A 256-bit unsigned number, four little-endian 64-bit limbs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct U256([u64; 4]);

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // The most significant limb decides first.
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl U256 {
    fn from_be_bytes(b: &[u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let start = 32 - 8 * (i + 1);
            *limb = u64::from_be_bytes(b[start..start + 8].try_into().expect("8 bytes"));
        }
        U256(limbs)
    }

    fn to_be_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            let start = 32 - 8 * (i + 1);
            out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    fn bit(&self, i: usize) -> bool {
        (self.0[i / 64] >> (i % 64)) & 1 == 1
    }

    fn shl1(self) -> Self {
        let mut out = [0u64; 4];
        let mut carry = 0;
        for (o, limb) in out.iter_mut().zip(self.0) {
            *o = (limb << 1) | carry;
            carry = limb >> 63;
        }
        U256(out)
    }

    fn wrapping_sub(self, other: Self) -> Self {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for ((o, a), b) in out.iter_mut().zip(self.0).zip(other.0) {
            let (d, b1) = a.overflowing_sub(b);
            let (d, b2) = d.overflowing_sub(u64::from(borrow));
            *o = d;
            borrow = b1 || b2;
        }
        U256(out)
    }

    fn wrapping_add(self, other: Self) -> Self {
        let mut out = [0u64; 4];
        let mut carry = false;
        for ((o, a), b) in out.iter_mut().zip(self.0).zip(other.0) {
            let (sum, c1) = a.overflowing_add(b);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            *o = sum;
            carry = c1 || c2;
        }
        U256(out)
    }

    /// Quotient of `self / divisor` (bitwise long division; `divisor` must not be zero).
    fn div(self, divisor: Self) -> Self {
        let mut quotient = U256::default();
        let mut rest = U256::default();
        for i in (0..256).rev() {
            rest = rest.shl1();
            if self.bit(i) {
                rest.0[0] |= 1;
            }
            if rest >= divisor {
                rest = rest.wrapping_sub(divisor);
                quotient.0[i / 64] |= 1 << (i % 64);
            }
        }
        quotient
    }

    fn mul_u64(self, m: u64) -> Self {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for (o, limb) in out.iter_mut().zip(self.0) {
            let p = u128::from(limb) * u128::from(m) + carry;
            *o = p as u64;
            carry = p >> 64;
        }
        U256(out)
    }
}

/// The expected number of hashes for a block at `bits` (Core's `GetBlockProof`):
/// 2^256 / (target + 1), computed as `~target / (target + 1) + 1`.
pub(crate) fn block_work(bits: u32) -> U256 {
    let target = U256::from_be_bytes(&target_from_bits(bits));
    let one = U256([1, 0, 0, 0]);
    if target == U256::default() {
        return U256::default();
    }
    let not_target = U256([!target.0[0], !target.0[1], !target.0[2], !target.0[3]]);
    not_target.div(target.wrapping_add(one)).wrapping_add(one)
}

/// Work of `blocks` blocks that all carry `bits`, as Core's 64-digit `chainwork` hex.
pub(crate) fn chainwork_hex(bits: u32, blocks: u64) -> String {
    hex::encode(block_work(bits).mul_u64(blocks).to_be_bytes())
}

// ---------------------------------------------------------------------------------------------
// Scripts

const OP_0: u8 = 0x00;
const OP_PUSHDATA1: u8 = 0x4c;
const OP_PUSHDATA2: u8 = 0x4d;
const OP_PUSHDATA4: u8 = 0x4e;
const OP_1NEGATE: u8 = 0x4f;
const OP_1: u8 = 0x51;
const OP_16: u8 = 0x60;
const OP_RETURN: u8 = 0x6a;
const OP_DUP: u8 = 0x76;
const OP_EQUAL: u8 = 0x87;
const OP_EQUALVERIFY: u8 = 0x88;
const OP_HASH160: u8 = 0xa9;
const OP_CHECKSIG: u8 = 0xac;
const OP_CHECKMULTISIG: u8 = 0xae;

/// One script element: the opcode and, for pushes, the pushed bytes.
struct ScriptOp<'a> {
    opcode: u8,
    push: Option<&'a [u8]>,
}

/// Iterates a script's elements; yields `Err(())` once where an element is truncated.
fn script_ops(script: &[u8]) -> impl Iterator<Item = Result<ScriptOp<'_>, ()>> {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= script.len() {
            return None;
        }
        let opcode = script[pos];
        pos += 1;
        let len = match opcode {
            0x00..=0x4b => Some(opcode as usize),
            OP_PUSHDATA1 => script.get(pos).map(|&n| {
                pos += 1;
                n as usize
            }),
            OP_PUSHDATA2 => script.get(pos..pos + 2).map(|b| {
                pos += 2;
                u16::from_le_bytes([b[0], b[1]]) as usize
            }),
            OP_PUSHDATA4 => script.get(pos..pos + 4).map(|b| {
                pos += 4;
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
            }),
            _ => return Some(Ok(ScriptOp { opcode, push: None })),
        };
        let data = len.and_then(|n| script.get(pos..pos.checked_add(n)?));
        match data {
            Some(d) => {
                pos += d.len();
                Some(Ok(ScriptOp {
                    opcode,
                    push: Some(d),
                }))
            }
            None => {
                failed = true;
                Some(Err(()))
            }
        }
    })
}

/// Core's `GetOpName` for opcodes that are not data pushes.
fn op_name(op: u8) -> &'static str {
    const SMALL: [&str; 16] = [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    match op {
        OP_1NEGATE => "-1",
        0x50 => "OP_RESERVED",
        OP_1..=OP_16 => SMALL[(op - OP_1) as usize],
        0x61 => "OP_NOP",
        0x62 => "OP_VER",
        0x63 => "OP_IF",
        0x64 => "OP_NOTIF",
        0x65 => "OP_VERIF",
        0x66 => "OP_VERNOTIF",
        0x67 => "OP_ELSE",
        0x68 => "OP_ENDIF",
        0x69 => "OP_VERIFY",
        OP_RETURN => "OP_RETURN",
        0x6b => "OP_TOALTSTACK",
        0x6c => "OP_FROMALTSTACK",
        0x6d => "OP_2DROP",
        0x6e => "OP_2DUP",
        0x6f => "OP_3DUP",
        0x70 => "OP_2OVER",
        0x71 => "OP_2ROT",
        0x72 => "OP_2SWAP",
        0x73 => "OP_IFDUP",
        0x74 => "OP_DEPTH",
        0x75 => "OP_DROP",
        OP_DUP => "OP_DUP",
        0x77 => "OP_NIP",
        0x78 => "OP_OVER",
        0x79 => "OP_PICK",
        0x7a => "OP_ROLL",
        0x7b => "OP_ROT",
        0x7c => "OP_SWAP",
        0x7d => "OP_TUCK",
        0x7e => "OP_CAT",
        0x7f => "OP_SUBSTR",
        0x80 => "OP_LEFT",
        0x81 => "OP_RIGHT",
        0x82 => "OP_SIZE",
        0x83 => "OP_INVERT",
        0x84 => "OP_AND",
        0x85 => "OP_OR",
        0x86 => "OP_XOR",
        OP_EQUAL => "OP_EQUAL",
        OP_EQUALVERIFY => "OP_EQUALVERIFY",
        0x89 => "OP_RESERVED1",
        0x8a => "OP_RESERVED2",
        0x8b => "OP_1ADD",
        0x8c => "OP_1SUB",
        0x8d => "OP_2MUL",
        0x8e => "OP_2DIV",
        0x8f => "OP_NEGATE",
        0x90 => "OP_ABS",
        0x91 => "OP_NOT",
        0x92 => "OP_0NOTEQUAL",
        0x93 => "OP_ADD",
        0x94 => "OP_SUB",
        0x95 => "OP_MUL",
        0x96 => "OP_DIV",
        0x97 => "OP_MOD",
        0x98 => "OP_LSHIFT",
        0x99 => "OP_RSHIFT",
        0x9a => "OP_BOOLAND",
        0x9b => "OP_BOOLOR",
        0x9c => "OP_NUMEQUAL",
        0x9d => "OP_NUMEQUALVERIFY",
        0x9e => "OP_NUMNOTEQUAL",
        0x9f => "OP_LESSTHAN",
        0xa0 => "OP_GREATERTHAN",
        0xa1 => "OP_LESSTHANOREQUAL",
        0xa2 => "OP_GREATERTHANOREQUAL",
        0xa3 => "OP_MIN",
        0xa4 => "OP_MAX",
        0xa5 => "OP_WITHIN",
        0xa6 => "OP_RIPEMD160",
        0xa7 => "OP_SHA1",
        0xa8 => "OP_SHA256",
        OP_HASH160 => "OP_HASH160",
        0xaa => "OP_HASH256",
        0xab => "OP_CODESEPARATOR",
        OP_CHECKSIG => "OP_CHECKSIG",
        0xad => "OP_CHECKSIGVERIFY",
        OP_CHECKMULTISIG => "OP_CHECKMULTISIG",
        0xaf => "OP_CHECKMULTISIGVERIFY",
        0xb0 => "OP_NOP1",
        0xb1 => "OP_CHECKLOCKTIMEVERIFY",
        0xb2 => "OP_CHECKSEQUENCEVERIFY",
        0xb3 => "OP_NOP4",
        0xb4 => "OP_NOP5",
        0xb5 => "OP_NOP6",
        0xb6 => "OP_NOP7",
        0xb7 => "OP_NOP8",
        0xb8 => "OP_NOP9",
        0xb9 => "OP_NOP10",
        0xba => "OP_CHECKSIGADD",
        0xff => "OP_INVALIDOPCODE",
        _ => "OP_UNKNOWN",
    }
}

/// A script number of up to four bytes, as `CScriptNum` reads it (no minimality check).
fn script_num(bytes: &[u8]) -> i64 {
    let Some(&last) = bytes.last() else {
        return 0;
    };
    let mut value: i64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        value |= i64::from(*b) << (8 * i);
    }
    if last & 0x80 != 0 {
        // The sign bit is the top bit of the last byte.
        -(value & !(0x80i64 << (8 * (bytes.len() - 1))))
    } else {
        value
    }
}

/// BIP66 strict DER (Core's `IsValidSignatureEncoding`), sighash byte included.
fn is_der_signature(sig: &[u8]) -> bool {
    let n = sig.len();
    if !(9..=73).contains(&n) || sig[0] != 0x30 || sig[1] as usize != n - 3 {
        return false;
    }
    let len_r = sig[3] as usize;
    if 5 + len_r >= n {
        return false;
    }
    let len_s = sig[5 + len_r] as usize;
    if len_r + len_s + 7 != n || sig[2] != 0x02 || len_r == 0 || sig[4] & 0x80 != 0 {
        return false;
    }
    if len_r > 1 && sig[4] == 0 && sig[5] & 0x80 == 0 {
        return false;
    }
    if sig[len_r + 4] != 0x02 || len_s == 0 || sig[len_r + 6] & 0x80 != 0 {
        return false;
    }
    !(len_s > 1 && sig[len_r + 6] == 0 && sig[len_r + 7] & 0x80 == 0)
}

fn sighash_name(byte: u8) -> Option<&'static str> {
    Some(match byte {
        0x01 => "ALL",
        0x81 => "ALL|ANYONECANPAY",
        0x02 => "NONE",
        0x82 => "NONE|ANYONECANPAY",
        0x03 => "SINGLE",
        0x83 => "SINGLE|ANYONECANPAY",
        _ => return None,
    })
}

/// Core's `ScriptToAsmStr`: small pushes as numbers, other pushes as hex, opcodes by name.
/// `decode_sighash` (for signature scripts) prints a DER signature's sighash type in
/// brackets instead of its last byte.
pub(crate) fn script_asm(script: &[u8], decode_sighash: bool) -> String {
    let unspendable = script.first() == Some(&OP_RETURN) || script.len() > 10_000;
    let mut out = String::new();
    for op in script_ops(script) {
        if !out.is_empty() {
            out.push(' ');
        }
        let Ok(op) = op else {
            out.push_str("[error]");
            break;
        };
        match op.push {
            Some(data) if data.len() <= 4 => out.push_str(&script_num(data).to_string()),
            Some(data) => {
                let decoded = (decode_sighash && !unspendable && is_der_signature(data))
                    .then(|| data.last().and_then(|b| sighash_name(*b)))
                    .flatten();
                match decoded {
                    Some(name) => {
                        out.push_str(&hex::encode(&data[..data.len() - 1]));
                        out.push('[');
                        out.push_str(name);
                        out.push(']');
                    }
                    None => out.push_str(&hex::encode(data)),
                }
            }
            None => out.push_str(op_name(op.opcode)),
        }
    }
    out
}

/// Core's output types (`TxoutType`), by the names Core prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputType {
    Nonstandard,
    Anchor,
    PubKey,
    PubKeyHash,
    ScriptHash,
    Multisig,
    NullData,
    WitnessV0KeyHash,
    WitnessV0ScriptHash,
    WitnessV1Taproot,
    WitnessUnknown,
}

impl OutputType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            OutputType::Nonstandard => "nonstandard",
            OutputType::Anchor => "anchor",
            OutputType::PubKey => "pubkey",
            OutputType::PubKeyHash => "pubkeyhash",
            OutputType::ScriptHash => "scripthash",
            OutputType::Multisig => "multisig",
            OutputType::NullData => "nulldata",
            OutputType::WitnessV0KeyHash => "witness_v0_keyhash",
            OutputType::WitnessV0ScriptHash => "witness_v0_scripthash",
            OutputType::WitnessV1Taproot => "witness_v1_taproot",
            OutputType::WitnessUnknown => "witness_unknown",
        }
    }

    /// Whether Core derives an address from the output (`ExtractDestination`, pay-to-pubkey
    /// left out as `ScriptToUniv` does).
    fn has_address(self) -> bool {
        matches!(
            self,
            OutputType::PubKeyHash
                | OutputType::ScriptHash
                | OutputType::WitnessV0KeyHash
                | OutputType::WitnessV0ScriptHash
                | OutputType::WitnessV1Taproot
                | OutputType::Anchor
                | OutputType::WitnessUnknown
        )
    }
}

/// Length a public key must have for its first byte (Core's `CPubKey::GetLen`).
fn pubkey_len_for(first: u8) -> usize {
    match first {
        2 | 3 => 33,
        4 | 6 | 7 => 65,
        _ => 0,
    }
}

fn valid_pubkey_size(key: &[u8]) -> bool {
    key.first().is_some_and(|b| pubkey_len_for(*b) == key.len())
}

/// A multisig's required or total key count: `OP_1..OP_16`, or a minimal one-byte push.
fn multisig_count(op: &ScriptOp<'_>) -> Option<usize> {
    match (op.opcode, op.push) {
        (OP_1..=OP_16, None) => Some((op.opcode - OP_1 + 1) as usize),
        (1, Some([n])) if *n > 16 && *n <= 0x7f => Some(*n as usize),
        _ => None,
    }
}

/// Bare multisig (`k <keys> n OP_CHECKMULTISIG`): the required count and the keys.
fn match_multisig(script: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
    if script.last() != Some(&OP_CHECKMULTISIG) {
        return None;
    }
    let ops: Vec<ScriptOp<'_>> = script_ops(&script[..script.len() - 1])
        .collect::<Result<_, _>>()
        .ok()?;
    let (first, rest) = ops.split_first()?;
    let (last, keys) = rest.split_last()?;
    let required = multisig_count(first)?;
    let total = multisig_count(last)?;
    let keys: Vec<&[u8]> = keys.iter().map(|op| op.push).collect::<Option<_>>()?;
    let valid = (1..=20).contains(&required)
        && (required..=20).contains(&total)
        && keys.len() == total
        && keys.iter().all(|k| valid_pubkey_size(k));
    valid.then_some((required, keys))
}

/// Core's `Solver`: the output type of a script.
pub(crate) fn output_type(script: &[u8]) -> OutputType {
    let n = script.len();
    if n == 23 && script[0] == OP_HASH160 && script[1] == 20 && script[22] == OP_EQUAL {
        return OutputType::ScriptHash;
    }
    if (4..=42).contains(&n)
        && (script[0] == OP_0 || (OP_1..=OP_16).contains(&script[0]))
        && script[1] as usize + 2 == n
    {
        let version = if script[0] == OP_0 {
            0
        } else {
            script[0] - OP_1 + 1
        };
        let program = &script[2..];
        return match (version, program.len()) {
            (0, 20) => OutputType::WitnessV0KeyHash,
            (0, 32) => OutputType::WitnessV0ScriptHash,
            (1, 32) => OutputType::WitnessV1Taproot,
            (1, _) if program == [0x4e, 0x73] => OutputType::Anchor,
            (0, _) => OutputType::Nonstandard,
            _ => OutputType::WitnessUnknown,
        };
    }
    if script.first() == Some(&OP_RETURN)
        && script_ops(&script[1..]).all(|op| op.is_ok_and(|op| op.opcode <= OP_16))
    {
        return OutputType::NullData;
    }
    if (n == 35 || n == 67)
        && script[0] as usize == n - 2
        && script[n - 1] == OP_CHECKSIG
        && valid_pubkey_size(&script[1..n - 1])
    {
        return OutputType::PubKey;
    }
    if n == 25
        && script[0] == OP_DUP
        && script[1] == OP_HASH160
        && script[2] == 20
        && script[23] == OP_EQUALVERIFY
        && script[24] == OP_CHECKSIG
    {
        return OutputType::PubKeyHash;
    }
    if match_multisig(script).is_some() {
        return OutputType::Multisig;
    }
    OutputType::Nonstandard
}

/// Whether a public key is one descriptors accept (Core's `IsValidNonHybrid`).
fn non_hybrid(key: &[u8]) -> bool {
    valid_pubkey_size(key) && matches!(key[0], 2..=4)
}

/// Core's `InferDescriptor` with no wallet behind it, checksum included: `pk()` and
/// `multi()` for bare keys, `rawtr()` for Taproot outputs whose key is on the curve,
/// `addr()` for every other output with an address, `raw()` for the rest.
pub(crate) fn infer_descriptor(coin: &dyn Coin, script: &[u8]) -> String {
    let kind = output_type(script);
    let body = match kind {
        OutputType::PubKey if non_hybrid(&script[1..script.len() - 1]) => {
            Some(format!("pk({})", hex::encode(&script[1..script.len() - 1])))
        }
        OutputType::Multisig => match_multisig(script)
            .filter(|(_, keys)| keys.iter().all(|k| non_hybrid(k)))
            .map(|(required, keys)| {
                let keys: Vec<String> = keys.iter().map(hex::encode).collect();
                format!("multi({},{})", required, keys.join(","))
            }),
        OutputType::WitnessV1Taproot
            if secp256k1_x_is_valid(script[2..].try_into().expect("32-byte program")) =>
        {
            Some(format!("rawtr({})", hex::encode(&script[2..])))
        }
        _ => None,
    };
    let body = body.unwrap_or_else(|| {
        kind.has_address()
            .then(|| coin.script_to_address(script))
            .flatten()
            .map_or_else(
                || format!("raw({})", hex::encode(script)),
                |a| format!("addr({a})"),
            )
    });
    with_descriptor_checksum(&body)
}

/// Appends the BIP380 descriptor checksum (`#` and eight characters).
pub(crate) fn with_descriptor_checksum(descriptor: &str) -> String {
    const INPUT: &str = "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ";
    const CHECKSUM: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    fn polymod(c: u64, value: u64) -> u64 {
        let top = c >> 35;
        let mut c = ((c & 0x7_ffff_ffff) << 5) ^ value;
        for (i, g) in [
            0xf5_dee5_1989u64,
            0xa9_fdca_3312,
            0x1b_ab10_e32d,
            0x37_06b1_677a,
            0x64_4d62_6ffd,
        ]
        .iter()
        .enumerate()
        {
            if (top >> i) & 1 == 1 {
                c ^= g;
            }
        }
        c
    }
    let mut c = 1u64;
    let mut class = 0u64;
    let mut class_count = 0;
    for ch in descriptor.chars() {
        // Descriptors built here only hold characters of the input set.
        let Some(pos) = INPUT.find(ch) else {
            return descriptor.to_string();
        };
        let pos = pos as u64;
        c = polymod(c, pos & 31);
        class = class * 3 + (pos >> 5);
        class_count += 1;
        if class_count == 3 {
            c = polymod(c, class);
            class = 0;
            class_count = 0;
        }
    }
    if class_count > 0 {
        c = polymod(c, class);
    }
    for _ in 0..8 {
        c = polymod(c, 0);
    }
    c ^= 1;
    let sum: String = (0..8)
        .map(|i| CHECKSUM[((c >> (5 * (7 - i))) & 31) as usize] as char)
        .collect();
    format!("{descriptor}#{sum}")
}

/// Core's `ScriptToUniv` for an output script: `asm`, `desc`, `hex`, `address` where the
/// output has one, `type`.
pub(crate) fn script_pub_key(coin: &dyn Coin, script: &[u8]) -> Value {
    let kind = output_type(script);
    let mut o = Map::new();
    o.insert("asm".into(), json!(script_asm(script, false)));
    o.insert("desc".into(), json!(infer_descriptor(coin, script)));
    o.insert("hex".into(), json!(hex::encode(script)));
    if kind.has_address() {
        if let Some(address) = coin.script_to_address(script) {
            o.insert("address".into(), json!(address));
        }
    }
    o.insert("type".into(), json!(kind.name()));
    Value::Object(o)
}

// ---------------------------------------------------------------------------------------------
// secp256k1: is an x coordinate on the curve? (Taproot keys for `rawtr()`)

/// p = 2^256 - 2^32 - 977, little-endian limbs.
const FIELD_P: [u64; 4] = [
    0xffff_fffe_ffff_fc2f,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_ffff_ffff,
];

fn field_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let mut wide = [0u64; 8];
    for i in 0..4 {
        let mut carry = 0u128;
        for j in 0..4 {
            let t = u128::from(a[i]) * u128::from(b[j]) + u128::from(wide[i + j]) + carry;
            wide[i + j] = t as u64;
            carry = t >> 64;
        }
        wide[i + 4] = carry as u64;
    }
    // 2^256 = 2^32 + 977 (mod p): fold the high half down, twice.
    const FOLD: u128 = 0x1_0000_03d1;
    let mut low = [0u64; 5];
    let mut carry = 0u128;
    for i in 0..4 {
        let t = u128::from(wide[i]) + u128::from(wide[i + 4]) * FOLD + carry;
        low[i] = t as u64;
        carry = t >> 64;
    }
    low[4] = carry as u64;
    let mut out = [0u64; 4];
    let mut carry = u128::from(low[4]) * FOLD;
    for (o, l) in out.iter_mut().zip(low) {
        let t = u128::from(l) + carry;
        *o = t as u64;
        carry = t >> 64;
    }
    // A last carry out of 2^256 folds once more; it cannot carry again.
    if carry != 0 {
        let mut add = carry * FOLD;
        for limb in out.iter_mut() {
            let t = u128::from(*limb) + add;
            *limb = t as u64;
            add = t >> 64;
        }
    }
    while U256(out) >= U256(FIELD_P) {
        out = U256(out).wrapping_sub(U256(FIELD_P)).0;
    }
    out
}

fn field_pow(base: &[u64; 4], exponent: &U256) -> [u64; 4] {
    let mut result = [1u64, 0, 0, 0];
    for i in (0..256).rev() {
        result = field_mul(&result, &result);
        if exponent.bit(i) {
            result = field_mul(&result, base);
        }
    }
    result
}

/// Whether `x` (big-endian) is the x coordinate of a secp256k1 point: below p, and
/// x³ + 7 a square mod p (Euler's criterion). Core's `XOnlyPubKey::IsFullyValid`.
pub(crate) fn secp256k1_x_is_valid(x: &[u8; 32]) -> bool {
    let x = U256::from_be_bytes(x);
    if x >= U256(FIELD_P) {
        return false;
    }
    let x3 = field_mul(&field_mul(&x.0, &x.0), &x.0);
    let rhs = U256(x3).wrapping_add(U256([7, 0, 0, 0]));
    let rhs = if rhs >= U256(FIELD_P) {
        rhs.wrapping_sub(U256(FIELD_P))
    } else {
        rhs
    };
    if rhs == U256::default() {
        return true;
    }
    // (p - 1) / 2
    let half = U256(FIELD_P)
        .wrapping_sub(U256([1, 0, 0, 0]))
        .div(U256([2, 0, 0, 0]));
    field_pow(&rhs.0, &half) == [1, 0, 0, 0]
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// One input of a decoded transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodedInput {
    pub prev_txid: Hash32,
    pub prev_vout: u32,
    pub script_sig: Vec<u8>,
    pub sequence: u32,
    pub witness: Vec<Vec<u8>>,
}

/// A transaction in Bitcoin's serialization (BIP144 witness included), decoded field by field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodedTx {
    pub version: u32,
    pub inputs: Vec<DecodedInput>,
    pub outputs: Vec<(u64, Vec<u8>)>,
    pub locktime: u32,
    /// serialized size with witness
    pub size: usize,
    /// serialized size without witness
    pub stripped_size: usize,
    /// hash of the serialization with witness, internal order
    pub wtxid: Hash32,
}

impl DecodedTx {
    pub(crate) fn is_coinbase(&self) -> bool {
        self.inputs.len() == 1
            && self.inputs[0].prev_txid == [0; 32]
            && self.inputs[0].prev_vout == u32::MAX
    }

    pub(crate) fn weight(&self) -> usize {
        3 * self.stripped_size + self.size
    }

    pub(crate) fn vsize(&self) -> usize {
        self.weight().div_ceil(4)
    }

    /// BIP125 signalling: an input sequence below 0xfffffffe.
    pub(crate) fn signals_rbf(&self) -> bool {
        self.inputs.iter().any(|i| i.sequence < 0xffff_fffe)
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn varint(&mut self) -> Option<u64> {
        match self.u8()? {
            0xfd => self
                .take(2)
                .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]]))),
            0xfe => self.u32().map(u64::from),
            0xff => self.u64(),
            n => Some(u64::from(n)),
        }
    }
    /// A count that cannot exceed what is left (one byte per item at least).
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.varint()?).ok()?;
        (n <= self.data.len() - self.pos).then_some(n)
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.count()?;
        self.take(n).map(<[u8]>::to_vec)
    }
}

/// Decodes `raw` as a Bitcoin transaction that spans all of it, or `None` (another family's
/// format, or bytes that are no transaction).
pub(crate) fn decode_tx(raw: &[u8]) -> Option<DecodedTx> {
    let mut r = Reader { data: raw, pos: 0 };
    let version = r.u32()?;
    let mut segwit = false;
    if raw.get(4) == Some(&0) && raw.get(5) == Some(&1) {
        segwit = true;
        r.pos += 2;
    }
    let n_in = r.count()?;
    let mut inputs = Vec::with_capacity(n_in);
    for _ in 0..n_in {
        let prev_txid: Hash32 = r.take(32)?.try_into().ok()?;
        let prev_vout = r.u32()?;
        let script_sig = r.bytes()?;
        let sequence = r.u32()?;
        inputs.push(DecodedInput {
            prev_txid,
            prev_vout,
            script_sig,
            sequence,
            witness: Vec::new(),
        });
    }
    let n_out = r.count()?;
    let mut outputs = Vec::with_capacity(n_out);
    for _ in 0..n_out {
        let value = r.u64()?;
        outputs.push((value, r.bytes()?));
    }
    let witness_start = r.pos;
    if segwit {
        for input in &mut inputs {
            let items = r.count()?;
            for _ in 0..items {
                input.witness.push(r.bytes()?);
            }
        }
    }
    let witness_bytes = if segwit { r.pos - witness_start + 2 } else { 0 };
    let locktime = r.u32()?;
    if r.pos != raw.len() || (segwit && inputs.iter().all(|i| i.witness.is_empty())) {
        return None;
    }
    let wtxid = sha256d(raw);
    Some(DecodedTx {
        version,
        inputs,
        outputs,
        locktime,
        size: raw.len(),
        stripped_size: raw.len() - witness_bytes,
        wtxid,
    })
}

/// An output a transaction spends, as block undo data holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prevout {
    pub value: u64,
    pub script: Vec<u8>,
    pub height: u32,
    /// whether the output is a coinbase's
    pub generated: bool,
}

/// Details a transaction object shows beyond the transaction itself (Core's `TxVerbosity`
/// with undo data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    /// the transaction alone
    Plain,
    /// with `fee` (needs the spent outputs)
    Fee,
    /// with `fee` and each input's `prevout`
    FeeAndPrevouts,
}

/// Core's `TxToUniv` with the hex included: txid, hash, version, size, vsize, weight,
/// locktime, vin, vout, fee (given the spent outputs), hex. Transactions of families whose
/// format is not Bitcoin's get the fields the coin layer can read.
pub(crate) fn tx_object(
    coin: &dyn Coin,
    txid: &Hash32,
    raw: &[u8],
    prevouts: Option<&[Prevout]>,
    detail: Detail,
) -> Map<String, Value> {
    let mut o = Map::new();
    let Some(tx) = decode_tx(raw) else {
        return foreign_tx_object(coin, txid, raw);
    };
    o.insert("txid".into(), json!(hash_to_hex(txid)));
    o.insert("hash".into(), json!(hash_to_hex(&tx.wtxid)));
    o.insert("version".into(), json!(tx.version));
    o.insert("size".into(), json!(tx.size));
    o.insert("vsize".into(), json!(tx.vsize()));
    o.insert("weight".into(), json!(tx.weight()));
    o.insert("locktime".into(), json!(tx.locktime));
    let coinbase = tx.is_coinbase();
    // Undo data: one spent output per input, never for a coinbase.
    let undo =
        prevouts.filter(|p| !coinbase && detail != Detail::Plain && p.len() == tx.inputs.len());
    let mut vin = Vec::with_capacity(tx.inputs.len());
    for (i, input) in tx.inputs.iter().enumerate() {
        let mut v = Map::new();
        if coinbase {
            v.insert("coinbase".into(), json!(hex::encode(&input.script_sig)));
        } else {
            v.insert("txid".into(), json!(hash_to_hex(&input.prev_txid)));
            v.insert("vout".into(), json!(input.prev_vout));
            v.insert(
                "scriptSig".into(),
                json!({"asm": script_asm(&input.script_sig, true), "hex": hex::encode(&input.script_sig)}),
            );
        }
        if !input.witness.is_empty() {
            v.insert(
                "txinwitness".into(),
                json!(input.witness.iter().map(hex::encode).collect::<Vec<_>>()),
            );
        }
        if let (Some(undo), Detail::FeeAndPrevouts) = (undo, detail) {
            let p = &undo[i];
            v.insert(
                "prevout".into(),
                json!({
                    "generated": p.generated,
                    "height": p.height,
                    "value": amount(coin, p.value),
                    "scriptPubKey": script_pub_key(coin, &p.script),
                }),
            );
        }
        v.insert("sequence".into(), json!(input.sequence));
        vin.push(Value::Object(v));
    }
    o.insert("vin".into(), Value::Array(vin));
    let vout: Vec<Value> = tx
        .outputs
        .iter()
        .enumerate()
        .map(|(n, (value, script))| {
            json!({"value": amount(coin, *value), "n": n, "scriptPubKey": script_pub_key(coin, script)})
        })
        .collect();
    o.insert("vout".into(), Value::Array(vout));
    if let Some(undo) = undo {
        let spent: u64 = undo.iter().map(|p| p.value).sum();
        let created: u64 = tx.outputs.iter().map(|(v, _)| v).sum();
        o.insert("fee".into(), amount(coin, spent.saturating_sub(created)));
    }
    o.insert("hex".into(), json!(hex::encode(raw)));
    o
}

/// A transaction of another family's format: the fields the coin layer parses.
fn foreign_tx_object(coin: &dyn Coin, txid: &Hash32, raw: &[u8]) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("txid".into(), json!(hash_to_hex(txid)));
    let Ok(tx) = coin.parse_tx(raw) else {
        o.insert("hex".into(), json!(hex::encode(raw)));
        return o;
    };
    let vsize = tx.vsize();
    o.insert("hash".into(), json!(hash_to_hex(txid)));
    o.insert("version".into(), json!(tx.version));
    o.insert("size".into(), json!(raw.len()));
    o.insert("vsize".into(), json!(vsize));
    o.insert(
        "weight".into(),
        json!(3 * (raw.len() - tx.witness_bytes as usize) + raw.len()),
    );
    let vin: Vec<Value> = tx
        .inputs
        .iter()
        .map(|i| json!({"txid": hash_to_hex(&i.txid), "vout": i.vout}))
        .collect();
    o.insert("vin".into(), Value::Array(vin));
    let vout: Vec<Value> = tx
        .outputs
        .iter()
        .enumerate()
        .map(|(n, out)| {
            json!({"value": amount(coin, out.value), "n": n, "scriptPubKey": script_pub_key(coin, &out.script)})
        })
        .collect();
    o.insert("vout".into(), Value::Array(vout));
    o.insert("hex".into(), json!(hex::encode(raw)));
    o
}

/// Core 31's `coinbase_tx` of a block: version, locktime, the coinbase input's sequence and
/// script, and its witness (the commitment's reserved value) when there is one.
pub(crate) fn coinbase_summary(raw: &[u8]) -> Option<Value> {
    let tx = decode_tx(raw)?;
    let input = tx.inputs.first()?;
    let mut o = Map::new();
    o.insert("version".into(), json!(tx.version));
    o.insert("locktime".into(), json!(tx.locktime));
    o.insert("sequence".into(), json!(input.sequence));
    o.insert("coinbase".into(), json!(hex::encode(&input.script_sig)));
    if let Some(first) = input.witness.first() {
        o.insert("witness".into(), json!(hex::encode(first)));
    }
    Some(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regtest() -> std::sync::Arc<dyn Coin> {
        anode_coins::lookup("Bitcoin", "regtest").expect("Bitcoin regtest")
    }

    #[test]
    fn regtest_bits_give_cores_target_difficulty_and_work() {
        let bits = 0x207f_ffff;
        assert_eq!(
            hex::encode(target_from_bits(bits)),
            "7fffff0000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(difficulty(bits), 4.656542373906925e-10);
        // Regtest's genesis has chainwork 2, each block adds 2.
        assert_eq!(
            chainwork_hex(bits, 1),
            "0000000000000000000000000000000000000000000000000000000000000002"
        );
        assert_eq!(&chainwork_hex(bits, 101)[56..], "000000ca");
        // Mainnet's minimum difficulty: 2^32 + 2^16 + 1 hashes... 0x100010001.
        assert_eq!(difficulty(0x1d00_ffff), 1.0);
        assert_eq!(&chainwork_hex(0x1d00_ffff, 1)[48..], "0000000100010001");
    }

    #[test]
    fn descriptor_checksums_match_bip380() {
        assert_eq!(
            with_descriptor_checksum("raw(deadbeef)"),
            "raw(deadbeef)#89f8spxm"
        );
    }

    #[test]
    fn x_only_keys_are_checked_against_the_curve() {
        let key = |h: &str| -> [u8; 32] { hex::decode(h).unwrap().try_into().unwrap() };
        // The generator's x, and BIP340 test-vector keys.
        for valid in [
            "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
            "f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9",
            "dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659",
        ] {
            assert!(secp256k1_x_is_valid(&key(valid)), "{valid}");
        }
        // BIP340's "public key not on the curve" and one past the field size.
        for invalid in [
            "eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34",
            "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc30",
        ] {
            assert!(!secp256k1_x_is_valid(&key(invalid)), "{invalid}");
        }
    }

    #[test]
    fn scripts_get_cores_types_addresses_and_asm() {
        let coin = regtest();
        let p2wpkh = hex::decode("0014751e76e8199196d454941c45d1b3a323f1433bd6").unwrap();
        let spk = script_pub_key(coin.as_ref(), &p2wpkh);
        assert_eq!(spk["type"], "witness_v0_keyhash");
        assert_eq!(spk["asm"], "0 751e76e8199196d454941c45d1b3a323f1433bd6");
        assert_eq!(
            spk["address"],
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
        );
        assert!(
            spk["desc"]
                .as_str()
                .unwrap()
                .starts_with("addr(bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080)#"),
            "{spk}"
        );
        let keys: Vec<&str> = spk
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["asm", "desc", "hex", "address", "type"]);

        let data = hex::decode("6a0401020304").unwrap();
        let spk = script_pub_key(coin.as_ref(), &data);
        assert_eq!(spk["type"], "nulldata");
        assert_eq!(spk["asm"], "OP_RETURN 67305985");
        assert!(spk.get("address").is_none());
        assert!(spk["desc"]
            .as_str()
            .unwrap()
            .starts_with("raw(6a0401020304)#"));

        // Bitcoin's genesis output: pay-to-pubkey, no address, a pk() descriptor.
        let p2pk = hex::decode("4104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac").unwrap();
        let spk = script_pub_key(coin.as_ref(), &p2pk);
        assert_eq!(spk["type"], "pubkey");
        assert!(spk.get("address").is_none());
        assert!(spk["desc"].as_str().unwrap().starts_with("pk(04678afd"));
        assert!(spk["asm"].as_str().unwrap().ends_with(" OP_CHECKSIG"));

        assert_eq!(output_type(&[0x51, 0x02, 0x4e, 0x73]), OutputType::Anchor);
        assert_eq!(output_type(&[0x00, 0x03, 1, 2, 3]), OutputType::Nonstandard);
        assert_eq!(output_type(&[0x52, 0x02, 1, 2]), OutputType::WitnessUnknown);
        let mut multisig = vec![0x51, 33];
        multisig.extend_from_slice(&[2; 33]);
        multisig.extend_from_slice(&[0x51, OP_CHECKMULTISIG]);
        assert_eq!(output_type(&multisig), OutputType::Multisig);
        assert!(infer_descriptor(coin.as_ref(), &multisig).starts_with("multi(1,0202"));
    }

    #[test]
    fn signature_scripts_show_the_sighash_type() {
        let mut sig = vec![0x30, 0x44, 0x02, 0x20];
        sig.extend_from_slice(&[0x11; 32]);
        sig.extend_from_slice(&[0x02, 0x20]);
        sig.extend_from_slice(&[0x22; 32]);
        sig.push(0x01);
        let mut script = vec![sig.len() as u8];
        script.extend_from_slice(&sig);
        let asm = script_asm(&script, true);
        assert!(asm.ends_with("2222[ALL]"), "{asm}");
        assert!(!script_asm(&script, false).contains('['));
        assert_eq!(script_asm(&[0x4c], false), "[error]");
        assert_eq!(script_asm(&[0x01, 0x81], false), "-1");
        assert_eq!(script_asm(&[0x00, 0x4f, 0x60], false), "0 -1 16");
    }

    #[test]
    fn transactions_decode_with_their_witness() {
        // A one-input SegWit spend: marker, flag, two witness items.
        let mut raw = vec![2, 0, 0, 0, 0, 1, 1];
        raw.extend_from_slice(&[7; 32]);
        raw.extend_from_slice(&3u32.to_le_bytes());
        raw.push(0);
        raw.extend_from_slice(&0xffff_fffdu32.to_le_bytes());
        raw.push(1);
        raw.extend_from_slice(&1000u64.to_le_bytes());
        raw.extend_from_slice(&[22, 0x00, 0x14]);
        raw.extend_from_slice(&[9; 20]);
        raw.extend_from_slice(&[2, 1, 0xaa, 2, 0xbb, 0xcc]);
        raw.extend_from_slice(&0u32.to_le_bytes());
        let tx = decode_tx(&raw).expect("decodes");
        assert_eq!(tx.inputs[0].witness, vec![vec![0xaa], vec![0xbb, 0xcc]]);
        assert_eq!(tx.stripped_size, raw.len() - 8);
        assert_eq!(tx.weight(), 3 * (raw.len() - 8) + raw.len());
        assert!(tx.signals_rbf());
        assert!(!tx.is_coinbase());
        // A byte more is no transaction.
        raw.push(0);
        assert!(decode_tx(&raw).is_none());
    }

    #[test]
    fn amounts_print_as_whole_coins() {
        let coin = regtest();
        assert_eq!(amount(coin.as_ref(), 30_000_000), json!(0.3));
        assert_eq!(amount(coin.as_ref(), 5_000_000_000), json!(50.0));
        assert_eq!(amount(coin.as_ref(), 1), json!(0.00000001));
    }
}
