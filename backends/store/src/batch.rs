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

/// One write operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert or overwrite a key.
    Put {
        /// target table
        table: &'static str,
        /// the key
        key: Vec<u8>,
        /// the value (may be empty)
        value: Vec<u8>,
    },
    /// Remove a key if present.
    Delete {
        /// target table
        table: &'static str,
        /// the key
        key: Vec<u8>,
    },
    /// Remove every key in `start..end` (end excluded).
    DeleteRange {
        /// target table
        table: &'static str,
        /// first key removed
        start: Vec<u8>,
        /// first key kept
        end: Vec<u8>,
    },
}

impl Op {
    /// The table this operation writes to.
    pub fn table(&self) -> &'static str {
        match self {
            Op::Put { table, .. } | Op::Delete { table, .. } | Op::DeleteRange { table, .. } => {
                table
            }
        }
    }
}

/// Writes as plain data: built without a store handle, committed atomically across tables by
/// [`crate::Store::write`]. Operations apply in order, so a later put wins over an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
    payload_bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `n` operations.
    pub fn with_capacity(n: usize) -> Self {
        WriteBatch {
            ops: Vec::with_capacity(n),
            payload_bytes: 0,
        }
    }

    /// Insert or overwrite `key` in `table`.
    pub fn put(&mut self, table: &'static str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        self.payload_bytes += key.len() + value.len();
        self.ops.push(Op::Put { table, key, value });
    }

    /// Remove `key` from `table`.
    pub fn delete(&mut self, table: &'static str, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.payload_bytes += key.len();
        self.ops.push(Op::Delete { table, key });
    }

    /// Remove every key of `table` in `start..end`.
    pub fn delete_range(
        &mut self,
        table: &'static str,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
    ) {
        let (start, end) = (start.into(), end.into());
        self.payload_bytes += start.len() + end.len();
        self.ops.push(Op::DeleteRange { table, start, end });
    }

    /// Append all of `other`'s operations after this batch's.
    pub fn append(&mut self, other: WriteBatch) {
        self.payload_bytes += other.payload_bytes;
        self.ops.extend(other.ops);
    }

    /// The operations in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Consumes the batch into its operations.
    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of keys and values in the batch (what flush budgets count).
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// Checks every key and table before an engine sees the batch, so that a bad batch is refused
    /// whole instead of failing half-way inside an engine. `known` says whether a table exists.
    pub fn validate(&self, known: impl Fn(&str) -> bool) -> Result<()> {
        for op in &self.ops {
            let table = op.table();
            if !known(table) {
                return Err(Error::UnknownTable(table.to_string()));
            }
            let keys: &[&Vec<u8>] = match op {
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
        b.put("a", b"k".to_vec(), b"v".to_vec());
        assert!(b.validate(|t| t == "a").is_ok());
        assert!(matches!(b.validate(|_| false), Err(Error::UnknownTable(t)) if t == "a"));

        let mut empty_key = WriteBatch::new();
        empty_key.put("a", Vec::new(), b"v".to_vec());
        assert!(matches!(
            empty_key.validate(|_| true),
            Err(Error::InvalidKey { len: 0, .. })
        ));

        let mut long_key = WriteBatch::new();
        long_key.delete_range("a", b"a".to_vec(), vec![1u8; MAX_KEY_LEN + 1]);
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
}
