//! New-tip detection: polls the node, and wakes up at once on a ZMQ `hashblock` notification
//! where the node publishes one (`zmqpubhashblock`), so a new block reaches wallets without
//! waiting for the next poll. ZMQ only shortens the wait: the poll stays the source of truth,
//! so a lost notification or a dead ZMQ socket never loses a block.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

use super::{hash_from_hex, DaemonApi, Hash32};

/// The node's best block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    /// height
    pub height: u32,
    /// hash, internal order
    pub hash: Hash32,
}

/// Watches the node's tip.
pub struct TipWatcher;

impl TipWatcher {
    /// Starts watching; the receiver holds the latest tip (`None` until the node first
    /// answers). The watcher stops when every receiver is dropped.
    pub fn spawn(
        daemon: Arc<dyn DaemonApi>,
        poll: Duration,
        zmq_url: Option<String>,
    ) -> watch::Receiver<Option<ChainTip>> {
        let (tx, rx) = watch::channel(None);
        let zmq = zmq_url.map(BlockNotifications::spawn);
        let wake = zmq
            .as_ref()
            .map_or_else(|| Arc::new(Notify::new()), BlockNotifications::notify);
        tokio::spawn(async move {
            // Owned by the poller: the subscription ends with it.
            let _zmq = zmq;
            loop {
                match daemon.chain_info().await {
                    Ok(info) => match hash_from_hex(&info.bestblockhash) {
                        Some(hash) => {
                            let tip = ChainTip {
                                height: info.blocks,
                                hash,
                            };
                            tx.send_if_modified(|current| {
                                let changed = *current != Some(tip);
                                *current = Some(tip);
                                changed
                            });
                        }
                        None => {
                            warn!(hash = %info.bestblockhash, "the daemon's best block hash is not a hash")
                        }
                    },
                    Err(e) => warn!(error = %e, "polling the daemon's tip failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = wake.notified() => debug!("woken by a ZMQ hashblock notification"),
                    _ = tx.closed() => return,
                }
            }
        });
        rx
    }
}

/// A subscription to the node's ZMQ `hashblock` notifications (`zmqpubhashblock`): each one
/// wakes whoever waits on [`Self::notify`]. One wake-up is kept while nobody waits, so a block
/// announced while the waiter is busy is not missed. The subscription reconnects by itself and
/// ends when this is dropped.
pub struct BlockNotifications {
    notify: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl BlockNotifications {
    /// Subscribes to `url` (`tcp://host:port`) on the current tokio runtime.
    pub fn spawn(url: String) -> Self {
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(listen_zmq(url, Arc::clone(&notify)));
        BlockNotifications { notify, task }
    }

    /// What each notification wakes.
    pub fn notify(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }
}

impl Drop for BlockNotifications {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen_zmq(url: String, wake: Arc<Notify>) {
    use zeromq::{Socket, SocketRecv};
    loop {
        let mut socket = zeromq::SubSocket::new();
        let connected = async {
            socket.connect(&url).await?;
            socket.subscribe("hashblock").await
        }
        .await;
        match connected {
            Ok(()) => loop {
                match socket.recv().await {
                    Ok(_) => {
                        debug!("ZMQ hashblock notification");
                        wake.notify_one();
                    }
                    Err(e) => {
                        warn!(url = %url, error = %e, "ZMQ hashblock subscription failed; reconnecting");
                        break;
                    }
                }
            },
            Err(e) => {
                warn!(url = %url, error = %e, "cannot subscribe to ZMQ hashblock; polling only until it comes back")
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::{Profile, SimChain, SimDaemon, Simulator};

    #[tokio::test]
    async fn polling_sees_new_blocks_and_reorgs() {
        let coin = anode_coins::lookup("Bitcoin", "regtest").unwrap();
        let mut chain = SimChain::new(coin, Profile::tiny(), 3).unwrap();
        chain.mine(5, true).unwrap();
        let sim = Simulator::new(chain);
        let mut tips = TipWatcher::spawn(
            Arc::new(SimDaemon::new(sim.clone())),
            Duration::from_millis(20),
            None,
        );
        let wait_for = |height: u32, tips: &mut watch::Receiver<Option<ChainTip>>| {
            let mut tips = tips.clone();
            async move {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    tips.wait_for(|t| t.is_some_and(|t| t.height == height)),
                )
                .await
                .expect("the tip arrives")
                .expect("the watcher runs")
                .expect("some tip")
            }
        };
        assert_eq!(
            wait_for(5, &mut tips).await.hash,
            sim.with_chain(|c| c.tip().hash)
        );
        sim.mine(2).unwrap();
        assert_eq!(
            wait_for(7, &mut tips).await.hash,
            sim.with_chain(|c| c.tip().hash)
        );
        let old = sim.with_chain(|c| c.tip().hash);
        sim.with_chain_mut(|c| c.reorg(1, 1, true)).unwrap();
        let after = tokio::time::timeout(
            Duration::from_secs(5),
            tips.wait_for(|t| t.is_some_and(|t| t.hash != old)),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        assert_eq!(after.height, 7, "a same-height reorg is a new tip too");
    }
}
