use crate::{Error, Result, MAX_KEY_LEN};

/// How hard a commit works to survive a power loss.
///
/// A process crash (`kill -9`) never loses or tears a committed batch under either mode: both
/// modes are atomic. They differ only for an operating-system crash or power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The commit is on stable storage when `write` returns (fsync or the engine's equivalent).
    /// Used at the chain tip, where every block is flushed at once.
    Sync,
    /// The commit may sit in OS buffers until the next [`crate::Store::sync`]. Used during the
    /// initial sync, which calls `sync` at each checkpoint it records as its resume point.
    Bulk,
}

/// One write operation of a batch, borrowed from the batch's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Insert or overwrite a key.
    Put {
        /// target table
        table: &'static str,
        /// the key
        key: &'a [u8],
        /// the value (may be empty)
        value: &'a [u8],
    },
    /// Remove a key if present.
    Delete {
        /// target table
        table: &'static str,
        /// the key
        key: &'a [u8],
    },
    /// Remove every key in `start..end` (end excluded).
    DeleteRange {
        /// target table
        table: &'static str,
        /// first key removed
        start: &'a [u8],
        /// first key kept
        end: &'a [u8],
    },
}

impl Op<'_> {
    /// The table this operation writes to.
    pub fn table(&self) -> &'static str {
        match self {
            Op::Put { table, .. } | Op::Delete { table, .. } | Op::DeleteRange { table, .. } => {
                table
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Delete,
    DeleteRange,
}

/// An operation's place in the buffer: its first part (key, or range start) and second part
/// (value, or range end) follow each other from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    offset: usize,
    first_len: u32,
    second_len: u32,
    table: u16,
    kind: Kind,
}

