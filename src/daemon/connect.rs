//! Builds the daemon the server talks to from its configuration: JSON-RPC with failover, blocks
//! from the configured source (`block_source`: auto = REST where the node has it, else JSON
//! hex; rpc; rest; p2p).

use std::sync::Arc;

use anode_coins::Coin;

use super::{DaemonApi, DaemonError, P2pDaemon, P2pOptions, Result, RpcDaemon, RpcDaemonOptions};
use crate::config::{BlockSource, Config};

/// The node URLs of `config`, completed with the coin's RPC port where they name none (as
/// ElectrumX reads `DAEMON_URL`).
pub fn daemon_urls(config: &Config, coin: &dyn Coin) -> Vec<String> {
    config
        .daemon_urls
        .iter()
        .map(|url| super::rpc::with_default_port(url, coin.params().rpc_port))
        .collect()
}

fn rpc_client(config: &Config, coin: &dyn Coin) -> Result<Arc<RpcDaemon>> {
    let use_rest = match config.block_source {
        BlockSource::Auto => None,
        BlockSource::Rest => Some(true),
        BlockSource::Rpc | BlockSource::P2p => Some(false),
    };
    Ok(Arc::new(RpcDaemon::new(RpcDaemonOptions {
        urls: daemon_urls(config, coin),
        cookie_file: config.daemon_cookie_file.clone(),
        use_rest,
        ..RpcDaemonOptions::default()
    })?))
}

/// The node client for `config` and `coin`.
pub fn connect(config: &Config, coin: &dyn Coin) -> Result<Arc<dyn DaemonApi>> {
    with_block_source(rpc_client(config, coin)?, config, coin)
}

/// Like [`connect`], after checking that the node serves the coin's network, keeps every block
/// and has a transaction index, so that a misconfigured node stops the server at start-up
/// with advice instead of failing later.
pub async fn connect_checked(config: &Config, coin: &dyn Coin) -> Result<Arc<dyn DaemonApi>> {
    let rpc = rpc_client(config, coin)?;
    let params = coin.params();
    rpc.preflight(
        &super::hash_to_hex(&params.genesis_hash),
        &params.coin,
        &params.net,
    )
    .await?;
    with_block_source(rpc, config, coin)
}

fn with_block_source(
    rpc: Arc<RpcDaemon>,
    config: &Config,
    coin: &dyn Coin,
) -> Result<Arc<dyn DaemonApi>> {
    if config.block_source != BlockSource::P2p {
        return Ok(rpc);
    }
    let params = coin.params();
    let options = P2pOptions::from_params(params).map_err(|e| DaemonError::P2p {
        peer: String::new(),
        source: e,
    })?;
    let addr = match &config.daemon_p2p_addr {
        Some(addr) => addr.clone(),
        None => {
            let host = reqwest::Url::parse(&config.daemon_urls[0])
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| "127.0.0.1".to_string());
            let port = params.p2p_port.ok_or_else(|| DaemonError::BadUrl {
                url: config.daemon_urls[0].clone(),
                reason: format!(
                    "block_source = p2p, but {} {} has no default P2P port: set daemon_p2p_addr (DAEMON_P2P_ADDR)",
                    params.coin, params.net
                ),
            })?;
            format!("{host}:{port}")
        }
    };
    Ok(Arc::new(P2pDaemon::new(rpc, addr, options)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;
    use crate::simulator::{serve, serve_p2p, Auth, Profile, SimChain, Simulator};

    fn config(pairs: Vec<(&'static str, String)>) -> Config {
        Config::from_raw(&RawConfig::defaults().with_flags(pairs)).unwrap()
    }

    #[tokio::test]
    async fn every_block_source_serves_the_same_blocks() {
        let coin = anode_coins::lookup("Bitcoin", "regtest").unwrap();
        let mut chain = SimChain::new(Arc::clone(&coin), Profile::tiny(), 12).unwrap();
        chain.mine(10, true).unwrap();
        let sim = Simulator::new(chain);
        let http = serve(sim.clone(), "127.0.0.1:0".parse().unwrap(), Auth::default())
            .await
            .unwrap();
        let p2p = serve_p2p(sim.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let expected = sim.with_chain(|c| c.block(7).unwrap().into_owned());
        for source in ["auto", "rpc", "rest", "p2p"] {
            let config = config(vec![
                ("daemon_url", format!("http://{}/", http.addr)),
                ("block_source", source.to_string()),
                ("daemon_p2p_addr", p2p.addr.to_string()),
            ]);
            let daemon = connect(&config, &*coin).unwrap();
            assert_eq!(
                daemon.block(&expected.hash).await.unwrap(),
                expected.raw,
                "{source}"
            );
            assert_eq!(daemon.block_count().await.unwrap(), 10, "{source}");
        }
    }

    #[test]
    fn p2p_needs_an_address_the_network_cannot_supply() {
        let coin = anode_coins::lookup("Namecoin", "mainnet").unwrap();
        let config = config(vec![
            ("daemon_url", "http://127.0.0.1:8336/".into()),
            ("block_source", "p2p".into()),
        ]);
        let err = connect(&config, &*coin)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DAEMON_P2P_ADDR") || err.contains("magic"),
            "{err}"
        );
    }
}
