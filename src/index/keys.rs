//! Key and value encodings of the index tables. Integers in keys are big-endian so that keys
//! sort numerically; values that are never scanned are little-endian.

use super::schema::{HASHX_LEN, TX_NUM_LEN};
use crate::query::{Hash32, HashX};

/// A transaction's position in the chain (the first indexed transaction is 0).
pub type TxNum = u64;

/// Bytes of a txid kept in look-up keys; collisions are resolved through `tx_hashes`.
pub const TXID_PREFIX_LEN: usize = 8;

/// Largest tx number that fits the 5-byte encoding.
pub const MAX_TX_NUM: TxNum = (1 << (8 * TX_NUM_LEN)) - 1;

/// `height` as a key.
pub fn height_key(height: u32) -> [u8; 4] {
    height.to_be_bytes()
}

/// A height key back to the height.
pub fn read_height(key: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(key.get(..4)?.try_into().ok()?))
}

/// `n` as 5 big-endian bytes.
pub fn tx_num_bytes(n: TxNum) -> [u8; TX_NUM_LEN] {
    let full = n.to_be_bytes();
    let mut out = [0u8; TX_NUM_LEN];
    out.copy_from_slice(&full[8 - TX_NUM_LEN..]);
    out
}

/// 5 big-endian bytes back to a tx number.
pub fn read_tx_num(bytes: &[u8]) -> Option<TxNum> {
    let bytes = bytes.get(..TX_NUM_LEN)?;
    let mut full = [0u8; 8];
    full[8 - TX_NUM_LEN..].copy_from_slice(bytes);
    Some(u64::from_be_bytes(full))
}

/// A hashX from the start of `bytes`.
pub fn read_hashx(bytes: &[u8]) -> Option<HashX> {
    bytes.get(..HASHX_LEN)?.try_into().ok()
}

/// A 32-byte hash from the start of `bytes`.
pub fn read_hash(bytes: &[u8]) -> Option<Hash32> {
    bytes.get(..32)?.try_into().ok()
}

/// The first bytes of a txid, as used in look-up keys.
pub type TxidPrefix = [u8; TXID_PREFIX_LEN];

/// The first bytes of `txid`, as used in look-up keys.
pub fn txid_prefix(txid: &Hash32) -> TxidPrefix {
    let mut out = [0u8; TXID_PREFIX_LEN];
    out.copy_from_slice(&txid[..TXID_PREFIX_LEN]);
    out
}

/// `txid_index`: txid prefix + tx number.
pub fn txid_index_key(txid: &Hash32, tx_num: TxNum) -> Vec<u8> {
    txid_index_key_from_prefix(&txid_prefix(txid), tx_num)
}

/// `txid_index` key from a txid prefix already cut.
pub fn txid_index_key_from_prefix(prefix: &TxidPrefix, tx_num: TxNum) -> Vec<u8> {
    let mut key = Vec::with_capacity(TXID_PREFIX_LEN + TX_NUM_LEN);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&tx_num_bytes(tx_num));
    key
}

/// `history`: hashX + tx number.
pub fn history_key(hashx: &HashX, tx_num: TxNum) -> Vec<u8> {
    let mut key = Vec::with_capacity(HASHX_LEN + TX_NUM_LEN);
    key.extend_from_slice(hashx);
    key.extend_from_slice(&tx_num_bytes(tx_num));
    key
}

/// Most tx numbers one `history` row holds. A flush writes one row per script it touched;
/// an exchange-like script with millions of transactions in one flush is split so that no
/// value grows past a few tens of kilobytes.
pub const HISTORY_CHUNK_MAX: usize = 8192;

/// The `history` row of `tx_nums` (ascending, non-empty): the first tx number goes in the
/// key, so a single-transaction row has an empty value; the rest follow as LEB128 gaps.
pub fn history_row(hashx: &HashX, tx_nums: &[TxNum]) -> (Vec<u8>, Vec<u8>) {
    let first = tx_nums.first().copied().unwrap_or(0);
    let mut value = Vec::with_capacity(tx_nums.len().saturating_sub(1) * 2);
    let mut previous = first;
    for &tx_num in tx_nums.iter().skip(1) {
        write_varint(&mut value, tx_num - previous);
        previous = tx_num;
    }
    (history_key(hashx, first), value)
}

/// The tx numbers of a `history` row, appended to `out`; `None` if the row is damaged (a gap
/// of zero, an overlong varint, or a tx number past the 5-byte range).
pub fn read_history_row(key: &[u8], value: &[u8], out: &mut Vec<TxNum>) -> Option<()> {
    let mut tx_num = read_tx_num(key.get(HASHX_LEN..)?)?;
    out.push(tx_num);
    let mut rest = value;
    while !rest.is_empty() {
        let gap = read_varint(&mut rest)?;
        if gap == 0 {
            return None;
        }
        tx_num = tx_num.checked_add(gap).filter(|n| *n <= MAX_TX_NUM)?;
        out.push(tx_num);
    }
    Some(())
}

/// Appends `n` as an unsigned LEB128 varint (7 bits per byte, low bits first).
pub fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads an unsigned LEB128 varint from the front of `bytes` and advances past it; `None` if
/// it is truncated or does not fit 64 bits.
pub fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return None;
        }
        n |= bits << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(n);
        }
    }
    None
}