/// Writes as plain data: built without a store handle, committed atomically across tables by
/// [`crate::Store::write`]. Operations apply in order, so a later put wins over an earlier one.
///
/// Keys and values live in one buffer and each operation costs 24 bytes besides them: an
/// initial-sync flush holds millions of small rows, and one allocation per key and value
/// would double the memory it needs and the time to build it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    entries: Vec<Entry>,
    data: Vec<u8>,
    tables: Vec<&'static str>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `n` operations.
    pub fn with_capacity(n: usize) -> Self {
        WriteBatch {
            entries: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    /// An empty batch with room for `n` operations of `bytes` bytes of keys and values in all.
    pub fn with_capacity_and_bytes(n: usize, bytes: usize) -> Self {
        WriteBatch {
            entries: Vec::with_capacity(n),
            data: Vec::with_capacity(bytes),
            tables: Vec::new(),
        }
    }

    fn table_index(&mut self, table: &'static str) -> u16 {
        // Batches name a handful of tables; a linear search beats hashing.
        match self.tables.iter().position(|t| *t == table) {
            Some(i) => i as u16,
            None => {
                self.tables.push(table);
                (self.tables.len() - 1) as u16
            }
        }
    }

    fn push(&mut self, kind: Kind, table: &'static str, first: &[u8], second: &[u8]) {
        let table = self.table_index(table);
        let offset = self.data.len();
        self.data.extend_from_slice(first);
        self.data.extend_from_slice(second);
        // Lengths past u32 are refused by validate() through the saturated value.
        let len = |b: &[u8]| u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.entries.push(Entry {
            offset,
            first_len: len(first),
            second_len: len(second),
            table,
            kind,
        });
    }

    /// Insert or overwrite `key` in `table`.
    pub fn put(&mut self, table: &'static str, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(Kind::Put, table, key.as_ref(), value.as_ref());
    }

    /// Remove `key` from `table`.
    pub fn delete(&mut self, table: &'static str, key: impl AsRef<[u8]>) {
        self.push(Kind::Delete, table, key.as_ref(), &[]);
    }

    /// Remove every key of `table` in `start..end`.
    pub fn delete_range(
        &mut self,
        table: &'static str,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
    ) {
        self.push(Kind::DeleteRange, table, start.as_ref(), end.as_ref());
    }

    /// Append all of `other`'s operations after this batch's.
    pub fn append(&mut self, other: WriteBatch) {
        for op in other.ops() {
            match op {
                Op::Put { table, key, value } => self.put(table, key, value),
                Op::Delete { table, key } => self.delete(table, key),
                Op::DeleteRange { table, start, end } => self.delete_range(table, start, end),
            }
        }
    }

    fn op(&self, entry: &Entry) -> Op<'_> {
        let table = self.tables[usize::from(entry.table)];
        let first_end = entry.offset + entry.first_len as usize;
        let first = &self.data[entry.offset..first_end];
        let second = &self.data[first_end..first_end + entry.second_len as usize];
        match entry.kind {
            Kind::Put => Op::Put {
                table,
                key: first,
                value: second,
            },
            Kind::Delete => Op::Delete { table, key: first },
            Kind::DeleteRange => Op::DeleteRange {
                table,
                start: first,
                end: second,
            },
        }
    }

    /// The operations in order.
    pub fn ops(&self) -> impl ExactSizeIterator<Item = Op<'_>> + DoubleEndedIterator + '_ {
        self.entries.iter().map(|e| self.op(e))
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys and values in the batch (what flush budgets count).
    pub fn payload_bytes(&self) -> usize {
        self.data.len()
    }

    /// Bytes the batch occupies in memory, buffers included.
    pub fn memory_bytes(&self) -> usize {
        self.data.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    /// Checks every key and table before an engine sees the batch, so that a bad batch is refused
    /// whole instead of failing half-way inside an engine. `known` says whether a table exists.
    pub fn validate(&self, known: impl Fn(&str) -> bool) -> Result<()> {
        for table in &self.tables {
            if !known(table) {
                return Err(Error::UnknownTable(table.to_string()));
            }
        }
        for op in self.ops() {
            let table = op.table();
            let keys: &[&[u8]] = match &op {
                Op::Put { key, .. } | Op::Delete { key, .. } => &[key],
                Op::DeleteRange { start, end, .. } => &[start, end],
            };
            for key in keys {
                check_key(table, key)?;
            }
        }
        Ok(())
    }
}

/// Refuses keys the contract does not allow (empty, or longer than [`MAX_KEY_LEN`]).
pub(crate) fn check_key(table: &str, key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidKey {
            table: table.to_string(),
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_refuses_unknown_tables_and_bad_keys() {
        let mut b = WriteBatch::new();
        b.put("a", b"k", b"v");
        assert!(b.validate(|t| t == "a").is_ok());
        assert!(matches!(b.validate(|_| false), Err(Error::UnknownTable(t)) if t == "a"));

        let mut empty_key = WriteBatch::new();
        empty_key.put("a", Vec::new(), b"v");
        assert!(matches!(
            empty_key.validate(|_| true),
            Err(Error::InvalidKey { len: 0, .. })
        ));

        let mut long_key = WriteBatch::new();
        long_key.delete_range("a", b"a", vec![1u8; MAX_KEY_LEN + 1]);
        assert!(matches!(
            long_key.validate(|_| true),
            Err(Error::InvalidKey { .. })
        ));
    }

    #[test]
    fn payload_bytes_counts_keys_and_values() {
        let mut b = WriteBatch::new();
        b.put("a", vec![0; 3], vec![0; 5]);
        b.delete("a", vec![0; 2]);
        let mut c = WriteBatch::new();
        c.delete_range("a", vec![0; 1], vec![0; 1]);
        b.append(c);
        assert_eq!(b.payload_bytes(), 12);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn operations_read_back_in_order() {
        let mut b = WriteBatch::new();
        b.put("a", b"k1", b"v1");
        b.delete("b", [9u8; 3]);
        b.put("a", vec![1, 2], Vec::new());
        b.delete_range("b", b"s", b"t");
        let ops: Vec<Op<'_>> = b.ops().collect();
        assert_eq!(
            ops,
            vec![
                Op::Put {
                    table: "a",
                    key: b"k1",
                    value: b"v1"
                },
                Op::Delete {
                    table: "b",
                    key: &[9, 9, 9]
                },
                Op::Put {
                    table: "a",
                    key: &[1, 2],
                    value: &[]
                },
                Op::DeleteRange {
                    table: "b",
                    start: b"s",
                    end: b"t"
                },
            ]
        );
        assert_eq!(b.ops().next_back().map(|op| op.table()), Some("b"));
    }
}
