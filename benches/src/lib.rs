//! # anode-benches: anode's benchmark harnesses
//!
//! [`run`]: the end-to-end suite behind the `anode-bench` binary (the crate's default binary):
//! `anode-bench all --profile small|medium|large` syncs the simulator's `mainnet-like` chain
//! into every engine compiled in, runs query, wallet-storm, new-block, mempool and reorg
//! workloads against the running stack over TCP, and writes `report.md` with SVG plots;
//! `anode-bench peer` runs the client-side workloads against any Electrum server.
//!
//! [`storage`]: storage-engine micro-benchmarks, written once against `&dyn Store` and run for
//! every engine compiled in (features `rocksdb`, `lmdb`, `sqlite`). They drive the engine
//! crates directly. Two front ends run them: the criterion bench `benches/storage.rs`
//! (`cargo bench -p anode-benches --features ...`), and the `storage-bench` binary, which
//! prints one markdown table per workload with one column per engine (the tables in
//! `docs/backends.md`).

pub mod run;
pub mod storage;
