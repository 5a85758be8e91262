//! The indexer on every storage engine: sync from the simulator, reorgs of every depth up to
//! the limit, mempool tracking, and the UTXO set checked against a model of the chain.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use anode::index::SyncError;
use anode::query::{ChainQuery, ScriptHash};
use rand::{Rng, SeedableRng};
use support::index::*;

const REORG_LIMIT: u32 = 6;

#[test]
fn random_reorgs_leave_the_same_tables_as_a_fresh_sync_on_every_engine() {
    let rt = runtime();
    for engine in engines() {
        for seed in 0..6u64 {
            let dir = tempfile::tempdir().expect("tempdir");
            let sim = simulator(seed, 20);
            let store = open(engine, &dir.path().join("a"));
            // A small cache makes the initial sync flush several times.
            let idx = indexer(Arc::clone(&store), &sim, REORG_LIMIT, 16 << 10);
            catch_up(&rt, &idx);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            for _ in 0..25 {
                match rng.gen_range(0..4) {
                    0 => {
                        let n = rng.gen_range(1..4);
                        sim.with_chain_mut(|c| c.mine(n, true)).expect("mine");
                    }
                    1 => {
                        let n = rng.gen_range(1..4);
                        sim.with_chain_mut(|c| c.add_mempool_txs(n))
                            .expect("mempool");
                    }
                    _ => {
                        let depth = rng.gen_range(1..=REORG_LIMIT);
                        let new = rng.gen_range(depth..=depth + 2);
                        let with_mempool = rng.gen_bool(0.5);
                        sim.with_chain_mut(|c| c.reorg(depth, new, with_mempool))
                            .expect("reorg");
                    }
                }
                if rng.gen_bool(0.7) {
                    catch_up(&rt, &idx);
                }
            }
            catch_up(&rt, &idx);
            let fresh_store = open(engine, &dir.path().join("b"));
            let fresh = indexer(Arc::clone(&fresh_store), &sim, REORG_LIMIT, 16 << 10);
            catch_up(&rt, &fresh);
            let (a, b) = (dump(store.as_ref()), dump(fresh_store.as_ref()));
            if let Some(diff) = first_difference(&a, &b) {
                panic!("{engine} seed {seed}: reorged index differs from a fresh sync: {diff}");
            }
            assert_eq!(
                index_utxos(store.as_ref()),
                model_utxos(&sim),
                "{engine} seed {seed}: UTXO set"
            );
            assert_eq!(
                idx.tip().map(|t| t.1),
                Some(sim.with_chain(|c| c.tip().hash)),
                "{engine} seed {seed}: tip"
            );
        }
    }
}

