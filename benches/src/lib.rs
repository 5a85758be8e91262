//! anode-benches (under construction).
