//! Transaction parsers, one walker parametrised by the format kind.
//!
//! The walkers never copy the transaction: the txid is hashed from slices of the
//! input buffer (for SegWit: the parts without marker, flag and witness).

use crate::hash;
use crate::params::{TxFormat, TxidHash};
use crate::reader::{Reader, Result};
use crate::{Error, Hash32, OutPoint, ParsedTx, TxOut};

/// Smallest possible serialized input (32 + 4 + 1 + 4) and output (8 + 1).
const MIN_INPUT: usize = 41;
const MIN_OUTPUT: usize = 9;
/// Smallest serialized transaction: version, two counts, locktime.
pub(crate) const MIN_TX: usize = 10;

/// What a transaction parser needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxRules {
    pub format: TxFormat,
    pub txid: TxidHash,
}

fn txid_of(rules: &TxRules, parts: &[&[u8]]) -> Result<Hash32> {
    match rules.txid {
        TxidHash::Sha256d => Ok(hash::sha256d_parts(parts)),
        TxidHash::Sha256 => Ok(hash::sha256_parts(parts)),
        TxidHash::Blake256 => blake256_parts(parts),
    }
}

#[cfg(feature = "decred")]
fn blake256_parts(parts: &[&[u8]]) -> Result<Hash32> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut buf = Vec::with_capacity(total);
    for p in parts {
        buf.extend_from_slice(p);
    }
    Ok(hash::blake256(&buf))
}

#[cfg(not(feature = "decred"))]
fn blake256_parts(_parts: &[&[u8]]) -> Result<Hash32> {
    Err(Error::HashUnavailable(
        "blake256 (cargo feature `decred`)".into(),
    ))
}

/// Parses one transaction at the reader's position.
pub(crate) fn parse_tx(r: &mut Reader<'_>, rules: &TxRules) -> Result<ParsedTx> {
    match rules.format {
        TxFormat::Zcash => parse_zcash(r, rules),
        TxFormat::Decred => parse_decred(r, rules),
        _ => parse_bitcoinish(r, rules),
    }
}

