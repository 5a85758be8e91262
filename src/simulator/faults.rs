//! Faults a test switches on to see what a server does with a misbehaving node: blocks served
//! damaged (another block, a changed transaction, cut short, with bytes appended, garbage) and
//! HTTP answers that fail (an error page, a body cut off mid-way, JSON cut short). Set from
//! Rust ([`Simulator::corrupt_block`], [`Simulator::fail_http`]) or with the `sim_fault_*`
//! control methods (docs/simulator.md, Faults). A deeper reorganisation than a server keeps
//! undo data for, or a tip that goes backwards, is `sim_reorg` with more blocks taken than
//! given.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::control::Simulator;
use super::rpc::RpcError;
use crate::daemon::hash_to_hex;
use anode_coins::Hash32;

/// How a served block is damaged. Whatever path serves it (REST, `getblock`, P2P, the
/// in-process [`super::SimDaemon`]) serves the same damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCorruption {
    /// the bytes of the block below (above, for the genesis block): a well-formed block that
    /// is not the one asked for
    OtherBlock,
    /// the last byte of the last transaction (its lock time) changed: the header, and so the
    /// block hash, are intact but the transactions no longer give the header's merkle root
    ChangedTransaction,
    /// cut in the middle of its transactions
    Truncated,
    /// four bytes appended after the last transaction
    TrailingBytes,
    /// not a block: bytes that do not parse, or, as `getblock`'s hex, text that is not hex
    Garbage,
}

impl BlockCorruption {
    /// Every kind, with the name the control method takes.
    pub const ALL: [(BlockCorruption, &'static str); 5] = [
        (BlockCorruption::OtherBlock, "other-block"),
        (BlockCorruption::ChangedTransaction, "changed-tx"),
        (BlockCorruption::Truncated, "truncated"),
        (BlockCorruption::TrailingBytes, "trailing-bytes"),
        (BlockCorruption::Garbage, "garbage"),
    ];

    /// The kind named `name` (as in [`BlockCorruption::ALL`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(kind, _)| *kind)
    }
}

/// How an HTTP answer fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFault {
    /// HTTP 500 with a plain-text page instead of the answer
    ServerError,
    /// the whole length announced, half the body sent, then the connection closed
    CutBody,
    /// a complete HTTP answer whose body is the first half of the JSON (JSON-RPC answers only:
    /// REST requests neither get nor use up this fault)
    TruncatedJson,
}

impl HttpFault {
    /// Every kind, with the name the control method takes.
    pub const ALL: [(HttpFault, &'static str); 3] = [
        (HttpFault::ServerError, "500"),
        (HttpFault::CutBody, "cut-body"),
        (HttpFault::TruncatedJson, "truncated-json"),
    ];

    /// The kind named `name` (as in [`HttpFault::ALL`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(kind, _)| *kind)
    }
}

/// The faults switched on.
#[derive(Debug, Default)]
pub(super) struct Faults {
    blocks: BTreeMap<u32, BlockCorruption>,
    http: Option<(HttpFault, u32)>,
}

impl Simulator {
    /// Serves the block at `height` damaged as `kind` until [`Simulator::clear_faults`].
    pub fn corrupt_block(&self, height: u32, kind: BlockCorruption) {
        self.state().faults.blocks.insert(height, kind);
    }

    /// Fails the next `requests` HTTP requests (only JSON-RPC ones for
    /// [`HttpFault::TruncatedJson`]) as `kind`, replacing any HTTP fault still pending.
    pub fn fail_http(&self, kind: HttpFault, requests: u32) {
        self.state().faults.http = (requests > 0).then_some((kind, requests));
    }

    /// HTTP requests still to fail.
    pub fn http_faults_left(&self) -> u32 {
        self.state().faults.http.map_or(0, |(_, left)| left)
    }

    /// Serves everything intact again.
    pub fn clear_faults(&self) {
        self.state().faults = Faults::default();
    }

    /// Uses up one HTTP fault for a request, when one applies to it.
    pub(super) fn take_http_fault(&self, json_rpc: bool) -> Option<HttpFault> {
        let mut state = self.state();
        let (kind, left) = state.faults.http?;
        if kind == HttpFault::TruncatedJson && !json_rpc {
            return None;
        }
        state.faults.http = (left > 1).then_some((kind, left - 1));
        Some(kind)
    }

