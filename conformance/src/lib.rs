//! anode-conformance: the Electrum protocol conformance suite (docs/protocol.md, Conformance).
//!
//! A scenario drives a chain through a scripted life ([`scenario`]); the suite reads the chain
//! from the node and computes every expected answer itself ([`model`]); one session per
//! protocol version and transport ([`client`]) checks every method, error case and
//! notification ([`checks`], [`suite`]); the matrix runs it against anode for every storage
//! engine and coin ([`matrix`]). The same suite runs against any other Electrum server
//! (external mode) and against anode indexing a real node ([`real_node`]).
//!
//! It depends on `anode` only to start the server under test and the simulator; expectations
//! never come from anode's index, query or server code.

pub mod checks;
pub mod client;
pub mod matrix;
pub mod model;
pub mod node;
pub mod real_node;
pub mod report;
pub mod scenario;
pub mod suite;

/// `text` cut to `max` characters, with a note of how much was left out.
pub fn truncate(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}… ({} more chars)", count - max)
}
