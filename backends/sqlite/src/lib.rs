//! sqlite backend for `anode-store` (under construction).