/// Skips one transaction (used inside AuxPoW headers).
pub(crate) fn skip_tx(r: &mut Reader<'_>, rules: &TxRules) -> Result<()> {
    // Txid hashing of one parent coinbase per header is cheap; reuse the parser.
    let rules = TxRules {
        format: rules.format,
        txid: TxidHash::Sha256d,
    };
    parse_tx(r, &rules).map(|_| ())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InputQuirk {
    None,
    ZcoinSigma,
    TokenPayStealth,
}

struct Inputs {
    prevouts: Vec<OutPoint>,
    count: usize,
    is_coinbase: bool,
}

fn read_inputs(r: &mut Reader<'_>, quirk: InputQuirk) -> Result<Inputs> {
    let count = r.count(MIN_INPUT, "bad input count")?;
    let mut prevouts = Vec::with_capacity(count);
    let mut is_coinbase = false;
    for i in 0..count {
        let txid = r.hash("truncated input")?;
        let vout = r.u32("truncated input")?;
        let script = r.var_bytes("bad input script")?;
        r.skip(4, "truncated input sequence")?;
        if vout == u32::MAX && txid == [0; 32] {
            if i == 0 {
                is_coinbase = true;
            }
            continue;
        }
        let coinbase_like = match quirk {
            InputQuirk::None => false,
            InputQuirk::ZcoinSigma => script.first() == Some(&0xc4),
            InputQuirk::TokenPayStealth => {
                script.len() >= 2 + 33 + 32 + 32 && script[0] == 0x6a && script[1] == 0xb9
            }
        };
        if !coinbase_like {
            prevouts.push(OutPoint { txid, vout });
        }
    }
    Ok(Inputs {
        prevouts,
        count,
        is_coinbase,
    })
}

fn read_outputs(r: &mut Reader<'_>) -> Result<Vec<TxOut>> {
    let count = r.count(MIN_OUTPUT, "bad output count")?;
    let mut outs = Vec::with_capacity(count);
    for _ in 0..count {
        let value = r.u64("truncated output value")?;
        let script = r.var_bytes("bad output script")?;
        outs.push(TxOut {
            value,
            script: script.to_vec(),
        });
    }
    Ok(outs)
}

fn skip_witness(r: &mut Reader<'_>, inputs: usize) -> Result<()> {
    for _ in 0..inputs {
        let items = r.count(1, "bad witness item count")?;
        for _ in 0..items {
            r.var_bytes("bad witness item")?;
        }
    }
    Ok(())
}

/// Bitcoin-style formats: legacy, SegWit, MWEB and the time-field variants.
fn parse_bitcoinish(r: &mut Reader<'_>, rules: &TxRules) -> Result<ParsedTx> {
    use TxFormat as F;
    let buf = r.buf();
    let start = r.pos();
    let version = r.u32("truncated tx version")?;
    let ver = version as i32;
    let time_after_version = match rules.format {
        F::Time | F::TimeSegwit | F::Navcoin | F::Trezarcoin | F::Eccoin | F::Tokenpay => true,
        F::Blackcoin => ver < 2,
        F::Electra => ver != 7,
        F::Simplicity => ver < 3,
        _ => false,
    };
    if time_after_version {
        r.skip(4, "truncated tx time")?;
    }
    if rules.format == F::BitcoinDiamond && ver == 12 {
        r.skip(32, "truncated tx previous-block hash")?;
    }
    let prefix_end = r.pos();
    let segwit_capable = matches!(
        rules.format,
        F::Segwit | F::LitecoinMweb | F::TimeSegwit | F::Navcoin | F::BitcoinDiamond
    );
    let mut flag = 0u8;
    if segwit_capable && r.peek_u8_at(0) == Some(0) {
        if let Some(f) = r.peek_u8_at(1).filter(|&f| f != 0) {
            flag = f;
            r.skip(2, "truncated segwit marker")?;
        }
    }
    let body_start = r.pos();
    let quirk = match rules.format {
        F::Zcoin => InputQuirk::ZcoinSigma,
        F::Tokenpay => InputQuirk::TokenPayStealth,
        _ => InputQuirk::None,
    };
    let inputs = read_inputs(r, quirk)?;
    let outputs = read_outputs(r)?;
    let body_end = r.pos();
    if flag != 0 {
        let (witness, mweb) = if rules.format == F::LitecoinMweb {
            if flag & !0x09 != 0 {
                return Err(r.err("unknown transaction flag"));
            }
            (flag & 1 != 0, flag & 8 != 0)
        } else {
            if flag != 1 {
                return Err(r.err("unknown transaction flag"));
            }
            (true, false)
        };
        if witness {
            skip_witness(r, inputs.count)?;
        }
        if mweb && r.u8("truncated MWEB data")? != 0 {
            return Err(Error::Unsupported(
                "Litecoin transaction with MWEB data (mempool only)".into(),
            ));
        }
    }
    let wit_end = r.pos();
    r.skip(4, "truncated locktime")?;
    let low = version & 0xffff;
    let tx_type = version >> 16;
    match rules.format {
        F::Navcoin | F::Trezarcoin if ver >= 2 => {
            r.var_bytes("bad tx string after locktime")?;
        }
        F::Reddcoin if ver > 1 => r.skip(4, "truncated tx time")?,
        F::Eccoin if ver > 1 => r.skip(32, "truncated ECCoin extra data")?,
        F::Dash if low >= 3 && tx_type != 0 => {
            r.var_bytes("bad DIP2 extra payload")?;
        }
        F::Pivx => {
            let (v, t) = if tx_type != 0 && low >= 3 {
                (low, tx_type)
            } else {
                (version, 0)
            };
            if v >= 3 {
                if r.u8("truncated Sapling data flag")? != 0 {
                    r.skip(8, "truncated Sapling value balance")?;
                    let n = r.count(384, "bad Sapling spend count")?;
                    r.skip_n(n as u64, 384, "truncated Sapling spends")?;
                    let n = r.count(948, "bad Sapling output count")?;
                    r.skip_n(n as u64, 948, "truncated Sapling outputs")?;
                    r.skip(64, "truncated Sapling binding signature")?;
                }
                if t != 0 && r.u8("truncated extra payload flag")? != 0 {
                    r.var_bytes("bad extra payload")?;
                }
            }
        }
        _ => {}
    }
    let end = r.pos();
    let (txid, witness_bytes) = if flag != 0 {
        let parts: [&[u8]; 3] = [
            &buf[start..prefix_end],
            &buf[body_start..body_end],
            &buf[wit_end..end],
        ];
        let wb = (body_start - prefix_end) + (wit_end - body_end);
        (txid_of(rules, &parts)?, wb as u32)
    } else {
        (txid_of(rules, &[&buf[start..end]])?, 0)
    };
    Ok(ParsedTx {
        txid,
        inputs: inputs.prevouts,
        outputs,
        is_coinbase: inputs.is_coinbase,
        range: start..end,
        version,
        witness_bytes,
    })
}

/// Zcash v1-v5 (v5 in [`parse_zcash_v5`]).
fn parse_zcash(r: &mut Reader<'_>, rules: &TxRules) -> Result<ParsedTx> {
    let buf = r.buf();
    let start = r.pos();
    let header = r.u32("truncated tx version")?;
    let overwintered = header >> 31 == 1;
    let version = header & 0x7fff_ffff;
    let group_id = if overwintered {
        Some(r.u32("truncated version group id")?)
    } else {
        None
    };
    if version >= 5 {
        return match (group_id, version) {
            (Some(V5_GROUP_ID), 5) => parse_zcash_v5(r, start, header),
            (Some(_), 5) => Err(Error::Malformed {
                height: None,
                offset: start + 4,
                what: "unknown Zcash v5 version group id",
            }),
            _ => Err(Error::Unsupported(format!(
                "Zcash transaction version {version} (overwintered: {overwintered})"
            ))),
        };
    }
    let v3 = overwintered && version == 3;
    let v4 = overwintered && version == 4;
    let inputs = read_inputs(r, InputQuirk::None)?;
    let outputs = read_outputs(r)?;
    r.skip(4, "truncated locktime")?;
    if v3 || v4 {
        r.skip(4, "truncated expiry height")?;
    }
    let mut shielded = false;
    if v4 {
        r.skip(8, "truncated value balance")?;
        let spends = r.count(384, "bad shielded spend count")?;
        r.skip_n(spends as u64, 384, "truncated shielded spends")?;
        let outs = r.count(948, "bad shielded output count")?;
        r.skip_n(outs as u64, 948, "truncated shielded outputs")?;
        shielded = spends > 0 || outs > 0;
    }
    if version >= 2 {
        let size = if v4 { 1698 } else { 1802 };
        let js = r.count(size, "bad JoinSplit count")?;
        if js > 0 {
            r.skip_n(js as u64, size, "truncated JoinSplits")?;
            r.skip(96, "truncated JoinSplit key and signature")?;
        }
    }
    if v4 && shielded {
        r.skip(64, "truncated binding signature")?;
    }
    let end = r.pos();
    Ok(ParsedTx {
        txid: txid_of(rules, &[&buf[start..end]])?,
        inputs: inputs.prevouts,
        outputs,
        is_coinbase: inputs.is_coinbase,
        range: start..end,
        version: header,
        witness_bytes: 0,
    })
}

/// NU5 version group id (ZIP 225).
const V5_GROUP_ID: u32 = 0x26A7_270A;
/// Serialized sizes of the ZIP 225 shielded descriptions without their proofs and
/// signatures, which follow in separate arrays.
const SAPLING_SPEND_V5: usize = 96;
const SAPLING_OUTPUT_V5: usize = 756;
const ORCHARD_ACTION: usize = 820;
const GROTH_PROOF: usize = 192;
const SIGNATURE: usize = 64;

/// Where the parts of a v5 transaction that feed its txid lie in the buffer.
struct V5Layout {
    /// Version through expiry height (20 bytes).
    header: std::ops::Range<usize>,
    branch_id: u32,
    /// Inputs including their count.
    inputs: std::ops::Range<usize>,
    /// Outputs after their count.
    outputs: std::ops::Range<usize>,
    n_inputs: usize,
    n_outputs: usize,
    sapling_spends: std::ops::Range<usize>,
    sapling_outputs: std::ops::Range<usize>,
    sapling_value_balance: Option<std::ops::Range<usize>>,
    sapling_anchor: Option<std::ops::Range<usize>>,
    orchard_actions: std::ops::Range<usize>,
    /// Flags, value balance and anchor (41 contiguous bytes) when there are actions.
    orchard_tail: Option<std::ops::Range<usize>>,
}

/// Zcash v5 (NU5, ZIP 225): header fields first, then the transparent, Sapling and
/// Orchard bundles, each with its proofs and signatures after its effecting data.
/// `r` is positioned after the version group id.
fn parse_zcash_v5(r: &mut Reader<'_>, start: usize, header: u32) -> Result<ParsedTx> {
    let branch_id = r.u32("truncated consensus branch id")?;
    r.skip(8, "truncated lock time and expiry height")?;
    let header_range = start..r.pos();
    let inputs_start = r.pos();
    let inputs = read_inputs(r, InputQuirk::None)?;
    let inputs_range = inputs_start..r.pos();
    let n_outputs_at = r.pos();
    let outputs = read_outputs(r)?;
    // The count was validated by `read_outputs`; re-reading it only finds its length.
    let mut count_reader = Reader::at(r.buf(), n_outputs_at);
    count_reader.varint("bad output count")?;
    let outputs_range = count_reader.pos()..r.pos();

    let n_spends = r.count(SAPLING_SPEND_V5, "bad Sapling spend count")?;
    let spends_start = r.pos();
    r.skip_n(
        n_spends as u64,
        SAPLING_SPEND_V5,
        "truncated Sapling spends",
    )?;
    let sapling_spends = spends_start..r.pos();
    let n_souts = r.count(SAPLING_OUTPUT_V5, "bad Sapling output count")?;
    let souts_start = r.pos();
    r.skip_n(
        n_souts as u64,
        SAPLING_OUTPUT_V5,
        "truncated Sapling outputs",
    )?;
    let sapling_outputs = souts_start..r.pos();
    let mut sapling_value_balance = None;
    let mut sapling_anchor = None;
    if n_spends + n_souts > 0 {
        let at = r.pos();
        r.skip(8, "truncated Sapling value balance")?;
        sapling_value_balance = Some(at..r.pos());
    }
    if n_spends > 0 {
        let at = r.pos();
        r.skip(32, "truncated Sapling anchor")?;
        sapling_anchor = Some(at..r.pos());
    }
    r.skip_n(
        n_spends as u64,
        GROTH_PROOF + SIGNATURE,
        "truncated Sapling spend proofs",
    )?;
    r.skip_n(
        n_souts as u64,
        GROTH_PROOF,
        "truncated Sapling output proofs",
    )?;
    if n_spends + n_souts > 0 {
        r.skip(SIGNATURE, "truncated Sapling binding signature")?;
    }

    let n_actions = r.count(ORCHARD_ACTION, "bad Orchard action count")?;
    let actions_start = r.pos();
    r.skip_n(
        n_actions as u64,
        ORCHARD_ACTION,
        "truncated Orchard actions",
    )?;
    let orchard_actions = actions_start..r.pos();
    let mut orchard_tail = None;
    if n_actions > 0 {
        let at = r.pos();
        r.skip(
            1 + 8 + 32,
            "truncated Orchard flags, value balance and anchor",
        )?;
        orchard_tail = Some(at..r.pos());
        r.var_bytes("bad Orchard proofs")?;
        r.skip_n(n_actions as u64, SIGNATURE, "truncated Orchard signatures")?;
        r.skip(SIGNATURE, "truncated Orchard binding signature")?;
    }
    let end = r.pos();
    let layout = V5Layout {
        header: header_range,
        branch_id,
        inputs: inputs_range,
        outputs: outputs_range,
        n_inputs: inputs.count,
        n_outputs: outputs.len(),
        sapling_spends,
        sapling_outputs,
        sapling_value_balance,
        sapling_anchor,
        orchard_actions,
        orchard_tail,
    };
    Ok(ParsedTx {
        txid: zip244_txid(r.buf(), &layout)?,
        inputs: inputs.prevouts,
        outputs,
        is_coinbase: inputs.is_coinbase,
        range: start..end,
        version: header,
        witness_bytes: 0,
    })
}

/// ZIP 244 txid: a BLAKE2b-256 tree over the header, transparent, Sapling and Orchard
/// parts, each node with its own personalisation, the root's naming the branch id.
fn zip244_txid(buf: &[u8], l: &V5Layout) -> Result<Hash32> {
    use hash::{blake2b_personal as b2, PersonalBlake2b};
    let header = b2(b"ZTxIdHeadersHash", &[&buf[l.header.clone()]]);

    let transparent = if l.n_inputs == 0 && l.n_outputs == 0 {
        b2(b"ZTxIdTranspaHash", &[])
    } else {
        let mut prevouts = PersonalBlake2b::new(b"ZTxIdPrevoutHash");
        let mut sequences = PersonalBlake2b::new(b"ZTxIdSequencHash");
        let mut r = Reader::at(&buf[..l.inputs.end], l.inputs.start);
        let n = r.varint("bad input count")?;
        for _ in 0..n {
            prevouts.update(r.take(36, "truncated input")?);
            r.var_bytes("bad input script")?;
            sequences.update(r.take(4, "truncated input sequence")?);
        }
        let outputs = b2(b"ZTxIdOutputsHash", &[&buf[l.outputs.clone()]]);
        b2(
            b"ZTxIdTranspaHash",
            &[&prevouts.finalize(), &sequences.finalize(), &outputs],
        )
    };

    let spends = &buf[l.sapling_spends.clone()];
    let souts = &buf[l.sapling_outputs.clone()];
    let sapling = match &l.sapling_value_balance {
        None => b2(b"ZTxIdSaplingHash", &[]),
        Some(balance) => {
            let spends_digest = if spends.is_empty() {
                b2(b"ZTxIdSSpendsHash", &[])
            } else {
                let anchor = l.sapling_anchor.clone().map_or(&[][..], |a| &buf[a]);
                let mut compact = PersonalBlake2b::new(b"ZTxIdSSpendCHash");
                let mut noncompact = PersonalBlake2b::new(b"ZTxIdSSpendNHash");
                for s in spends.chunks_exact(SAPLING_SPEND_V5) {
                    // cv, nullifier, rk
                    compact.update(&s[32..64]);
                    noncompact.update(&s[..32]);
                    noncompact.update(anchor);
                    noncompact.update(&s[64..96]);
                }
                b2(
                    b"ZTxIdSSpendsHash",
                    &[&compact.finalize(), &noncompact.finalize()],
                )
            };
            let outputs_digest = if souts.is_empty() {
                b2(b"ZTxIdSOutputHash", &[])
            } else {
                let mut compact = PersonalBlake2b::new(b"ZTxIdSOutC__Hash");
                let mut memos = PersonalBlake2b::new(b"ZTxIdSOutM__Hash");
                let mut noncompact = PersonalBlake2b::new(b"ZTxIdSOutN__Hash");
                for o in souts.chunks_exact(SAPLING_OUTPUT_V5) {
                    // cv 0..32, cmu 32..64, epk 64..96, enc 96..676, out 676..756;
                    // the note plaintext's first 52 bytes are what light clients need.
                    compact.update(&o[32..148]);
                    memos.update(&o[148..660]);
                    noncompact.update(&o[..32]);
                    noncompact.update(&o[660..]);
                }
                b2(
                    b"ZTxIdSOutputHash",
                    &[
                        &compact.finalize(),
                        &memos.finalize(),
                        &noncompact.finalize(),
                    ],
                )
            };
            b2(
                b"ZTxIdSaplingHash",
                &[&spends_digest, &outputs_digest, &buf[balance.clone()]],
            )
        }
    };

    let orchard = match &l.orchard_tail {
        None => b2(b"ZTxIdOrchardHash", &[]),
        Some(tail) => {
            let mut compact = PersonalBlake2b::new(b"ZTxIdOrcActCHash");
            let mut memos = PersonalBlake2b::new(b"ZTxIdOrcActMHash");
            let mut noncompact = PersonalBlake2b::new(b"ZTxIdOrcActNHash");
            for a in buf[l.orchard_actions.clone()].chunks_exact(ORCHARD_ACTION) {
                // cv 0..32, nf 32..64, rk 64..96, cmx 96..128, epk 128..160,
                // enc 160..740, out 740..820
                compact.update(&a[32..64]);
                compact.update(&a[96..212]);
                memos.update(&a[212..724]);
                noncompact.update(&a[..32]);
                noncompact.update(&a[64..96]);
                noncompact.update(&a[724..]);
            }
            b2(
                b"ZTxIdOrchardHash",
                &[
                    &compact.finalize(),
                    &memos.finalize(),
                    &noncompact.finalize(),
                    &buf[tail.clone()],
                ],
            )
        }
    };

    let mut personal = *b"ZcashTxHash_\0\0\0\0";
    personal[12..].copy_from_slice(&l.branch_id.to_le_bytes());
    Ok(b2(&personal, &[&header, &transparent, &sapling, &orchard]))
}

/// Decred: prefix (inputs without scripts, versioned outputs, locktime, expiry),
/// then the witness (one entry per input). txid = BLAKE-256 of the prefix
/// serialized as type 1 ("no witness").
fn parse_decred(r: &mut Reader<'_>, rules: &TxRules) -> Result<ParsedTx> {
    let buf = r.buf();
    let start = r.pos();
    let version = r.u32("truncated tx version")?;
    let ser_type = version >> 16;
    if ser_type != 0 && ser_type != 1 {
        return Err(r.err("unsupported Decred serialization type"));
    }
    let n_in = r.count(41, "bad input count")?;
    let mut prevouts = Vec::with_capacity(n_in);
    let mut is_coinbase = false;
    for i in 0..n_in {
        let txid = r.hash("truncated input")?;
        let vout = r.u32("truncated input")?;
        r.skip(1 + 4, "truncated input")?;
        if vout == u32::MAX && txid == [0; 32] {
            if i == 0 {
                is_coinbase = true;
            }
            continue;
        }
        prevouts.push(OutPoint { txid, vout });
    }
    let n_out = r.count(11, "bad output count")?;
    let mut outputs = Vec::with_capacity(n_out);
    for _ in 0..n_out {
        let value = r.u64("truncated output value")?;
        r.skip(2, "truncated script version")?;
        let script = r.var_bytes("bad output script")?;
        outputs.push(TxOut {
            value,
            script: script.to_vec(),
        });
    }
    r.skip(8, "truncated locktime and expiry")?;
    let prefix_end = r.pos();
    if ser_type == 0 {
        let n = r.count(16 + 1, "bad witness count")?;
        if n != n_in {
            return Err(r.err("witness count differs from input count"));
        }
        for _ in 0..n {
            r.skip(16, "truncated witness")?;
            r.var_bytes("bad signature script")?;
        }
    }
    let end = r.pos();
    let head = (0x10000 | (version & 0xffff)).to_le_bytes();
    let txid = txid_of(
        &TxRules {
            txid: TxidHash::Blake256,
            ..*rules
        },
        &[&head, &buf[start + 4..prefix_end]],
    )?;
    Ok(ParsedTx {
        txid,
        inputs: prevouts,
        outputs,
        is_coinbase,
        range: start..end,
        version,
        witness_bytes: (end - prefix_end) as u32,
    })
}

/// Witness stacks of a SegWit-family transaction (not on the hot path; for tests
/// and tools). Empty when the transaction has no witness.
pub(crate) fn witnesses(raw: &[u8], rules: &TxRules) -> Result<Vec<Vec<Vec<u8>>>> {
    let mut r = Reader::new(raw);
    let tx = parse_tx(&mut r, rules)?;
    if tx.witness_bytes == 0 || rules.format == TxFormat::Decred {
        return Ok(Vec::new());
    }
    // Re-walk to the witness section.
    let mut r = Reader::new(raw);
    r.skip(4, "version")?;
    if matches!(rules.format, TxFormat::TimeSegwit | TxFormat::Navcoin) {
        r.skip(4, "time")?;
    }
    if rules.format == TxFormat::BitcoinDiamond && tx.version == 12 {
        r.skip(32, "prev block")?;
    }
    r.skip(2, "marker")?;
    let inputs = read_inputs(&mut r, InputQuirk::None)?;
    read_outputs(&mut r)?;
    let mut all = Vec::with_capacity(inputs.count);
    for _ in 0..inputs.count {
        let n = r.count(1, "bad witness item count")?;
        let mut stack = Vec::with_capacity(n);
        for _ in 0..n {
            stack.push(r.var_bytes("bad witness item")?.to_vec());
        }
        all.push(stack);
    }
    Ok(all)
}
