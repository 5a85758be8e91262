//! Shared helpers of the integration tests.

#[allow(dead_code, clippy::print_stderr)]
pub mod bsv_node;
pub mod index;
pub mod logs;