#[test]
fn a_fork_deeper_than_the_undo_data_stops_with_a_clear_error() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = simulator(9, 30);
    let store = open(engines()[0], dir.path());
    let idx = indexer(Arc::clone(&store), &sim, 3, 1 << 20);
    catch_up(&rt, &idx);
    let before = dump(store.as_ref());
    sim.with_chain_mut(|c| c.reorg(5, 6, true)).expect("reorg");
    let err = rt
        .block_on(idx.catch_up(&mut anode::index::Progress::new(false)))
        .expect_err("a reorg of 5 with a limit of 3 must stop");
    assert!(
        matches!(err, SyncError::ReorgTooDeep { depth: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("REORG_LIMIT is 3"), "{err}");
    assert_eq!(
        first_difference(&dump(store.as_ref()), &before),
        None,
        "nothing was written"
    );
}

#[test]
fn reopening_resumes_from_the_last_flush() {
    let rt = runtime();
    for engine in engines().into_iter().filter(|e| *e != "memory") {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = simulator(4, 25);
        {
            let store = open(engine, dir.path());
            let idx = indexer(store, &sim, REORG_LIMIT, 1 << 20);
            catch_up(&rt, &idx);
        }
        sim.with_chain_mut(|c| c.mine(5, true)).expect("mine");
        sim.with_chain_mut(|c| c.reorg(2, 3, true)).expect("reorg");
        let store = open(engine, dir.path());
        let idx = indexer(Arc::clone(&store), &sim, REORG_LIMIT, 1 << 20);
        assert_eq!(
            idx.tip().map(|t| t.0),
            Some(25),
            "{engine}: resumes at the flushed tip"
        );
        catch_up(&rt, &idx);
        assert_eq!(index_utxos(store.as_ref()), model_utxos(&sim), "{engine}");
    }
}

/// Compares the mempool mirror with the simulator's mempool: every transaction present, with
/// height -1 exactly when a parent is unconfirmed, and the simulator's fee.
fn check_mempool(sim: &anode::simulator::Simulator, idx: &anode::index::Indexer, what: &str) {
    let expected: Vec<[u8; 32]> = sim.with_chain(|c| c.mempool().to_vec());
    let mirror = idx.mempool().read();
    assert_eq!(mirror.len(), expected.len(), "{what}: mempool size");
    let in_pool: HashSet<[u8; 32]> = expected.iter().copied().collect();
    sim.with_chain(|c| {
        for txid in &expected {
            let tx = c.tx(txid).expect("sim tx");
            let entry = mirror
                .get(txid)
                .unwrap_or_else(|| panic!("{what}: {} missing", anode::daemon::hash_to_hex(txid)));
            let unconfirmed_parent = tx.inputs.iter().any(|i| in_pool.contains(&i.txid));
            assert_eq!(
                entry.unconfirmed_parent, unconfirmed_parent,
                "{what}: height of a tx"
            );
            assert_eq!(entry.fee, tx.fee, "{what}: fee");
        }
    });
}

#[test]
fn the_mempool_follows_double_spends_chains_evictions_and_blocks() {
    let rt = runtime();
    for engine in engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = simulator(11, 30);
        let store = open(engine, dir.path());
        let idx = indexer(store, &sim, REORG_LIMIT, 1 << 20);
        catch_up(&rt, &idx);
        let refresh = |what: &str| {
            catch_up(&rt, &idx);
            rt.block_on(idx.refresh_mempool()).expect("refresh");
            check_mempool(&sim, &idx, &format!("{engine}: {what}"));
        };
        sim.with_chain_mut(|c| c.add_mempool_txs(8)).expect("txs");
        refresh("plain transactions");
        let chain_txs = sim
            .with_chain_mut(|c| c.add_mempool_chain(4))
            .expect("chain");
        refresh("a chain of unconfirmed parents");
        assert!(
            idx.mempool()
                .read()
                .get(&chain_txs[3])
                .expect("child")
                .unconfirmed_parent
        );
        let (_, evicted) = sim
            .with_chain_mut(|c| c.double_spend(None))
            .expect("double spend");
        refresh("a double-spend");
        for txid in &evicted {
            assert!(
                idx.mempool().read().get(txid).is_none(),
                "{engine}: evicted tx stays"
            );
        }
        let victim = sim.with_chain(|c| c.mempool()[0]);
        sim.with_chain_mut(|c| c.drop_mempool_tx(&victim));
        refresh("an eviction");
        // A block confirming only part of the mempool: new transactions arrive after mining.
        sim.with_chain_mut(|c| c.mine(1, true)).expect("mine");
        sim.with_chain_mut(|c| c.add_mempool_chain(3))
            .expect("chain");
        refresh("a block then new children");
        sim.with_chain_mut(|c| c.reorg(1, 1, false)).expect("reorg");
        refresh("a reorg returning transactions to the mempool");
        // No transaction is both confirmed and in the mirror, and balances add up.
        let query = idx.query();
        let scripts: Vec<ScriptHash> = sim.with_chain(|c| {
            c.mempool()
                .iter()
                .flat_map(|t| c.tx(t).expect("tx").outputs.clone())
                .map(|o| ScriptHash(regtest().script_hash(&o.script)))
                .collect()
        });
        for script in scripts {
            let history = rt
                .block_on(query.history(&script, 10_000))
                .expect("history");
            let confirmed: HashSet<_> = history.confirmed.iter().map(|e| e.txid).collect();
            assert!(
                history.mempool.iter().all(|e| !confirmed.contains(&e.txid)),
                "{engine}: a tx both confirmed and unconfirmed"
            );
            let balance = rt.block_on(query.balance(&script)).expect("balance");
            let unspent = rt
                .block_on(query.unspent(&script, 10_000))
                .expect("unspent");
            let total: i128 = unspent.iter().map(|u| i128::from(u.value)).sum();
            assert_eq!(
                total,
                i128::from(balance.confirmed) + i128::from(balance.unconfirmed),
                "{engine}: unspent outputs sum to the balance"
            );
        }
    }
}

