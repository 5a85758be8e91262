//! lmdb backend for `anode-store` (under construction).