    /// The block with `hash` on the active chain as the node serves it: its bytes, damaged
    /// when a fault is set for its height.
    pub fn serve_block(&self, hash: &Hash32) -> Option<Vec<u8>> {
        let state = self.state();
        let chain = &state.chain;
        let raw = chain.raw_block_by_hash(hash)?;
        let fault = chain
            .height_of(hash)
            .and_then(|height| Some((height, *state.faults.blocks.get(&height)?)));
        let Some((height, kind)) = fault else {
            return Some(raw.into_owned());
        };
        let mut raw = raw.into_owned();
        match kind {
            BlockCorruption::OtherBlock => {
                let other = if height == 0 { 1 } else { height - 1 };
                if let Some(block) = chain.block(other) {
                    raw = block.raw.clone();
                }
            }
            BlockCorruption::ChangedTransaction => {
                if let Some(last) = raw.last_mut() {
                    *last ^= 0x01;
                }
            }
            BlockCorruption::Truncated => {
                let keep = 81 + raw.len().saturating_sub(81) / 2;
                raw.truncate(keep);
            }
            BlockCorruption::TrailingBytes => raw.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]),
            // A header, then a transaction count claiming 2^64 - 1 transactions.
            BlockCorruption::Garbage => raw = vec![0xff; 120],
        }
        Some(raw)
    }

    /// The block with `hash` as `getblock HASH 0` answers it: hex, or text that is not hex
    /// under [`BlockCorruption::Garbage`].
    pub fn serve_block_hex(&self, hash: &Hash32) -> Option<String> {
        let garbage = {
            let state = self.state();
            let height = state.chain.height_of(hash)?;
            state.faults.blocks.get(&height) == Some(&BlockCorruption::Garbage)
        };
        if garbage {
            return Some(format!("{} is no block, this is no hex", hash_to_hex(hash)));
        }
        self.serve_block(hash).map(hex::encode)
    }
}

