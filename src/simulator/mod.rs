//! The chain simulator: a built-in node serving a deterministic, seeded chain in the coin's own
//! block format, for tests, the demo, the conformance suite and the benchmarks. It speaks the
//! node's JSON-RPC and REST over HTTP ([`serve`]) and implements [`crate::daemon::DaemonApi`]
//! in-process ([`SimDaemon`]). It never replaces a real node in production.

mod chain;
pub mod chaindir;
mod control;
mod core_json;
mod daemon;
mod faults;
mod help;
mod p2p;
mod profile;
mod rest;
mod rpc;
mod server;

pub use chain::{SimBlock, SimChain, SimError, SimTx, SpendStatus, BLOCK_REWARD, REGTEST_BITS};
pub use control::{Accepted, Rejection, Simulator};
pub use daemon::SimDaemon;
pub use faults::{BlockCorruption, HttpFault};
pub use p2p::{serve_p2p, SimP2pServer};
pub use profile::Profile;
pub use rpc::{dispatch, dispatch_request};
pub use server::{serve, Auth, SimServer};

#[cfg(test)]
mod peer_tests;
#[cfg(test)]
mod tests;
