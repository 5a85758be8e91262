//! The index: its schema (the tables and their key layouts) and the database identity that
//! makes a store refuse to be used for another coin, network or schema.

pub mod meta;
pub mod schema;

pub use meta::{open_index_store, DbIdentity, MetaError, SCHEMA_VERSION};