/// The `sim_fault_*` control methods.
pub(super) fn control(sim: &Simulator, method: &str, params: &[Value]) -> Result<Value, RpcError> {
    let names = |all: &[&str]| all.join(", ");
    match method {
        "sim_fault_block" => {
            let height = params
                .first()
                .and_then(Value::as_u64)
                .and_then(|h| u32::try_from(h).ok())
                .ok_or((-8, "parameter 1 must be a block height".to_string()))?;
            let kind = params
                .get(1)
                .and_then(Value::as_str)
                .and_then(BlockCorruption::from_name)
                .ok_or_else(|| {
                    let all: Vec<_> = BlockCorruption::ALL.iter().map(|(_, n)| *n).collect();
                    (-8, format!("parameter 2 must be one of {}", names(&all)))
                })?;
            sim.corrupt_block(height, kind);
            Ok(Value::Null)
        }
        "sim_fault_http" => {
            let kind = params
                .first()
                .and_then(Value::as_str)
                .and_then(HttpFault::from_name)
                .ok_or_else(|| {
                    let all: Vec<_> = HttpFault::ALL.iter().map(|(_, n)| *n).collect();
                    (-8, format!("parameter 1 must be one of {}", names(&all)))
                })?;
            let requests = match params.get(1) {
                None => 1,
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or((-8, "parameter 2 must be a number of requests".to_string()))?,
            };
            sim.fail_http(kind, requests);
            Ok(json!(requests))
        }
        "sim_clear_faults" => {
            sim.clear_faults();
            Ok(Value::Null)
        }
        _ => Err((-32601, "Method not found".into())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::*;
    use crate::simulator::{serve, Auth, Profile, SimChain};

    fn simulator() -> Simulator {
        let coin = anode_coins::lookup("Bitcoin", "regtest").expect("regtest");
        let mut chain = SimChain::new(Arc::clone(&coin), Profile::tiny(), 31).expect("chain");
        chain.mine(6, true).expect("mine");
        Simulator::new(chain)
    }

    async fn call(http: &reqwest::Client, url: &str, method: &str, params: Value) -> Value {
        let request = json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params});
        let answer = http.post(url).json(&request).send().await.expect("send");
        answer.json::<Value>().await.expect("a JSON answer")
    }

    #[tokio::test]
    async fn a_damaged_block_is_served_the_same_way_over_rest_getblock_and_in_process() {
        let sim = simulator();
        let server = serve(
            sim.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            Auth::default(),
        )
        .await
        .expect("serve");
        let url = server.url(&Auth::default());
        let http = reqwest::Client::new();
        let (hash, intact) = sim.with_chain(|c| {
            let block = c.block(4).expect("block");
            (block.hash, block.raw.clone())
        });
        let rest = format!("{url}rest/block/{}.bin", hash_to_hex(&hash));
        let answer = call(&http, &url, "sim_fault_block", json!([4, "trailing-bytes"])).await;
        assert_eq!(answer["error"], Value::Null, "{answer}");
        let mut damaged = intact.clone();
        damaged.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let over_rest = http.get(&rest).send().await.expect("get");
        assert_eq!(over_rest.bytes().await.expect("body").to_vec(), damaged);
        let hex = call(&http, &url, "getblock", json!([hash_to_hex(&hash), 0])).await;
        assert_eq!(hex["result"], json!(hex::encode(&damaged)));
        assert_eq!(sim.serve_block(&hash), Some(damaged));

        call(&http, &url, "sim_fault_block", json!([4, "garbage"])).await;
        let hex = call(&http, &url, "getblock", json!([hash_to_hex(&hash), 0])).await;
        let text = hex["result"].as_str().expect("a string");
        assert!(hex::decode(text).is_err(), "{text}");
        let refused = call(&http, &url, "sim_fault_block", json!([4, "scrambled"])).await;
        assert_eq!(refused["error"]["code"], -8, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("other-block, changed-tx")),
            "{refused}"
        );

        call(&http, &url, "sim_clear_faults", json!([])).await;
        let over_rest = http.get(&rest).send().await.expect("get");
        assert_eq!(over_rest.bytes().await.expect("body").to_vec(), intact);
        // Blocks of other heights were never touched.
        let other = sim.with_chain(|c| c.block(3).expect("block").into_owned());
        assert_eq!(sim.serve_block(&other.hash), Some(other.raw));
    }

    #[tokio::test]
    async fn http_faults_fail_the_next_requests_then_answers_are_whole_again() {
        let sim = simulator();
        let server = serve(
            sim.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            Auth::default(),
        )
        .await
        .expect("serve");
        let url = server.url(&Auth::default());
        let http = reqwest::Client::new();
        let hash = sim.with_chain(|c| c.block(2).expect("block").hash);
        let rest = format!("{url}rest/block/{}.bin", hash_to_hex(&hash));

        let armed = call(&http, &url, "sim_fault_http", json!(["500", 2])).await;
        assert_eq!(armed["result"], 2, "{armed}");
        for _ in 0..2 {
            let page = http.get(&rest).send().await.expect("get");
            assert_eq!(page.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR);
        }
        assert_eq!(sim.http_faults_left(), 0);
        let whole = http.get(&rest).send().await.expect("get");
        assert!(whole.status().is_success());

        sim.fail_http(HttpFault::CutBody, 1);
        let cut = http.get(&rest).send().await.expect("the head arrives");
        assert!(cut.bytes().await.is_err(), "the body is cut off");

        sim.fail_http(HttpFault::TruncatedJson, 1);
        // REST answers are not JSON: they neither get nor use up the fault.
        let block = http.get(&rest).send().await.expect("get");
        assert!(block.bytes().await.is_ok());
        assert_eq!(sim.http_faults_left(), 1);
        let request = json!({"jsonrpc": "1.0", "id": 1, "method": "getblockcount", "params": []});
        let short = http.post(&url).json(&request).send().await.expect("post");
        let body = short.bytes().await.expect("a complete HTTP answer");
        assert!(
            serde_json::from_slice::<Value>(&body).is_err(),
            "half of the JSON"
        );
        assert_eq!(
            call(&http, &url, "getblockcount", json!([])).await["result"],
            6
        );
    }
}
