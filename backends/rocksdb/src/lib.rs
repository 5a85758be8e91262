//! rocksdb backend for `anode-store` (under construction).
