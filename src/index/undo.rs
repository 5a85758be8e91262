//! Undo records: everything needed to take a block back out of the index without the block
//! itself (the node may no longer serve a block that left its main chain).

use super::keys::{read_hashx, read_varint, write_varint, TxNum, MAX_TX_NUM};
use super::schema::HASHX_LEN;
use crate::query::HashX;

/// Format 2 (schema v2): counts and integers as LEB128 varints, each script stored once in a
/// sorted dictionary that the entries refer to by position.
const FORMAT: u8 = 2;

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
    /// outputs this block created (decoded in tx-number order)
    pub created: Vec<CreatedOutput>,
    /// scripts whose history this block extended (their `history` rows lose the block's tx
    /// numbers on undo); may repeat until encoded, sorted and unique once decoded
    pub scripts: Vec<HashX>,
}

impl UndoRecord {
    /// The stored form. Every script an entry names is in the dictionary, so decoding gives
    /// back `scripts` sorted, unique and completed by the entries' scripts.
    pub fn encode(&self) -> Vec<u8> {
        let mut dictionary: Vec<HashX> = self
            .scripts
            .iter()
            .chain(self.spent.iter().map(|s| &s.hashx))
            .chain(self.created.iter().map(|c| &c.hashx))
            .copied()
            .collect();
        dictionary.sort_unstable();
        dictionary.dedup();
        let position = |hashx: &HashX| dictionary.binary_search(hashx).unwrap_or_default() as u64;
        let mut out = Vec::with_capacity(
            16 + dictionary.len() * HASHX_LEN + self.spent.len() * 24 + self.created.len() * 6,
        );
        out.push(FORMAT);
        for len in [dictionary.len(), self.spent.len(), self.created.len()] {
            write_varint(&mut out, len as u64);
        }
        for hashx in &dictionary {
            out.extend_from_slice(hashx);
        }
        for s in &self.spent {
            write_varint(&mut out, position(&s.hashx));
            write_varint(&mut out, s.tx_num);
            write_varint(&mut out, u64::from(s.vout));
            write_varint(&mut out, s.value);
            out.extend_from_slice(&s.txid_prefix);
        }
        // In tx-number order, each created output is stored as the gap from the last.
        let mut created: Vec<&CreatedOutput> = self.created.iter().collect();
        created.sort_by_key(|c| (c.tx_num, c.vout));
        let mut previous = 0;
        for c in created {
            write_varint(&mut out, position(&c.hashx));
            write_varint(&mut out, c.tx_num.wrapping_sub(previous));
            write_varint(&mut out, u64::from(c.vout));
            previous = c.tx_num;
        }
        out
    }

    /// Reads a stored record; `None` if it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&format, mut rest) = bytes.split_first()?;
        if format != FORMAT {
            return None;
        }
        let n_scripts = usize::try_from(read_varint(&mut rest)?).ok()?;
        let n_spent = usize::try_from(read_varint(&mut rest)?).ok()?;
        let n_created = usize::try_from(read_varint(&mut rest)?).ok()?;
        // Every entry takes at least 3 bytes: counts beyond the record's size are damage, not
        // an allocation to attempt.
        let dictionary_len = n_scripts.checked_mul(HASHX_LEN)?;
        if dictionary_len > rest.len() || n_spent.saturating_add(n_created) > rest.len() / 3 {
            return None;
        }
        let (dictionary, mut rest) = rest.split_at(dictionary_len);
        let scripts: Vec<HashX> = dictionary
            .chunks_exact(HASHX_LEN)
            .map(read_hashx)
            .collect::<Option<_>>()?;
        if scripts.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let script = |rest: &mut &[u8]| -> Option<HashX> {
            let i = usize::try_from(read_varint(rest)?).ok()?;
            scripts.get(i).copied()
        };
        let tx_num = |n: u64| (n <= MAX_TX_NUM).then_some(n);
        let vout = |n: u64| u32::try_from(n).ok();
        let mut record = UndoRecord::default();
        for _ in 0..n_spent {
            let hashx = script(&mut rest)?;
            let funding = tx_num(read_varint(&mut rest)?)?;
            let out_index = vout(read_varint(&mut rest)?)?;
            let value = read_varint(&mut rest)?;
            let (prefix, tail) = (rest.get(..8)?, &rest[8..]);
            rest = tail;
            record.spent.push(SpentOutput {
                hashx,
                tx_num: funding,
                vout: out_index,
                value,
                txid_prefix: prefix.try_into().ok()?,
            });
        }
        let mut previous: TxNum = 0;
        for _ in 0..n_created {
            let hashx = script(&mut rest)?;
            let created = tx_num(previous.checked_add(read_varint(&mut rest)?)?)?;
            let out_index = vout(read_varint(&mut rest)?)?;
            previous = created;
            record.created.push(CreatedOutput {
                hashx,
                tx_num: created,
                vout: out_index,
            });
        }
        if !rest.is_empty() {
            return None;
        }
        record.scripts = scripts;
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
            created: vec![
                CreatedOutput {
                    hashx: [2; HASHX_LEN],
                    tx_num: 80,
                    vout: 0,
                },
                CreatedOutput {
                    hashx: [2; HASHX_LEN],
                    tx_num: MAX_TX_NUM,
                    vout: u32::MAX,
                },
            ],
            scripts: vec![[1; HASHX_LEN], [2; HASHX_LEN]],
        };
        let bytes = record.encode();
        assert_eq!(UndoRecord::decode(&bytes), Some(record));
        assert_eq!(UndoRecord::decode(&bytes[..bytes.len() - 1]), None);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(UndoRecord::decode(&trailing), None);
        assert_eq!(UndoRecord::decode(&[]), None);
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 1;
        assert_eq!(UndoRecord::decode(&wrong_format), None);
        // a count far beyond the record is refused without allocating for it
        assert_eq!(
            UndoRecord::decode(&[FORMAT, 0, 0xff, 0xff, 0xff, 0x7f]),
            None
        );
        assert_eq!(
            UndoRecord::decode(&UndoRecord::default().encode()),
            Some(UndoRecord::default())
        );
    }

    #[test]
    fn scripts_are_stored_once_and_entries_complete_the_dictionary() {
        let script = |b: u8| [b; HASHX_LEN];
        let record = UndoRecord {
            spent: vec![SpentOutput {
                hashx: script(5),
                tx_num: 1,
                vout: 0,
                value: 1,
                txid_prefix: [0; 8],
            }],
            created: (0..100)
                .map(|i| CreatedOutput {
                    hashx: script(7),
                    tx_num: 1000 + i,
                    vout: 1,
                })
                .collect(),
            scripts: vec![script(9), script(7), script(9)],
        };
        let bytes = record.encode();
        // one dictionary of three scripts, then a few bytes per entry
        assert!(
            bytes.len() < 4 + 3 * HASHX_LEN + 14 + 100 * 3,
            "{} bytes",
            bytes.len()
        );
        let decoded = UndoRecord::decode(&bytes).expect("decodes");
        assert_eq!(decoded.scripts, vec![script(5), script(7), script(9)]);
        assert_eq!(decoded.spent, record.spent);
        assert_eq!(decoded.created, record.created);
    }
}
