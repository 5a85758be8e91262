#![no_main]
use libfuzzer_sys::fuzz_target;

mod families;

fuzz_target!(|data: &[u8]| {
    if let Some((coin, rest)) = families::select(data) {
        let height = rest.first().map(|&b| b as u32 * 10_000);
        if let Ok(block) = coin.parse_block(rest, height) {
            for tx in &block.txs {
                assert!(tx.range.end <= rest.len());
                let _ = coin.parse_tx(&rest[tx.range.clone()]);
            }
        }
    }
});
