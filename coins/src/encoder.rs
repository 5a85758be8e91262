//! Block encoder for chain simulators, driven by the same kinds as the parser.

use crate::coin::GenericCoin;
use crate::hash::{sha256d, sha256d_parts};
use crate::header::HeaderLayout;
use crate::params::{NetworkParams, TxFormat, TxidHash};
use crate::reader::write_varint;
use crate::script::push_data;
use crate::{merkle_root, BlockEncoder, Coin, Error, Hash32, OutPoint, TxOut};

/// Header fields of a block to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTemplate {
    /// Block version (for AuxPoW coins bit 8 is cleared: no merged-mining proof).
    pub version: u32,
    pub prev_hash: Hash32,
    pub time: u32,
    /// Compact target; regtest's `0x207fffff` needs about two attempts. Unused for
    /// headers without proof of work (FairCoin).
    pub bits: u32,
    /// Height of the block (selects the header size where it is scheduled).
    pub height: u32,
}

/// A serialized transaction and its txid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedTx {
    pub raw: Vec<u8>,
    pub txid: Hash32,
}

/// A serialized block with what callers would otherwise re-parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBlock {
    pub raw: Vec<u8>,
    /// Block hash, internal byte order.
    pub hash: Hash32,
    /// The header bytes (as served).
    pub header: Vec<u8>,
    pub txids: Vec<Hash32>,
}

/// Encoder for the Bitcoin-like families.
pub(crate) struct GenericEncoder {
    coin: Box<GenericCoin>,
}

const MAX_GRIND: u32 = 50_000_000;

impl GenericEncoder {
    /// Whether the network's kinds can be encoded: every header layout and transaction
    /// format can be written; what can be missing is the block hash. Every algorithm
    /// the network may use must be available, the `hash_rules` ones included: the
    /// caller picks version and time (the simulator's own genesis is version 1, which
    /// selects Navcoin's X13 or Electra's NIST5), and an encoder that fails for some
    /// templates would only move the error from setup to block production.
    pub(crate) fn supports(p: &NetworkParams) -> bool {
        let header_ok = match p.header.layout {
            // Any size: fields up to `time_offset` (zeros past the merkle root: Lbry's
            // claim-trie root, FairCoin's payload hash), time, bits and nonce (FairCoin:
            // creator id), then zeros to the (scheduled) size: PIVX's accumulator
            // checkpoint, HOdlcoin's birthday nonces. Decred (180) has its own writer.
            HeaderLayout::Fixed => true,
            HeaderLayout::Auxpow
            | HeaderLayout::Xaya
            | HeaderLayout::Primecoin
            | HeaderLayout::Zcoin
            | HeaderLayout::BitcoinAtom => p.header.size == 80,
            HeaderLayout::Equihash => p.header.size == 140,
        };
        header_ok && p.hash_available()
    }

    pub(crate) fn new(p: &NetworkParams) -> Self {
        GenericEncoder {
            coin: Box::new(GenericCoin::without_encoder(p.clone())),
        }
    }

    fn format(&self) -> TxFormat {
        self.coin.params().tx_format
    }

    fn segwit(&self) -> bool {
        matches!(
            self.format(),
            TxFormat::Segwit
                | TxFormat::LitecoinMweb
                | TxFormat::TimeSegwit
                | TxFormat::Navcoin
                | TxFormat::BitcoinDiamond
        )
    }

    /// Version, and the time field where the format puts one after the version.
    fn write_prefix(&self, out: &mut Vec<u8>) {
        let (version, time) = match self.format() {
            TxFormat::Time
            | TxFormat::TimeSegwit
            | TxFormat::Navcoin
            | TxFormat::Trezarcoin
            | TxFormat::Blackcoin
            | TxFormat::Electra
            | TxFormat::Eccoin
            | TxFormat::Simplicity
            | TxFormat::Tokenpay => (1u32, true),
            TxFormat::Reddcoin | TxFormat::Pivx | TxFormat::Zcoin | TxFormat::Zcash => (1, false),
            _ => (2, false),
        };
        out.extend_from_slice(&version.to_le_bytes());
        if time {
            out.extend_from_slice(&0u32.to_le_bytes());
        }
    }

    fn finish(&self, raw: Vec<u8>) -> Result<EncodedTx, Error> {
        let tx = self.coin.parse_tx(&raw)?;
        Ok(EncodedTx { raw, txid: tx.txid })
    }

    fn write_outputs(out: &mut Vec<u8>, outputs: &[TxOut]) {
        write_varint(out, outputs.len() as u64);
        for o in outputs {
            out.extend_from_slice(&o.value.to_le_bytes());
            write_varint(out, o.script.len() as u64);
            out.extend_from_slice(&o.script);
        }
    }
}

