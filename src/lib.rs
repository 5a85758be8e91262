//! # anode
//!
//! An Electrum-protocol server. The server depends on the storage trait (`anode-store`) and the
//! coin trait (`anode-coins`), never on a concrete engine or coin outside the store factory and
//! the coin registry.

pub mod store_factory;
pub mod cli;
