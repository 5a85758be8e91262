//! A scan built from bounded pages, for engines whose cursors cannot outlive a short-lived
//! transaction or statement (LMDB read transactions, SQLite statements), and for scans of a
//! live store that must not pin one state for their whole length.

use std::collections::VecDeque;
use std::ops::Bound;

use crate::{Direction, KeyRange, Result};

/// Fetches up to `limit` pairs of `range` in `direction` order.
pub type PageFetch<'a> =
    Box<dyn FnMut(&KeyRange, Direction, usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> + 'a>;

/// An iterator that fetches `page_size` pairs at a time and narrows the range past the last key
/// it yielded, so each page is a fresh, short read.
pub struct PagedScan<'a> {
    range: KeyRange,
    direction: Direction,
    page_size: usize,
    buffered: VecDeque<(Vec<u8>, Vec<u8>)>,
    fetch: PageFetch<'a>,
    exhausted: bool,
}

impl<'a> PagedScan<'a> {
    /// A scan of `range` in `direction`, `page_size` pairs per fetch.
    pub fn new(
        range: KeyRange,
        direction: Direction,
        page_size: usize,
        fetch: PageFetch<'a>,
    ) -> Self {
        PagedScan {
            exhausted: range.is_empty(),
            range,
            direction,
            page_size: page_size.max(1),
            buffered: VecDeque::new(),
            fetch,
        }
    }

    fn refill(&mut self) -> Result<()> {
        let page = (self.fetch)(&self.range, self.direction, self.page_size)?;
        if page.len() < self.page_size {
            self.exhausted = true;
        }
        if let Some((last, _)) = page.last() {
            match self.direction {
                Direction::Forward => self.range.start = Bound::Excluded(last.clone()),
                Direction::Reverse => self.range.end = Bound::Excluded(last.clone()),
            }
        }
        self.buffered.extend(page);
        Ok(())
    }
}

impl Iterator for PagedScan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffered.is_empty() && !self.exhausted {
            if let Err(e) = self.refill() {
                self.exhausted = true;
                return Some(Err(e));
            }
        }
        self.buffered.pop_front().map(Ok)
    }
}
