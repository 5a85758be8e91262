//! # anode
//!
//! An Electrum-protocol server. The server depends on the storage trait (`anode-store`) and the
//! coin trait (`anode-coins`), never on a concrete engine or coin outside [`store_factory`] and
//! the coin registry.

pub mod admin;
pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod index;
pub mod metrics;
pub mod output;
pub mod peers;
pub mod query;
pub mod server;
pub mod side_listener;
pub mod simulator;
pub mod store_factory;