/// `utxo`: hashX + tx number + vout.
pub fn utxo_key(hashx: &HashX, tx_num: TxNum, vout: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(HASHX_LEN + TX_NUM_LEN + 4);
    key.extend_from_slice(hashx);
    key.extend_from_slice(&tx_num_bytes(tx_num));
    key.extend_from_slice(&vout.to_be_bytes());
    key
}

/// The prefix of `utxo_lookup` keys for an outpoint: txid prefix + vout.
pub fn utxo_lookup_prefix(txid: &Hash32, vout: u32) -> [u8; TXID_PREFIX_LEN + 4] {
    let mut key = [0u8; TXID_PREFIX_LEN + 4];
    key[..TXID_PREFIX_LEN].copy_from_slice(&txid_prefix(txid));
    key[TXID_PREFIX_LEN..].copy_from_slice(&vout.to_be_bytes());
    key
}

/// `utxo_lookup`: txid prefix + vout + tx number. The tx number makes two outputs whose txids
/// share a prefix distinct keys instead of one overwriting the other.
pub fn utxo_lookup_key(txid: &Hash32, vout: u32, tx_num: TxNum) -> Vec<u8> {
    utxo_lookup_key_from_prefix(&txid_prefix(txid), vout, tx_num)
}

/// `utxo_lookup` key from a txid prefix already cut.
pub fn utxo_lookup_key_from_prefix(prefix: &TxidPrefix, vout: u32, tx_num: TxNum) -> Vec<u8> {
    let mut key = Vec::with_capacity(TXID_PREFIX_LEN + 4 + TX_NUM_LEN);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&vout.to_be_bytes());
    key.extend_from_slice(&tx_num_bytes(tx_num));
    key
}

/// `utxo_lookup` value: hashX + value (8 B LE), so a spend needs one seek.
pub fn utxo_lookup_value(hashx: &HashX, value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HASHX_LEN + 8);
    out.extend_from_slice(hashx);
    out.extend_from_slice(&value.to_le_bytes());
    out
}

/// `spenders`: tx number + vout of the spent output.
pub fn spender_key(tx_num: TxNum, vout: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(TX_NUM_LEN + 4);
    key.extend_from_slice(&tx_num_bytes(tx_num));
    key.extend_from_slice(&vout.to_be_bytes());
    key
}

/// A value of 8 little-endian bytes.
pub fn read_value(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// A big-endian u32 at `offset`.
pub fn read_u32_be(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_numbers_round_trip_and_sort() {
        for n in [0, 1, 255, 256, 1 << 32, MAX_TX_NUM] {
            assert_eq!(read_tx_num(&tx_num_bytes(n)), Some(n));
        }
        assert!(tx_num_bytes(255) < tx_num_bytes(256));
        assert!(tx_num_bytes(1 << 32) > tx_num_bytes((1 << 32) - 1));
    }

    #[test]
    fn varints_round_trip_and_damage_is_refused() {
        for n in [0, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut bytes = Vec::new();
            write_varint(&mut bytes, n);
            bytes.push(0xaa);
            let mut rest = &bytes[..];
            assert_eq!(read_varint(&mut rest), Some(n));
            assert_eq!(rest, &[0xaa]);
        }
        assert_eq!(read_varint(&mut &[0x80u8][..]), None);
        assert_eq!(read_varint(&mut &[0xffu8; 11][..]), None);
        assert_eq!(
            read_varint(&mut &[0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02][..]),
            None
        );
    }

    #[test]
    fn history_rows_round_trip_and_sort_by_first_tx_number() {
        let hashx = [3u8; HASHX_LEN];
        for tx_nums in [vec![7], vec![0, 1, 2], vec![5, 300, 1 << 33, MAX_TX_NUM]] {
            let (key, value) = history_row(&hashx, &tx_nums);
            assert_eq!(key, history_key(&hashx, tx_nums[0]));
            let mut read = Vec::new();
            read_history_row(&key, &value, &mut read).expect("decodes");
            assert_eq!(read, tx_nums);
        }
        assert!(history_row(&hashx, &[9]).1.is_empty());
        assert!(history_row(&hashx, &[9]).0 < history_row(&hashx, &[10, 11]).0);
        let key = history_key(&hashx, 4);
        assert_eq!(read_history_row(&key, &[0], &mut Vec::new()), None);
        assert_eq!(read_history_row(&key, &[0x80], &mut Vec::new()), None);
        let past_range = history_key(&hashx, MAX_TX_NUM);
        assert_eq!(read_history_row(&past_range, &[1], &mut Vec::new()), None);
    }

    #[test]
    fn lookup_keys_group_by_outpoint() {
        let txid = [7u8; 32];
        let a = utxo_lookup_key(&txid, 1, 5);
        let b = utxo_lookup_key(&txid, 1, 9);
        assert!(a.starts_with(&utxo_lookup_prefix(&txid, 1)));
        assert!(b.starts_with(&utxo_lookup_prefix(&txid, 1)));
        assert_ne!(a, b);
        assert!(!utxo_lookup_key(&txid, 2, 5).starts_with(&utxo_lookup_prefix(&txid, 1)));
    }
}
