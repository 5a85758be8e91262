//! Shared helpers of the integration tests.

pub mod bsv_node;
