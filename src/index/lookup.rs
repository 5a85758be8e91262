//! Point look-ups in the stored index that the writer, the readers and the mempool all make:
//! a txid's tx number, the txids of a range of tx numbers, a stored unspent output.

use anode_store::{Direction, KeyRange, ReadView};

use super::error::{IndexError, IndexResult};
use super::keys::*;
use super::schema::*;
use crate::query::{Hash32, HashX, OutPoint};

/// A stored unspent output: whose script it pays, which tx created it, and its value.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoredUtxo {
    pub(super) hashx: HashX,
    pub(super) tx_num: TxNum,
    pub(super) value: u64,
}

/// The hashX of a script hash.
pub fn hashx_of(script_hash: &Hash32) -> HashX {
    crate::query::ScriptHash(*script_hash).hashx()
}

/// The txids of tx numbers `range`, in order.
pub fn read_txids(view: &dyn ReadView, range: std::ops::Range<TxNum>) -> IndexResult<Vec<Hash32>> {
    let mut txids = Vec::with_capacity((range.end - range.start) as usize);
    if range.is_empty() {
        return Ok(txids);
    }
    let keys = KeyRange::between(&tx_num_bytes(range.start), &tx_num_bytes(range.end));
    for row in view.scan(TX_HASHES, keys, Direction::Forward)? {
        let (key, value) = row?;
        let expected = range.start + txids.len() as u64;
        match (read_tx_num(&key), read_hash(&value)) {
            (Some(n), Some(txid)) if n == expected => txids.push(txid),
            _ => {
                return Err(IndexError::Corrupt(format!(
                    "tx_hashes row {} out of sequence",
                    hex::encode(&key)
                )))
            }
        }
    }
    if txids.len() as u64 != range.end - range.start {
        return Err(IndexError::Corrupt(format!(
            "tx_hashes is missing rows in {}..{}",
            range.start, range.end
        )));
    }
    Ok(txids)
}

/// A stored unspent output found through `utxo_lookup`. With `verify`, the funding txid is
/// checked in full through `tx_hashes`; without, a single candidate is trusted (a valid block
/// only spends outputs that exist, so the one candidate must be it).
pub(super) fn find_stored_utxo(
    view: &dyn ReadView,
    outpoint: &OutPoint,
    verify: bool,
) -> IndexResult<Option<StoredUtxo>> {
    let prefix = utxo_lookup_prefix(&outpoint.txid, outpoint.vout);
    let mut candidates = Vec::with_capacity(1);
    for row in view.scan_prefix(UTXO_LOOKUP, &prefix, Direction::Forward)? {
        let (key, value) = row?;
        let parsed = (
            read_tx_num(&key[prefix.len()..]),
            read_hashx(&value),
            value.get(HASHX_LEN..).and_then(read_value),
        );
        let (Some(tx_num), Some(hashx), Some(value)) = parsed else {
            return Err(IndexError::Corrupt(format!(
                "utxo_lookup row {} is damaged",
                hex::encode(&key)
            )));
        };
        candidates.push(StoredUtxo {
            hashx,
            tx_num,
            value,
        });
    }
    if candidates.len() == 1 && !verify {
        return Ok(candidates.pop());
    }
    for candidate in candidates {
        let txid = view.get(TX_HASHES, &tx_num_bytes(candidate.tx_num))?;
        if txid.as_deref() == Some(&outpoint.txid[..]) {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// An unspent output of the store, checked against the full txid (for mempool inputs, whose
/// parents the index may not hold yet).
pub fn lookup_utxo(
    view: &dyn ReadView,
    outpoint: &OutPoint,
) -> IndexResult<Option<(HashX, TxNum, u64)>> {
    Ok(find_stored_utxo(view, outpoint, true)?.map(|u| (u.hashx, u.tx_num, u.value)))
}

/// The tx number of a confirmed txid.
pub fn find_tx_num(view: &dyn ReadView, txid: &Hash32) -> IndexResult<Option<TxNum>> {
    for row in view.scan_prefix(TXID_INDEX, &txid_prefix(txid), Direction::Forward)? {
        let (key, _) = row?;
        let Some(tx_num) = read_tx_num(&key[TXID_PREFIX_LEN..]) else {
            return Err(IndexError::Corrupt(format!(
                "txid_index row {} is damaged",
                hex::encode(&key)
            )));
        };
        if view.get(TX_HASHES, &tx_num_bytes(tx_num))?.as_deref() == Some(&txid[..]) {
            return Ok(Some(tx_num));
        }
    }
    Ok(None)
}
