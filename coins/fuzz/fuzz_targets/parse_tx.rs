#![no_main]
use libfuzzer_sys::fuzz_target;

mod families;

fuzz_target!(|data: &[u8]| {
    if let Some((coin, rest)) = families::select(data) {
        if let Ok(tx) = coin.parse_tx(rest) {
            assert_eq!(tx.range, 0..rest.len());
            for o in &tx.outputs {
                let _ = coin.script_hash(&o.script);
                let _ = coin.name_index_script(&o.script);
                let _ = coin.script_to_address(&o.script);
                let _ = coin.is_unspendable(&o.script, 0);
            }
        }
    }
});