/// A store that checks, for every batch, that each table's rows arrive as one run in key order
/// (what makes bulk writes fast on every engine), then hands the batch to a memory store.
struct OrderCheckingStore {
    inner: anode_store::MemoryStore,
    batches_checked: std::sync::atomic::AtomicUsize,
}

impl anode_store::ReadView for OrderCheckingStore {
    fn get(&self, table: &str, key: &[u8]) -> anode_store::Result<Option<Vec<u8>>> {
        self.inner.get(table, key)
    }
    fn scan(
        &self,
        table: &str,
        range: anode_store::KeyRange,
        direction: anode_store::Direction,
    ) -> anode_store::Result<anode_store::KvIter<'_>> {
        self.inner.scan(table, range, direction)
    }
}

impl anode_store::Store for OrderCheckingStore {
    fn engine(&self) -> &'static str {
        "memory"
    }
    fn tables(&self) -> &[anode_store::Table] {
        self.inner.tables()
    }
    fn snapshot(&self) -> anode_store::Result<Box<dyn anode_store::ReadView + '_>> {
        self.inner.snapshot()
    }
    fn write(
        &self,
        batch: anode_store::WriteBatch,
        durability: anode_store::Durability,
    ) -> anode_store::Result<()> {
        use anode::index::schema::{HISTORY, SPENDERS, TXID_INDEX, UTXO, UTXO_LOOKUP};
        for table in [TXID_INDEX, HISTORY, UTXO, UTXO_LOOKUP, SPENDERS] {
            let keys: Vec<&[u8]> = batch
                .ops()
                .filter(|op| op.table() == table)
                .filter_map(|op| match op {
                    anode_store::Op::Put { key, .. } | anode_store::Op::Delete { key, .. } => {
                        Some(key)
                    }
                    anode_store::Op::DeleteRange { .. } => None,
                })
                .collect();
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "{table}: rows of a batch out of key order"
            );
        }
        self.batches_checked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.write(batch, durability)
    }
    fn sync(&self) -> anode_store::Result<()> {
        self.inner.sync()
    }
    fn stats(&self) -> anode_store::Result<anode_store::StoreStats> {
        self.inner.stats()
    }
    fn path(&self) -> Option<&std::path::Path> {
        None
    }
}

#[test]
fn flushes_write_each_tables_rows_in_key_order() {
    let rt = runtime();
    let sim = simulator(11, 60);
    let store = Arc::new(OrderCheckingStore {
        inner: anode_store::MemoryStore::new(anode::index::schema::TABLES),
        batches_checked: Default::default(),
    });
    // A small cache: several flushes, later ones spending outputs of earlier ones.
    let idx = indexer(store.clone(), &sim, REORG_LIMIT, 64 << 10);
    catch_up(&rt, &idx);
    sim.with_chain_mut(|c| c.mine(3, true)).expect("mine");
    catch_up(&rt, &idx);
    assert!(
        store
            .batches_checked
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 4
    );
}
