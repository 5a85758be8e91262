//! The simulator as an in-process [`DaemonApi`]: no HTTP, same answers as [`super::serve`].

use async_trait::async_trait;
use serde_json::Value;

use super::control::Simulator;
use super::rpc::dispatch;
use crate::daemon::{
    hash_to_hex, ChainInfo, DaemonApi, DaemonError, FeeEstimate, Hash32, MempoolInfo, Result,
};

/// A [`Simulator`] behind the daemon trait.
#[derive(Clone)]
pub struct SimDaemon {
    sim: Simulator,
}

impl SimDaemon {
    /// Wraps a simulator.
    pub fn new(sim: Simulator) -> Self {
        SimDaemon { sim }
    }

    /// The simulator, for tests that drive the chain.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    fn check(&self) -> Result<()> {
        if self.sim.in_outage() {
            return Err(DaemonError::Unreachable {
                url: "simulator".into(),
                reason: "connection refused".into(),
            });
        }
        if self.sim.warming_up() {
            return Err(DaemonError::WarmingUp("Loading block index...".into()));
        }
        Ok(())
    }

    fn call(&self, method: &str, params: &[Value]) -> Result<Value> {
        self.check()?;
        dispatch(&self.sim, method, params).map_err(|(code, message)| match code {
            -32601 => DaemonError::MethodNotFound(method.to_string()),
            _ => DaemonError::Rpc { code, message },
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(method: &str, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| DaemonError::BadResponse {
        method: method.into(),
        reason: e.to_string(),
    })
}

#[async_trait]
impl DaemonApi for SimDaemon {
    fn describe(&self) -> String {
        "the simulated node".to_string()
    }

    async fn chain_info(&self) -> Result<ChainInfo> {
        parse("getblockchaininfo", self.call("getblockchaininfo", &[])?)
    }

    async fn block_count(&self) -> Result<u32> {
        self.check()?;
        Ok(self.sim.with_chain(|c| c.height()))
    }

    async fn block_hashes(&self, heights: std::ops::Range<u32>) -> Result<Vec<Hash32>> {
        self.check()?;
        self.sim.with_chain(|c| {
            heights
                .map(|h| {
                    c.hash_at(h).ok_or(DaemonError::Rpc {
                        code: -8,
                        message: "Block height out of range".into(),
                    })
                })
                .collect()
        })
    }

    async fn block(&self, hash: &Hash32) -> Result<Vec<u8>> {
        self.check()?;
        self.sim.serve_block(hash).ok_or_else(|| DaemonError::Rpc {
            code: -5,
            message: format!("Block not found: {}", hash_to_hex(hash)),
        })
    }

    async fn raw_transactions(&self, txids: &[Hash32]) -> Result<Vec<Option<Vec<u8>>>> {
        self.check()?;
        Ok(self.sim.with_chain(|c| {
            // As Core: the genesis coinbase is no transaction getrawtransaction returns.
            let genesis_coinbase = c.block(0).and_then(|g| g.txids.first().copied());
            txids
                .iter()
                .map(|t| {
                    if Some(*t) == genesis_coinbase {
                        return None;
                    }
                    c.tx(t).map(|tx| tx.raw.clone())
                })
                .collect()
        }))
    }

    async fn raw_transaction(&self, txid: &Hash32) -> Result<Vec<u8>> {
        let value = self.call("getrawtransaction", &[Value::String(hash_to_hex(txid))])?;
        let text = value.as_str().unwrap_or_default();
        hex::decode(text).map_err(|e| DaemonError::BadResponse {
            method: "getrawtransaction".into(),
            reason: e.to_string(),
        })
    }

    async fn raw_transaction_verbose(&self, txid: &Hash32) -> Result<Value> {
        self.call(
            "getrawtransaction",
            &[Value::String(hash_to_hex(txid)), Value::from(1)],
        )
    }

    async fn mempool_txids(&self) -> Result<Vec<Hash32>> {
        self.check()?;
        Ok(self.sim.with_chain(|c| c.mempool().to_vec()))
    }

    async fn mempool_info(&self) -> Result<MempoolInfo> {
        parse("getmempoolinfo", self.call("getmempoolinfo", &[])?)
    }

    async fn estimate_fee(&self, blocks: u32, _mode: Option<&str>) -> Result<FeeEstimate> {
        let v = self.call("estimatesmartfee", &[Value::from(blocks)])?;
        Ok(v.get("feerate")
            .and_then(Value::as_f64)
            .map_or(FeeEstimate::Unknown, FeeEstimate::Rate))
    }

    async fn node_version(&self) -> Result<crate::daemon::NodeVersion> {
        crate::daemon::NodeVersion::from_network_info(&self.call("getnetworkinfo", &[])?)
    }

    async fn relay_fee(&self) -> Result<f64> {
        let v = self.call("getnetworkinfo", &[])?;
        v.get("relayfee")
            .and_then(Value::as_f64)
            .ok_or(DaemonError::BadResponse {
                method: "getnetworkinfo".into(),
                reason: "no relayfee".into(),
            })
    }

    async fn send_raw_transaction(&self, raw_hex: &str) -> Result<Hash32> {
        let v = self.call("sendrawtransaction", &[Value::String(raw_hex.to_string())])?;
        v.as_str()
            .and_then(crate::daemon::hash_from_hex)
            .ok_or(DaemonError::BadResponse {
                method: "sendrawtransaction".into(),
                reason: "no txid".into(),
            })
    }

    async fn test_mempool_accept(&self, raw_hexes: &[String]) -> Result<Value> {
        self.call("testmempoolaccept", &[Value::from(raw_hexes.to_vec())])
    }

    async fn submit_package(&self, raw_hexes: &[String]) -> Result<Value> {
        self.call("submitpackage", &[Value::from(raw_hexes.to_vec())])
    }
}
