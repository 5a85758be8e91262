//! Scans: one RocksDB iterator per scan, bounded by the range through `ReadOptions`.

use std::ops::Bound;

use anode_store::{end_prefix, Direction, KeyRange, Result};
use rocksdb::{DBRawIteratorWithThreadMode, ReadOptions, DB};

/// Read options that bound an iterator to `range`, using the column family's prefix
/// extractor (and so its prefix bloom filters) when the whole range lies inside one prefix.
pub(crate) fn scan_options(
    range: &KeyRange,
    direction: Direction,
    prefix_len: Option<usize>,
) -> ReadOptions {
    let mut opts = ReadOptions::default();
    // Bounds are inclusive-lower, exclusive-upper; key ++ 0x00 is the smallest key after key.
    let after = |k: &[u8]| {
        let mut k = k.to_vec();
        k.push(0);
        k
    };
    match &range.start {
        Bound::Included(k) => opts.set_iterate_lower_bound(k.clone()),
        Bound::Excluded(k) => opts.set_iterate_lower_bound(after(k)),
        Bound::Unbounded => {}
    }
    match &range.end {
        Bound::Included(k) => opts.set_iterate_upper_bound(after(k)),
        Bound::Excluded(k) => opts.set_iterate_upper_bound(k.clone()),
        Bound::Unbounded => {}
    }
    if direction == Direction::Forward && within_one_prefix(range, prefix_len) {
        opts.set_prefix_same_as_start(true);
    } else {
        // With a prefix extractor, only total-order seeks may cross prefixes.
        opts.set_total_order_seek(true);
    }
    opts
}

/// Whether every key of `range` shares the first `prefix_len` bytes of its start.
fn within_one_prefix(range: &KeyRange, prefix_len: Option<usize>) -> bool {
    let (Some(len), Bound::Included(start) | Bound::Excluded(start)) = (prefix_len, &range.start)
    else {
        return false;
    };
    if start.len() < len {
        return false;
    }
    let Some(next) = end_prefix(&start[..len]) else {
        return false;
    };
    match &range.end {
        Bound::Excluded(end) => end.as_slice() <= next.as_slice(),
        Bound::Included(end) => end.as_slice() < next.as_slice(),
        Bound::Unbounded => false,
    }
}

/// A bounded RocksDB iterator as a `KvIter`.
pub(crate) struct RocksIter<'a> {
    it: DBRawIteratorWithThreadMode<'a, DB>,
    direction: Direction,
    started: bool,
    done: bool,
}

impl<'a> RocksIter<'a> {
    pub(crate) fn new(it: DBRawIteratorWithThreadMode<'a, DB>, direction: Direction) -> Self {
        RocksIter {
            it,
            direction,
            started: false,
            done: false,
        }
    }
}

impl Iterator for RocksIter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // The bounds live in the read options: seeking to the first (last) key honours them.
        match (self.started, self.direction) {
            (false, Direction::Forward) => self.it.seek_to_first(),
            (false, Direction::Reverse) => self.it.seek_to_last(),
            (true, Direction::Forward) => self.it.next(),
            (true, Direction::Reverse) => self.it.prev(),
        }
        self.started = true;
        if let (Some(k), Some(v)) = (self.it.key(), self.it.value()) {
            return Some(Ok((k.to_vec(), v.to_vec())));
        }
        self.done = true;
        match self.it.status() {
            Ok(()) => None,
            // Classified like every other engine error: a block failing its checksum mid-scan
            // is corruption, not a passing failure.
            Err(e) => Some(Err(crate::store::rocks_err(e))),
        }
    }
}
