//! Header layouts: how long the header at the front of a raw block is.

use serde::Deserialize;

use crate::params::HeaderSpec;
use crate::reader::{Reader, Result};
use crate::tx::{self, TxRules};

/// Header layout kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderLayout {
    /// Fixed size, optionally scheduled by height (`size_schedule`).
    Fixed,
    /// `size` bytes, then an AuxPoW proof when version bit 8 (0x100) is set.
    Auxpow,
    /// Xaya: 80 bytes, algorithm byte, bits, then AuxPoW (algo bit 0x80) or an 80-byte fake header.
    Xaya,
    /// `size` (140) bytes then a length-prefixed Equihash solution.
    Equihash,
    /// 80 bytes then a length-prefixed prime-chain multiplier.
    Primecoin,
    /// 80 bytes, plus 4 flag bytes from `fork_height`.
    BitcoinAtom,
    /// 80 bytes, 180 when version bit 0x1000 (MTP) is set.
    Zcoin,
}

impl HeaderLayout {
    /// Whether header lengths follow from the height alone.
    pub fn is_static(self) -> bool {
        matches!(self, HeaderLayout::Fixed)
    }
}

const AUXPOW_FLAG: u32 = 1 << 8;

/// Header size at a height from a fixed layout's schedule.
pub(crate) fn scheduled_size(spec: &HeaderSpec, height: u32) -> usize {
    let mut size = spec.size;
    for &(from, s) in &spec.size_schedule {
        if height >= from {
            size = s;
        }
    }
    size
}

/// Length of the header served to clients for a header at `height`, when static.
pub(crate) fn served_len_at(spec: &HeaderSpec, height: u32) -> Option<usize> {
    match spec.layout {
        HeaderLayout::Fixed => Some(scheduled_size(spec, height)),
        HeaderLayout::Auxpow | HeaderLayout::Xaya => spec.truncated_size,
        HeaderLayout::BitcoinAtom => Some(match spec.fork_height {
            Some(f) if height >= f => spec.size + 4,
            _ => spec.size,
        }),
        HeaderLayout::Equihash | HeaderLayout::Primecoin | HeaderLayout::Zcoin => None,
    }
}

/// Walks the header at the front of `raw` and returns its full length.
pub(crate) fn full_len(
    spec: &HeaderSpec,
    raw: &[u8],
    height: Option<u32>,
    rules: &TxRules,
) -> Result<usize> {
    let mut r = Reader::new(raw);
    match spec.layout {
        HeaderLayout::Fixed => {
            let size = match height {
                Some(h) => scheduled_size(spec, h),
                None if spec.size_schedule.is_empty() => spec.size,
                None => return Err(r.err("header size depends on a height that was not given")),
            };
            r.skip(size, "truncated header")?;
        }
        HeaderLayout::Auxpow => {
            let version = r.u32("truncated header")?;
            r = Reader::new(raw);
            r.skip(spec.size, "truncated header")?;
            if version & AUXPOW_FLAG != 0 {
                skip_auxpow(&mut r, rules)?;
            }
        }
        HeaderLayout::Xaya => {
            r.skip(spec.size, "truncated header")?;
            let algo = r.u8("truncated Xaya PoW data")?;
            r.skip(4, "truncated Xaya PoW data")?;
            if algo & 0x80 != 0 {
                skip_auxpow(&mut r, rules)?;
            } else {
                r.skip(80, "truncated Xaya fake header")?;
            }
        }
        HeaderLayout::Equihash | HeaderLayout::Primecoin => {
            r.skip(spec.size, "truncated header")?;
            r.var_bytes("truncated header solution")?;
        }
        HeaderLayout::BitcoinAtom => {
            let size = match (height, spec.fork_height) {
                (Some(h), Some(f)) if h >= f => spec.size + 4,
                (None, Some(_)) => {
                    return Err(r.err("header size depends on a height that was not given"))
                }
                _ => spec.size,
            };
            r.skip(size, "truncated header")?;
        }
        HeaderLayout::Zcoin => {
            let version = r.u32("truncated header")?;
            let size = if version & 0x1000 != 0 { 180 } else { 80 };
            r = Reader::new(raw);
            r.skip(size, "truncated header")?;
        }
    }
    Ok(r.pos())
}

/// Skips a merged-mining proof: parent coinbase, parent hash, two merkle branches
/// with their indexes, parent header.
fn skip_auxpow(r: &mut Reader<'_>, rules: &TxRules) -> Result<()> {
    tx::skip_tx(r, rules)?;
    r.skip(32, "truncated AuxPoW parent hash")?;
    let n = r.count(32, "bad AuxPoW merkle branch")?;
    r.skip_n(n as u64, 32, "bad AuxPoW merkle branch")?;
    r.skip(4, "truncated AuxPoW index")?;
    let n = r.count(32, "bad AuxPoW chain merkle branch")?;
    r.skip_n(n as u64, 32, "bad AuxPoW chain merkle branch")?;
    r.skip(4, "truncated AuxPoW chain index")?;
    r.skip(80, "truncated AuxPoW parent header")?;
    Ok(())
}
