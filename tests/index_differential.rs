//! The index against the reference oracle (`query::reference`, a naive scan of the simulated
//! chain), on every engine: after random blocks, mempool changes and reorgs, every script's
//! history, status, balance and UTXOs, outpoint statuses, merkle proofs, headers and checkpoint
//! proofs must agree.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use anode::query::reference::ReferenceQuery;
use anode::query::{ChainQuery, OutPoint, ScriptHash};
use rand::{Rng, SeedableRng};
use support::index::*;

/// Every script, every outpoint, and every confirmed txid with its height.
type ChainFacts = (BTreeSet<Vec<u8>>, Vec<OutPoint>, Vec<([u8; 32], u32)>);

fn compare(
    rt: &tokio::runtime::Runtime,
    index: &dyn ChainQuery,
    oracle: &ReferenceQuery,
    sim: &anode::simulator::Simulator,
    what: &str,
) {
    oracle.refresh();
    let coin = regtest();
    assert_eq!(index.tip(), oracle.tip(), "{what}: tip");
    let (scripts, outpoints, confirmed): ChainFacts = sim.with_chain(|c| {
        let mut scripts = BTreeSet::new();
        let mut outpoints = Vec::new();
        for (txid, tx) in c.all_txs() {
            for (vout, out) in tx.outputs.iter().enumerate() {
                scripts.insert(out.script.clone());
                outpoints.push(OutPoint {
                    txid: *txid,
                    vout: vout as u32,
                });
            }
        }
        let confirmed = (1..=c.height())
            .flat_map(|h| {
                c.block(h)
                    .expect("block")
                    .txids
                    .iter()
                    .map(move |t| (*t, h))
                    .collect::<Vec<_>>()
            })
            .collect();
        (scripts, outpoints, confirmed)
    });
    for script in &scripts {
        let sh = ScriptHash(coin.script_hash(script));
        let ours = rt.block_on(index.history(&sh, 100_000)).expect("history");
        let theirs = rt.block_on(oracle.history(&sh, 100_000)).expect("history");
        assert_eq!(ours, theirs, "{what}: history of {}", sh.to_display_hex());
        assert_eq!(ours.status_hash(), theirs.status_hash(), "{what}: status");
        assert_eq!(
            rt.block_on(index.balance(&sh)).expect("balance"),
            rt.block_on(oracle.balance(&sh)).expect("balance"),
            "{what}: balance of {}",
            sh.to_display_hex()
        );
        let mut a = rt.block_on(index.unspent(&sh, 100_000)).expect("unspent");
        let mut b = rt.block_on(oracle.unspent(&sh, 100_000)).expect("unspent");
        a.sort_by_key(|u| (u.height, u.txid, u.vout));
        b.sort_by_key(|u| (u.height, u.txid, u.vout));
        assert_eq!(a, b, "{what}: unspent of {}", sh.to_display_hex());
        assert_eq!(
            rt.block_on(index.mempool_history(&sh)).expect("mempool"),
            rt.block_on(oracle.mempool_history(&sh)).expect("mempool"),
            "{what}: mempool history"
        );
    }
    for outpoint in outpoints.iter().step_by(3) {
        assert_eq!(
            rt.block_on(index.outpoint_status(outpoint))
                .expect("status"),
            rt.block_on(oracle.outpoint_status(outpoint))
                .expect("status"),
            "{what}: outpoint {}:{}",
            anode::daemon::hash_to_hex(&outpoint.txid),
            outpoint.vout
        );
    }
    for (txid, height) in confirmed.iter().step_by(5) {
        assert_eq!(
            rt.block_on(index.merkle(txid, *height)).expect("merkle"),
            rt.block_on(oracle.merkle(txid, *height)).expect("merkle"),
            "{what}: merkle"
        );
    }
    let tip = index.tip().height;
    assert_eq!(
        rt.block_on(index.headers(0, tip + 5)).expect("headers"),
        rt.block_on(oracle.headers(0, tip + 5)).expect("headers"),
        "{what}: headers"
    );
    for (height, cp) in [(0, tip), (tip / 2, tip), (tip, tip), (1, tip / 2 + 1)] {
        assert_eq!(
            rt.block_on(index.header_proof(height, cp)).expect("proof"),
            rt.block_on(oracle.header_proof(height, cp)).expect("proof"),
            "{what}: header proof {height} {cp}"
        );
    }
    assert_eq!(
        index.fee_histogram(),
        oracle.fee_histogram(),
        "{what}: fee histogram"
    );
    assert_eq!(
        index.mempool_size(),
        oracle.mempool_size(),
        "{what}: mempool size"
    );
}

