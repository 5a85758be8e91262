//! The local admin interface (ElectrumX's LocalRPC, docs/admin.md) and its `anode rpc` client.
//!
//! A separate listener on the `rpc://` service (default `127.0.0.1:8000`) speaks
//! newline-delimited JSON-RPC with `electrumx_rpc`'s commands and named parameters. The running
//! server and indexer are reached only through [`AdminApi`]; `query` reads through
//! [`crate::query::ChainQuery`] and the coin, and `log`'s filter change goes through
//! [`LogControl`]. Nothing here prints: the CLI prints what [`client::render`] returns.
//!
//! Starting it:
//!
//! ```no_run
//! # async fn start(api: std::sync::Arc<dyn anode::admin::AdminApi>,
//! #     chain: std::sync::Arc<dyn anode::query::ChainQuery>,
//! #     coin: std::sync::Arc<dyn anode_coins::Coin>,
//! #     log: anode::admin::LogControl) -> std::io::Result<()> {
//! use std::sync::Arc;
//! let admin = Arc::new(anode::admin::Admin::new(api, chain, coin).with_log_control(log));
//! let server = anode::admin::spawn("127.0.0.1:8000", admin).await?;
//! // … on shutdown:
//! server.stop().await;
//! # Ok(()) }
//! ```

mod api;
pub mod client;
mod commands;
mod logging;
mod query;
mod server;

#[cfg(test)]
mod tests;

pub use api::{
    AdminApi, AdminError, GroupInfo, LoggingChange, LoggingState, MemoryItem, PeerInfo, PeerStatus,
    SessionInfo,
};
pub use commands::{Command, RpcError};
pub use logging::{init_logging, reloadable_subscriber, LogControl, LogError};
pub use query::format_amount;
pub use server::{spawn, spawn_configured, Admin, AdminServer};
