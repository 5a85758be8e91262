//! The one data-driven [`Coin`] implementation: every behaviour is chosen by the
//! kinds named in the network's parameters.

use crate::encoder::GenericEncoder;
use crate::hash::{self, HashAlgo};
use crate::header::{self, HeaderLayout};
use crate::params::{FeeStyle, GenesisRule, NameIndex, NetworkParams, RpcDialect, TxFormat};
use crate::reader::Reader;
use crate::tx::{self, TxRules, MIN_TX};
use crate::{address, script};
use crate::{BlockEncoder, Coin, Error, Hash32, ParsedBlock, ParsedTx, RpcInfo};

/// A coin built from [`NetworkParams`].
pub struct GenericCoin {
    params: NetworkParams,
    rules: TxRules,
    encoder: Option<Box<GenericEncoder>>,
}

impl GenericCoin {
    /// Builds a coin from validated parameters.
    pub fn new(params: NetworkParams) -> Self {
        let rules = TxRules {
            format: params.tx_format,
            txid: params.txid_hash,
        };
        let encoder =
            GenericEncoder::supports(&params).then(|| Box::new(GenericEncoder::new(&params)));
        GenericCoin {
            params,
            rules,
            encoder,
        }
    }

    pub(crate) fn without_encoder(params: NetworkParams) -> Self {
        let rules = TxRules {
            format: params.tx_format,
            txid: params.txid_hash,
        };
        GenericCoin {
            params,
            rules,
            encoder: None,
        }
    }

    /// Witness stacks of a SegWit-family transaction (tools and tests; not hot path).
    pub fn tx_witnesses(&self, raw: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, Error> {
        tx::witnesses(raw, &self.rules)
    }

    fn algo_for(&self, header: &[u8]) -> HashAlgo {
        let spec = &self.params.header;
        if spec.hash_rules.is_empty() || header.len() < 80 {
            return spec.hash;
        }
        let version = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let Some(time) = spec.time(header) else {
            return spec.hash;
        };
        spec.hash_rules
            .iter()
            .find(|r| r.matches(version, time))
            .map(|r| r.hash)
            .unwrap_or(spec.hash)
    }
}

fn too_short(len: usize) -> Error {
    Error::Malformed {
        height: None,
        offset: len,
        what: "header too short",
    }
}

impl Coin for GenericCoin {
    fn params(&self) -> &NetworkParams {
        &self.params
    }

    fn header_hash(&self, header: &[u8]) -> Result<Hash32, Error> {
        let spec = &self.params.header;
        let min = if self.params.tx_format == TxFormat::Decred {
            180
        } else {
            80
        };
        if header.len() < min {
            return Err(too_short(header.len()));
        }
        // AuxPoW headers hash their fixed part only, even when given with the proof.
        let prefix = match (spec.hash_prefix, spec.layout) {
            (Some(n), _) => Some(n),
            (None, HeaderLayout::Auxpow) => Some(spec.size),
            _ => None,
        };
        let data = match prefix {
            Some(n) => header.get(..n).ok_or_else(|| too_short(header.len()))?,
            None => header,
        };
        // Special SHA-256d rules that depend on the header's own fields.
        if spec.layout == HeaderLayout::BitcoinAtom {
            let mut buf = data[..80].to_vec();
            if data.len() >= 84 {
                let flags = u32::from_le_bytes([data[80], data[81], data[82], data[83]]);
                if flags & 1 != 0 {
                    buf.extend_from_slice(&[1, 0, 0, 0]);
                }
            }
            return Ok(hash::sha256d(&buf));
        }
        if let (Some(fork), HeaderLayout::Equihash) = (spec.fork_height, spec.layout) {
            // Bitcoin Gold: the reserved field starts with the height; older blocks
            // hash as the Bitcoin header they were.
            if data.len() >= 140 {
                let height = u32::from_le_bytes([data[68], data[69], data[70], data[71]]);
                if height < fork {
                    let mut buf = Vec::with_capacity(80);
                    buf.extend_from_slice(&data[..68]);
                    buf.extend_from_slice(&data[100..112]);
                    return Ok(hash::sha256d(&buf));
                }
            }
        }
        match self.algo_for(data) {
            HashAlgo::Genesis => Ok(self.params.genesis_hash),
            algo => algo.compute(data),
        }
    }