#[test]
fn the_index_answers_like_the_reference_oracle_on_every_engine() {
    let rt = runtime();
    for engine in engines() {
        for seed in 0..2u64 {
            let dir = tempfile::tempdir().expect("tempdir");
            let sim = simulator(100 + seed, 25);
            let store = open(engine, dir.path());
            let idx = indexer(Arc::clone(&store), &sim, 6, 64 << 10);
            let oracle = ReferenceQuery::new(sim.clone());
            // Every history through the cache: read, extended by new blocks, dropped by reorgs.
            let query = idx.query().with_history_cache_min_len(1);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            for step in 0..10 {
                match rng.gen_range(0..5) {
                    0 | 1 => {
                        sim.with_chain_mut(|c| c.mine(rng.gen_range(1..3), true))
                            .expect("mine");
                    }
                    2 => {
                        sim.with_chain_mut(|c| c.add_mempool_txs(4)).expect("txs");
                        sim.with_chain_mut(|c| c.add_mempool_chain(3))
                            .expect("chain");
                    }
                    3 => {
                        let _ = sim.with_chain_mut(|c| c.double_spend(None));
                    }
                    _ => {
                        let depth = rng.gen_range(1..4);
                        sim.with_chain_mut(|c| c.reorg(depth, depth + 1, rng.gen_bool(0.5)))
                            .expect("reorg");
                    }
                }
                catch_up(&rt, &idx);
                rt.block_on(idx.refresh_mempool()).expect("mempool");
                compare(
                    &rt,
                    &query,
                    &oracle,
                    &sim,
                    &format!("{engine} seed {seed} step {step}"),
                );
            }
        }
    }
}

#[test]
fn a_chain_directory_indexes_like_the_reference_oracle() {
    use anode::simulator::chaindir::{self, ChainDir, Expect, GenerateOptions, HistoryProfile};
    use anode::simulator::{Profile, SimChain, Simulator};
    let rt = runtime();
    let chain_dir = tempfile::tempdir().expect("tempdir");
    let options = GenerateOptions {
        txs: 4_000,
        blocks: Some(30),
        seed: 11,
        profile: HistoryProfile::mainnet_history(),
    };
    chaindir::generate(chain_dir.path(), regtest(), &options, |_| {}).expect("generate");
    let base = std::sync::Arc::new(
        ChainDir::open(chain_dir.path(), regtest(), &Expect::default()).expect("open"),
    );
    for engine in engines() {
        let chain = SimChain::over_chain_dir(regtest(), Profile::tiny(), 11, Arc::clone(&base))
            .expect("chain");
        let sim = Simulator::new(chain);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(engine, dir.path());
        // A small cache: the initial sync flushes several times.
        let idx = indexer(Arc::clone(&store), &sim, 6, 256 << 10);
        let oracle = ReferenceQuery::new(sim.clone());
        let query = idx.query();
        catch_up(&rt, &idx);
        compare(
            &rt,
            &query,
            &oracle,
            &sim,
            &format!("{engine}: chain directory"),
        );
        // Blocks mined on top spend the directory's outputs; a reorg replaces some of them.
        sim.with_chain_mut(|c| c.mine(3, true)).expect("mine");
        sim.with_chain_mut(|c| c.add_mempool_txs(6)).expect("txs");
        catch_up(&rt, &idx);
        rt.block_on(idx.refresh_mempool()).expect("mempool");
        compare(
            &rt,
            &query,
            &oracle,
            &sim,
            &format!("{engine}: mined on top"),
        );
        sim.with_chain_mut(|c| c.reorg(2, 3, true)).expect("reorg");
        catch_up(&rt, &idx);
        rt.block_on(idx.refresh_mempool()).expect("mempool");
        compare(
            &rt,
            &query,
            &oracle,
            &sim,
            &format!("{engine}: after a reorg"),
        );
    }
}