impl GenericEncoder {
    /// A Decred transaction (serialization type 0: prefix then witness). A coinbase
    /// has one null input whose signature script carries height and extra nonce.
    fn decred_tx(
        &self,
        inputs: &[OutPoint],
        coinbase: Option<(u32, u32)>,
        outputs: &[TxOut],
    ) -> Result<EncodedTx, Error> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&1u32.to_le_bytes());
        let n_in = if coinbase.is_some() { 1 } else { inputs.len() };
        write_varint(&mut out, n_in as u64);
        if coinbase.is_some() {
            out.extend_from_slice(&[0; 32]);
            out.extend_from_slice(&u32::MAX.to_le_bytes());
            out.push(0);
            out.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        for i in inputs {
            out.extend_from_slice(&i.txid);
            out.extend_from_slice(&i.vout.to_le_bytes());
            out.push(0); // regular tree
            out.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        write_varint(&mut out, outputs.len() as u64);
        for o in outputs {
            out.extend_from_slice(&o.value.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            write_varint(&mut out, o.script.len() as u64);
            out.extend_from_slice(&o.script);
        }
        out.extend_from_slice(&[0u8; 8]); // locktime, expiry
        write_varint(&mut out, n_in as u64);
        for _ in 0..n_in {
            let value_in: u64 = match coinbase {
                Some(_) => outputs.iter().map(|o| o.value).sum(),
                None => 0,
            };
            out.extend_from_slice(&value_in.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes()); // block height
            out.extend_from_slice(&u32::MAX.to_le_bytes()); // block index
            let mut sig = Vec::new();
            match coinbase {
                Some((h, extra)) => {
                    push_data(&mut sig, &h.to_le_bytes());
                    push_data(&mut sig, &extra.to_le_bytes());
                }
                None => {
                    push_data(&mut sig, &dummy_sig());
                    push_data(&mut sig, &dummy_pubkey());
                }
            }
            write_varint(&mut out, sig.len() as u64);
            out.extend_from_slice(&sig);
        }
        self.finish(out)
    }
}

/// Decred's merkle tree: BLAKE-256 of concatenated pairs.
fn decred_merkle_root(txids: &[Hash32]) -> Result<Hash32, Error> {
    crate::merkle_root_with(txids, |pair| crate::hash::HashAlgo::Blake256.compute(pair))
}

/// Minimal CScriptNum encoding of a height (BIP34).
fn script_num(n: u32) -> Vec<u8> {
    let mut v = Vec::new();
    let mut n = n;
    while n > 0 {
        v.push((n & 0xff) as u8);
        n >>= 8;
    }
    if v.last().is_some_and(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v
}

fn dummy_sig() -> Vec<u8> {
    let mut sig = vec![0x30, 0x44, 0x02, 0x20];
    sig.extend_from_slice(&[0x11; 32]);
    sig.extend_from_slice(&[0x02, 0x20]);
    sig.extend_from_slice(&[0x22; 32]);
    sig.push(0x01);
    sig
}

fn dummy_pubkey() -> Vec<u8> {
    let mut pk = vec![0x02];
    pk.extend_from_slice(&[0x33; 32]);
    pk
}

/// Compact bits to a 256-bit little-endian target.
fn target_from_bits(bits: u32) -> [u8; 32] {
    let exp = (bits >> 24) as usize;
    let mant = bits & 0x007f_ffff;
    let mut t = [0u8; 32];
    let m = mant.to_le_bytes();
    for (i, &b) in m.iter().take(3).enumerate() {
        let pos = (exp + i).checked_sub(3);
        if let Some(p) = pos.filter(|&p| p < 32) {
            t[p] = b;
        } else if pos.is_none() {
            // exponent below 3: mantissa shifted right
            let shift = 3 - exp;
            if i >= shift {
                t[i - shift] = b;
            }
        }
    }
    t
}

fn meets_target(hash: &Hash32, target: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if hash[i] != target[i] {
            return hash[i] < target[i];
        }
    }
    true
}

impl BlockEncoder for GenericEncoder {
    fn coinbase(
        &self,
        height: u32,
        extra_nonce: u32,
        outputs: &[TxOut],
    ) -> Result<EncodedTx, Error> {
        if self.format() == TxFormat::Decred {
            return self.decred_tx(&[], Some((height, extra_nonce)), outputs);
        }
        let mut out = Vec::with_capacity(128);
        self.write_prefix(&mut out);
        write_varint(&mut out, 1);
        out.extend_from_slice(&[0; 32]);
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut sig = Vec::new();
        let num = script_num(height);
        if num.is_empty() {
            sig.push(0x00);
        } else {
            push_data(&mut sig, &num);
        }
        push_data(&mut sig, &extra_nonce.to_le_bytes());
        write_varint(&mut out, sig.len() as u64);
        out.extend_from_slice(&sig);
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        Self::write_outputs(&mut out, outputs);
        out.extend_from_slice(&0u32.to_le_bytes());
        self.finish(out)
    }

    fn spend(&self, inputs: &[OutPoint], outputs: &[TxOut]) -> Result<EncodedTx, Error> {
        if inputs.is_empty() {
            return Err(Error::Unsupported(
                "a spend needs at least one input".into(),
            ));
        }
        if self.format() == TxFormat::Decred {
            return self.decred_tx(inputs, None, outputs);
        }
        let segwit = self.segwit();
        let mut out = Vec::with_capacity(64 + inputs.len() * 110 + outputs.len() * 40);
        self.write_prefix(&mut out);
        let prefix_len = out.len();
        if segwit {
            out.extend_from_slice(&[0x00, 0x01]);
        }
        // One dummy signature script (or witness) serves every input.
        let mut unlock = Vec::new();
        for item in [dummy_sig(), dummy_pubkey()] {
            if segwit {
                write_varint(&mut unlock, item.len() as u64);
                unlock.extend_from_slice(&item);
            } else {
                push_data(&mut unlock, &item);
            }
        }
        write_varint(&mut out, inputs.len() as u64);
        for i in inputs {
            out.extend_from_slice(&i.txid);
            out.extend_from_slice(&i.vout.to_le_bytes());
            if segwit {
                out.push(0);
            } else {
                write_varint(&mut out, unlock.len() as u64);
                out.extend_from_slice(&unlock);
            }
            out.extend_from_slice(&0xffff_fffeu32.to_le_bytes());
        }
        Self::write_outputs(&mut out, outputs);
        let witness_start = out.len();
        if segwit {
            for _ in inputs {
                out.push(2);
                out.extend_from_slice(&unlock);
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        // Standard formats with SHA-256d txids are hashed here, without parsing back what was
        // just written (the simulator's generator makes millions of these); the round-trip
        // test checks both agree.
        let p = self.coin.params();
        if p.txid_hash == TxidHash::Sha256d
            && matches!(self.format(), TxFormat::Legacy | TxFormat::Segwit)
        {
            let end = out.len();
            let txid = if segwit {
                sha256d_parts(&[
                    &out[..prefix_len],
                    &out[prefix_len + 2..witness_start],
                    &out[end - 4..],
                ])
            } else {
                sha256d(&out)
            };
            return Ok(EncodedTx { raw: out, txid });
        }
        self.finish(out)
    }

    fn block(&self, t: &BlockTemplate, txs: &[EncodedTx]) -> Result<EncodedBlock, Error> {
        let p = self.coin.params();
        let txids: Vec<Hash32> = txs.iter().map(|t| t.txid).collect();
        let decred = p.tx_format == TxFormat::Decred;
        let merkle = if decred {
            decred_merkle_root(&txids)?
        } else {
            merkle_root(&txids)
        };
        let mut hdr = Vec::with_capacity(1500);
        let version = match p.header.layout {
            HeaderLayout::Auxpow => t.version & !0x100,
            HeaderLayout::Zcoin => t.version & !0x1000, // no MTP
            _ => t.version,
        };
        hdr.extend_from_slice(&version.to_le_bytes());
        hdr.extend_from_slice(&t.prev_hash);
        hdr.extend_from_slice(&merkle);
        let nonce_at: Option<usize>;
        if decred {
            hdr.extend_from_slice(&[0u8; 32]); // stake root (no stake transactions)
            hdr.extend_from_slice(&1u16.to_le_bytes()); // vote bits: approve parent
            hdr.extend_from_slice(&[0u8; 6 + 2 + 1 + 1 + 4]); // final state .. pool size
            hdr.extend_from_slice(&t.bits.to_le_bytes());
            hdr.extend_from_slice(&[0u8; 8]); // stake difficulty
            hdr.extend_from_slice(&t.height.to_le_bytes());
            let size: usize = 180 + 2 + txs.iter().map(|t| t.raw.len()).sum::<usize>();
            hdr.extend_from_slice(&(size as u32).to_le_bytes());
            hdr.extend_from_slice(&t.time.to_le_bytes());
            nonce_at = Some(hdr.len());
            hdr.extend_from_slice(&[0u8; 4 + 32 + 4]); // nonce, extra data, stake version
        } else {
            let equihash = p.header.layout == HeaderLayout::Equihash;
            if equihash {
                let mut reserved = [0u8; 32];
                if p.header.fork_height.is_some() {
                    reserved[..4].copy_from_slice(&t.height.to_le_bytes());
                }
                hdr.extend_from_slice(&reserved);
            }
            if p.header.layout == HeaderLayout::Fixed {
                hdr.resize(p.header.time_offset, 0);
            }
            hdr.extend_from_slice(&t.time.to_le_bytes());
            if p.header.proof_of_work {
                hdr.extend_from_slice(&t.bits.to_le_bytes());
                nonce_at = Some(hdr.len());
                hdr.extend_from_slice(&[0u8; 4]);
            } else {
                // Creator id: a simulated chain has no validator set; blocks without
                // proof of work need no nonce to grind.
                hdr.extend_from_slice(&0u32.to_le_bytes());
                nonce_at = None;
            }
            match p.header.layout {
                HeaderLayout::Equihash => {
                    hdr.extend_from_slice(&[0u8; 28]);
                    hdr.push(0); // empty solution
                }
                HeaderLayout::Xaya => {
                    hdr.push(0x01); // stand-alone SHA-256d mining, no merged mining
                    hdr.extend_from_slice(&t.bits.to_le_bytes());
                    hdr.extend_from_slice(&[0u8; 80]); // "fake" header
                }
                HeaderLayout::Primecoin => hdr.extend_from_slice(&[1, 2]), // multiplier 2
                HeaderLayout::BitcoinAtom
                    if p.header.fork_height.is_some_and(|f| t.height >= f) =>
                {
                    hdr.extend_from_slice(&[0u8; 4]); // flags: proof of work
                }
                HeaderLayout::Fixed => {
                    let size = crate::header::scheduled_size(&p.header, t.height);
                    hdr.resize(size.max(hdr.len()), 0);
                }
                _ => {}
            }
        }
        let served = p.header.truncated_size.unwrap_or(hdr.len()).min(hdr.len());
        let hash = match nonce_at {
            Some(at) => {
                let target = target_from_bits(t.bits);
                let mut found = None;
                for nonce in 0..MAX_GRIND {
                    hdr[at..at + 4].copy_from_slice(&nonce.to_le_bytes());
                    let h = self.coin.header_hash(&hdr[..served])?;
                    if meets_target(&h, &target) {
                        found = Some(h);
                        break;
                    }
                }
                found.ok_or_else(|| {
                    Error::Unsupported(format!("no nonce meets bits {:#010x}", t.bits))
                })?
            }
            None => self.coin.header_hash(&hdr[..served])?,
        };
        let mut raw = hdr.clone();
        write_varint(&mut raw, txs.len() as u64);
        for tx in txs {
            raw.extend_from_slice(&tx.raw);
        }
        if decred {
            write_varint(&mut raw, 0); // no stake transactions
        }
        hdr.truncate(served);
        Ok(EncodedBlock {
            raw,
            hash,
            header: hdr,
            txids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transactions of every network's format round-trip, also where the network has
    /// no encoder because its block hash is unavailable: only `block` needs the hash.
    #[test]
    fn transactions_round_trip_on_every_network() {
        let outputs = [
            TxOut {
                value: 5_000,
                script: vec![0x51],
            },
            TxOut {
                value: 0,
                script: vec![0x6a, 0x01, 0x07],
            },
        ];
        let spent = [
            OutPoint {
                txid: [3; 32],
                vout: 1,
            },
            OutPoint {
                txid: [4; 32],
                vout: 0,
            },
        ];
        for p in crate::builtin_networks().expect("networks") {
            if p.tx_format == TxFormat::Decred && !cfg!(feature = "decred") {
                continue; // Decred txids are BLAKE-256
            }
            let enc = GenericEncoder::new(p);
            let coin = GenericCoin::without_encoder(p.clone());
            let cb = enc.coinbase(17, 9, &outputs).expect("coinbase");
            let parsed = coin.parse_tx(&cb.raw).expect("parse coinbase");
            assert!(parsed.is_coinbase, "{}", p.id());
            assert!(parsed.inputs.is_empty(), "{}", p.id());
            assert_eq!(parsed.outputs, outputs, "{}", p.id());
            assert_eq!(parsed.txid, cb.txid, "{}", p.id());
            let sp = enc.spend(&spent, &outputs).expect("spend");
            let parsed = coin.parse_tx(&sp.raw).expect("parse spend");
            assert!(!parsed.is_coinbase, "{}", p.id());
            assert_eq!(parsed.inputs, spent, "{}", p.id());
            assert_eq!(parsed.outputs, outputs, "{}", p.id());
            // The txid a spend reports is the one the parser computes (the encoder hashes
            // standard formats itself rather than parsing what it wrote).
            assert_eq!(parsed.txid, sp.txid, "{}", p.id());
        }
    }

    #[test]
    fn targets() {
        let t = target_from_bits(0x1d00ffff);
        assert_eq!(t[26], 0xff);
        assert_eq!(t[27], 0xff);
        assert_eq!(t[28], 0x00);
        let t = target_from_bits(0x207fffff);
        assert_eq!(t[31], 0x7f);
        assert!(meets_target(&[0; 32], &t));
        assert!(!meets_target(&[0xff; 32], &t));
    }
}
