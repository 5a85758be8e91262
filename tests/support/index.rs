//! Helpers shared by the indexer tests: stores of every engine, syncing from the simulator,
//! table dumps, and a model of the UTXO set computed straight from the simulated chain.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anode::daemon::DaemonApi;
use anode::index::keys::{history_key, read_history_row};
use anode::index::schema::{HASHX_LEN, HISTORY, TABLES, TX_HASHES, UTXO};
use anode::index::{IndexWriter, Indexer, Progress, SyncOptions, WriterOptions};
use anode::simulator::{Profile, SimChain, SimDaemon, Simulator};
use anode::store_factory::{available_engines, open_store, Tuning};
use anode_coins::Coin;
use anode_store::{Direction, KeyRange, MemoryStore, Store};

/// Every engine compiled in, plus the in-memory one.
pub fn engines() -> Vec<&'static str> {
    let mut engines = available_engines();
    engines.push("memory");
    engines
}

/// A fresh store of `engine` under `dir` (ignored for memory).
pub fn open(engine: &str, dir: &Path) -> Arc<dyn Store> {
    if engine == "memory" {
        return Arc::new(MemoryStore::new(TABLES));
    }
    open_store(engine, dir, TABLES, Tuning { cache_mb: 64 })
        .unwrap_or_else(|e| panic!("{engine}: {e}"))
}

/// Bitcoin regtest.
pub fn regtest() -> Arc<dyn Coin> {
    anode_coins::lookup("Bitcoin", "regtest").expect("regtest")
}

/// A simulator over a tiny-profile chain of `blocks` blocks from `seed`.
pub fn simulator(seed: u64, blocks: u32) -> Simulator {
    let mut chain = SimChain::new(regtest(), Profile::tiny(), seed).expect("chain");
    chain.mine(blocks, true).expect("mine");
    Simulator::new(chain)
}

/// An indexer over `store` following `sim`.
pub fn indexer(
    store: Arc<dyn Store>,
    sim: &Simulator,
    reorg_limit: u32,
    cache_bytes: usize,
) -> Indexer {
    indexer_with_options(store, sim, reorg_limit, cache_bytes, SyncOptions::default())
}

/// [`indexer`] with sync options of the test's choosing.
pub fn indexer_with_options(
    store: Arc<dyn Store>,
    sim: &Simulator,
    reorg_limit: u32,
    cache_bytes: usize,
    options: SyncOptions,
) -> Indexer {
    let writer = IndexWriter::open(
        store,
        regtest(),
        WriterOptions {
            reorg_limit,
            cache_bytes,
        },
    )
    .expect("open index");
    let daemon: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(sim.clone()));
    Indexer::new(writer, daemon, regtest(), reorg_limit, options)
}

/// Catches `indexer` up with its node.
pub fn catch_up(runtime: &tokio::runtime::Runtime, indexer: &Indexer) {
    runtime
        .block_on(indexer.catch_up(&mut Progress::new(false)))
        .expect("catch up");
}

/// A runtime for the tests.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every row of every table, `history` expanded to one row per (script, tx number).
pub fn dump(store: &dyn Store) -> BTreeMap<(&'static str, Vec<u8>), Vec<u8>> {
    let mut rows = BTreeMap::new();
    for table in TABLES {
        for row in store
            .scan(table.name, KeyRange::all(), Direction::Forward)
            .expect("scan")
        {
            let (key, value) = row.expect("row");
            if table.name == HISTORY {
                // A history row holds one flush's tx numbers of a script, so where the rows
                // split depends on when flushes happened: compare one logical row per
                // (script, tx number) instead.
                let mut tx_nums = Vec::new();
                read_history_row(&key, &value, &mut tx_nums).expect("a readable history row");
                for tx_num in tx_nums {
                    rows.insert(
                        (
                            table.name,
                            history_key(&key[..HASHX_LEN].try_into().expect("hashX"), tx_num),
                        ),
                        Vec::new(),
                    );
                }
                continue;
            }
            rows.insert((table.name, key), value);
        }
    }
    rows
}

