//! Undo records: everything needed to take a block back out of the index without the block
//! itself (the node may no longer serve a block that left its main chain).

use super::keys::{read_hashx, read_tx_num, read_u32_be, read_value, tx_num_bytes, TxNum};
use super::schema::{HASHX_LEN, TX_NUM_LEN};
use crate::query::HashX;

const FORMAT: u8 = 1;

/// An output that existed before the block and that the block spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentOutput {
    /// the output's script key
    pub hashx: HashX,
    /// the funding transaction's number
    pub tx_num: TxNum,
    /// output index
    pub vout: u32,
    /// value
    pub value: u64,
    /// the first bytes of the funding txid (for its `utxo_lookup` row)
    pub txid_prefix: [u8; 8],
}

/// An output the block created (indexed outputs only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedOutput {
    /// script key
    pub hashx: HashX,
    /// transaction number
    pub tx_num: TxNum,
    /// output index
    pub vout: u32,
}

/// What a block changed, beyond the rows keyed by its height and tx-number range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UndoRecord {
    /// outputs from earlier blocks that this block spent
    pub spent: Vec<SpentOutput>,
    /// outputs this block created
    pub created: Vec<CreatedOutput>,
    /// `history` rows this block added
    pub history: Vec<(HashX, TxNum)>,
}

const SPENT_LEN: usize = HASHX_LEN + TX_NUM_LEN + 4 + 8 + 8;
const CREATED_LEN: usize = HASHX_LEN + TX_NUM_LEN + 4;
const HISTORY_LEN: usize = HASHX_LEN + TX_NUM_LEN;

impl UndoRecord {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            13 + self.spent.len() * SPENT_LEN
                + self.created.len() * CREATED_LEN
                + self.history.len() * HISTORY_LEN,
        );
        out.push(FORMAT);
        for len in [self.spent.len(), self.created.len(), self.history.len()] {
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        for s in &self.spent {
            out.extend_from_slice(&s.hashx);
            out.extend_from_slice(&tx_num_bytes(s.tx_num));
            out.extend_from_slice(&s.vout.to_be_bytes());
            out.extend_from_slice(&s.value.to_le_bytes());
            out.extend_from_slice(&s.txid_prefix);
        }
        for c in &self.created {
            out.extend_from_slice(&c.hashx);
            out.extend_from_slice(&tx_num_bytes(c.tx_num));
            out.extend_from_slice(&c.vout.to_be_bytes());
        }
        for (hashx, tx_num) in &self.history {
            out.extend_from_slice(hashx);
            out.extend_from_slice(&tx_num_bytes(*tx_num));
        }
        out
    }

    /// Reads a stored record; `None` if it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if *bytes.first()? != FORMAT {
            return None;
        }
        let n_spent = read_u32_be(bytes, 1)? as usize;
        let n_created = read_u32_be(bytes, 5)? as usize;
        let n_history = read_u32_be(bytes, 9)? as usize;
        let expected = 13usize
            .checked_add(n_spent.checked_mul(SPENT_LEN)?)?
            .checked_add(n_created.checked_mul(CREATED_LEN)?)?
            .checked_add(n_history.checked_mul(HISTORY_LEN)?)?;
        if bytes.len() != expected {
            return None;
        }
        let mut rest = &bytes[13..];
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        };
        let mut record = UndoRecord::default();
        for _ in 0..n_spent {
            let b = take(SPENT_LEN);
            record.spent.push(SpentOutput {
                hashx: read_hashx(b)?,
                tx_num: read_tx_num(&b[HASHX_LEN..])?,
                vout: read_u32_be(b, HASHX_LEN + TX_NUM_LEN)?,
                value: read_value(&b[HASHX_LEN + TX_NUM_LEN + 4..])?,
                txid_prefix: b[HASHX_LEN + TX_NUM_LEN + 12..].try_into().ok()?,
            });
        }
        for _ in 0..n_created {
            let b = take(CREATED_LEN);
            record.created.push(CreatedOutput {
                hashx: read_hashx(b)?,
                tx_num: read_tx_num(&b[HASHX_LEN..])?,
                vout: read_u32_be(b, HASHX_LEN + TX_NUM_LEN)?,
            });
        }
        for _ in 0..n_history {
            let b = take(HISTORY_LEN);
            record
                .history
                .push((read_hashx(b)?, read_tx_num(&b[HASHX_LEN..])?));
        }
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let record = UndoRecord {
            spent: vec![SpentOutput {
                hashx: [1; HASHX_LEN],
                tx_num: 77,
                vout: 3,
                value: 5_000_000_000,
                txid_prefix: [9; 8],
            }],
            created: vec![CreatedOutput {
                hashx: [2; HASHX_LEN],
                tx_num: 80,
                vout: 0,
            }],
            history: vec![([1; HASHX_LEN], 80), ([2; HASHX_LEN], 80)],
        };
        let bytes = record.encode();
        assert_eq!(UndoRecord::decode(&bytes), Some(record));
        assert_eq!(UndoRecord::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(UndoRecord::decode(&[]), None);
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 9;
        assert_eq!(UndoRecord::decode(&wrong_format), None);
        assert_eq!(
            UndoRecord::decode(&UndoRecord::default().encode()),
            Some(UndoRecord::default())
        );
    }
}
