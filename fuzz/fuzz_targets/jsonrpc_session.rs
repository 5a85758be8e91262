//! A client's raw byte stream, whatever it holds (partial and oversized lines, batches, huge
//! numbers, invalid UTF-8), through the server's line framing, envelope parsing and every
//! method it names. Invariants: no panic; the output is newline-terminated ASCII JSON; every
//! response is well formed and answers a request of the input, never more often than the
//! input sent that id.
#![no_main]
use anode_fuzz::{parse_output, request_ids, Fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixture = Fixture::get();
    let output = fixture.session(data);
    let mut sent = request_ids(data);
    for answer in parse_output(&output) {
        if answer.id == "null" {
            continue;
        }
        let left = sent.get_mut(&answer.id).unwrap_or_else(|| {
            panic!(
                "a response to id {} that no request carried (output {})",
                answer.id,
                String::from_utf8_lossy(&output)
            )
        });
        assert!(*left > 0, "id {} answered more often than sent", answer.id);
        *left -= 1;
    }
});
