//! What blocks and mempool changes touched: the scripts and outpoints whose subscribers must
//! hear about it.

use std::collections::HashSet;

use crate::query::{HashX, OutPoint};

/// What a block or a run of blocks touched, for notifications.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// scripts that gained or lost history
    pub scripts: HashSet<HashX>,
    /// outpoints created, spent or un-spent
    pub outpoints: HashSet<OutPoint>,
}

impl Touched {
    /// Adds another set.
    pub fn extend(&mut self, other: Touched) {
        self.scripts.extend(other.scripts);
        self.outpoints.extend(other.outpoints);
    }

    /// Whether nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty() && self.outpoints.is_empty()
    }
}
