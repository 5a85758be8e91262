//! anode-conformance (under construction).
