#![no_main]
use libfuzzer_sys::fuzz_target;

mod families;

fuzz_target!(|data: &[u8]| {
    if let Some((coin, rest)) = families::select(data) {
        if let Ok(s) = std::str::from_utf8(rest) {
            if let Ok(script) = coin.address_to_script(s) {
                // A decoded address encodes back to an address that decodes the same.
                if let Some(a) = coin.script_to_address(&script) {
                    assert_eq!(coin.address_to_script(&a).ok(), Some(script));
                }
            }
        }
        let _ = coin.script_to_address(rest);
        let _ = coin.header_hash(rest);
    }
});