    fn header_len_at(&self, height: u32) -> Option<usize> {
        header::served_len_at(&self.params.header, height)
    }

    fn parse_block(&self, raw: &[u8], height: Option<u32>) -> Result<ParsedBlock, Error> {
        let at = |e: Error| e.at_height(height);
        let spec = &self.params.header;
        let full_len = header::full_len(spec, raw, height, &self.rules).map_err(at)?;
        let served = spec.truncated_size.unwrap_or(full_len).min(full_len);
        let header = &raw[..served];
        let prev_hash = self.header_prev_hash(header).map_err(at)?;
        let (hash, hash_available) = match self.header_hash(header) {
            Ok(h) => (h, true),
            Err(Error::HashUnavailable(_)) => ([0; 32], false),
            Err(e) => return Err(at(e)),
        };
        let mut r = Reader::at(raw, full_len);
        let mut txs = Vec::new();
        let skip_txs = self.params.genesis == GenesisRule::NoTransactions && height == Some(0);
        if !skip_txs {
            let trees = if self.params.tx_format == TxFormat::Decred {
                2
            } else {
                1
            };
            for _ in 0..trees {
                let n = r.count(MIN_TX, "bad transaction count").map_err(at)?;
                txs.reserve(n);
                for _ in 0..n {
                    txs.push(tx::parse_tx(&mut r, &self.rules).map_err(at)?);
                }
            }
        }
        Ok(ParsedBlock {
            header: header.to_vec(),
            full_header_len: full_len,
            hash,
            hash_available,
            prev_hash,
            txs,
            trailing_bytes: r.remaining(),
        })
    }

    fn block_header(&self, raw: &[u8], height: Option<u32>) -> Result<Vec<u8>, Error> {
        let spec = &self.params.header;
        let full_len =
            header::full_len(spec, raw, height, &self.rules).map_err(|e| e.at_height(height))?;
        let served = spec.truncated_size.unwrap_or(full_len).min(full_len);
        Ok(raw[..served].to_vec())
    }

    fn parse_tx(&self, raw: &[u8]) -> Result<ParsedTx, Error> {
        let mut r = Reader::new(raw);
        let tx = tx::parse_tx(&mut r, &self.rules)?;
        if r.remaining() != 0 {
            return Err(r.err("trailing bytes after transaction"));
        }
        Ok(tx)
    }

    fn script_hash(&self, script: &[u8]) -> Hash32 {
        hash::sha256(script::strip_name_prefix(script, self.params.name_index))
    }

    fn name_index_script(&self, script: &[u8]) -> Option<Vec<u8>> {
        match self.params.name_index {
            NameIndex::Namecoin | NameIndex::Xaya => {
                script::name_index_script(script, self.params.name_index)
            }
            _ => None,
        }
    }

    fn address_to_script(&self, addr: &str) -> Result<Vec<u8>, Error> {
        address::address_to_script(&self.params, addr.trim())
    }

    fn script_to_address(&self, script: &[u8]) -> Option<String> {
        address::script_to_address(
            &self.params,
            script::strip_name_prefix(script, self.params.name_index),
        )
    }

    fn rpc(&self) -> RpcInfo {
        let d = self.params.rpc.dialect;
        let fixed = matches!(d, RpcDialect::FixedFee | RpcDialect::FixedFeeLegacy);
        RpcInfo {
            dialect: d,
            fee_style: if fixed {
                FeeStyle::Fixed
            } else {
                FeeStyle::EstimateSmartFee
            },
            raw_blocks: !matches!(
                d,
                RpcDialect::Legacy | RpcDialect::FixedFeeLegacy | RpcDialect::PreLegacy
            ),
            estimate_fee: self.params.rpc.estimate_fee,
            relay_fee: self.params.rpc.relay_fee,
            estimatefee_modes: if fixed {
                vec![String::new()]
            } else {
                vec![String::new(), "CONSERVATIVE".into(), "ECONOMICAL".into()]
            },
        }
    }

    fn encoder(&self) -> Option<&dyn BlockEncoder> {
        self.encoder.as_deref().map(|e| e as &dyn BlockEncoder)
    }
}