/// Describes the first difference between two dumps.
pub fn first_difference(
    a: &BTreeMap<(&'static str, Vec<u8>), Vec<u8>>,
    b: &BTreeMap<(&'static str, Vec<u8>), Vec<u8>>,
) -> Option<String> {
    for (key, value) in a {
        match b.get(key) {
            None => return Some(format!("only in first: {} {}", key.0, hex::encode(&key.1))),
            Some(v) if v != value => {
                return Some(format!(
                    "differs: {} {}: {} vs {}",
                    key.0,
                    hex::encode(&key.1),
                    hex::encode(value),
                    hex::encode(v)
                ))
            }
            _ => {}
        }
    }
    b.keys()
        .find(|k| !a.contains_key(*k))
        .map(|k| format!("only in second: {} {}", k.0, hex::encode(&k.1)))
}

/// The confirmed UTXO set of the simulated chain: (txid, vout) → (hashX, value). Outputs
/// spent only in the mempool still count as unspent.
pub fn model_utxos(sim: &Simulator) -> BTreeMap<([u8; 32], u32), (Vec<u8>, u64)> {
    let coin = regtest();
    sim.with_chain(|chain| {
        let mut set = BTreeMap::new();
        for height in 1..=chain.height() {
            let block = chain.block(height).expect("block");
            for txid in &block.txids {
                let tx = chain.tx(txid).expect("tx");
                for (vout, out) in tx.outputs.iter().enumerate() {
                    if coin.is_unspendable(&out.script, height) {
                        continue;
                    }
                    let outpoint = anode_coins::OutPoint {
                        txid: *txid,
                        vout: vout as u32,
                    };
                    let spent_in_chain = chain
                        .output_spender(&outpoint)
                        .flatten()
                        .and_then(|s| chain.tx(&s))
                        .is_some_and(|s| s.height.is_some());
                    if !spent_in_chain {
                        let hashx = coin.script_hash(&out.script)[..HASHX_LEN].to_vec();
                        set.insert((*txid, vout as u32), (hashx, out.value));
                    }
                }
            }
        }
        set
    })
}

/// The index's UTXO set in the same form.
pub fn index_utxos(store: &dyn Store) -> BTreeMap<([u8; 32], u32), (Vec<u8>, u64)> {
    let mut set = BTreeMap::new();
    for row in store
        .scan(UTXO, KeyRange::all(), Direction::Forward)
        .expect("scan")
    {
        let (key, value) = row.expect("row");
        let hashx = key[..HASHX_LEN].to_vec();
        let tx_num = &key[HASHX_LEN..HASHX_LEN + 5];
        let vout = u32::from_be_bytes(key[HASHX_LEN + 5..].try_into().expect("vout"));
        let txid: [u8; 32] = store
            .get(TX_HASHES, tx_num)
            .expect("get")
            .expect("txid of a utxo")
            .try_into()
            .expect("32 bytes");
        let value = u64::from_le_bytes(value.try_into().expect("8 bytes"));
        set.insert((txid, vout), (hashx, value));
    }
    set
}

/// The whole server (`anode::app::Stack`) over `sim` with a TCP listener on a free port, fast
/// polling, no padding and no peer discovery; `extra` adds or overrides options. Returns the
/// stack, its TCP address and the database directory (kept alive by the caller).
pub async fn start_stack(
    sim: &Simulator,
    extra: &[(&'static str, &str)],
) -> (
    Arc<anode::app::Stack>,
    std::net::SocketAddr,
    tempfile::TempDir,
) {
    start_stack_with(Arc::new(SimDaemon::new(sim.clone())), extra).await
}

/// [`start_stack`] over a given node client.
pub async fn start_stack_with(
    daemon: Arc<dyn DaemonApi>,
    extra: &[(&'static str, &str)],
) -> (
    Arc<anode::app::Stack>,
    std::net::SocketAddr,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut flags = vec![
        ("network", "regtest".to_string()),
        ("services", "tcp://127.0.0.1:0".to_string()),
        ("poll_interval_blocks_ms", "50".to_string()),
        ("poll_interval_mempool_ms", "50".to_string()),
        ("pad_tcp", "false".to_string()),
        ("peer_discovery", "off".to_string()),
    ];
    flags.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let raw = anode::config::RawConfig::defaults().with_flags(flags);
    let stack = anode::app::Stack::start(anode::app::StackOptions {
        config: anode::config::Config::from_raw(&raw).expect("config"),
        coin: regtest(),
        daemon,
        db_dir: dir.path().join("db"),
        log: None,
        progress_bar: false,
    })
    .await
    .expect("stack");
    let addr = stack
        .server
        .lock()
        .as_ref()
        .and_then(|s| s.local_addr(anode::config::ServiceKind::Tcp))
        .expect("tcp listener");
    (stack, addr, dir)
}
