//! # anode-benches: anode's benchmark harnesses
//!
//! [`storage`]: storage-engine micro-benchmarks, written once against `&dyn Store` and run for
//! every engine compiled in (features `rocksdb`, `lmdb`, `sqlite`). They drive the engine
//! crates directly and do not depend on the `anode` server crate. Two front ends run them:
//! the criterion bench `benches/storage.rs` (`cargo bench -p anode-benches --features ...`),
//! and the `storage-bench` binary, which prints one markdown table per workload with one
//! column per engine (the tables in `docs/backends.md`).

pub mod storage;
