//! The `query` command: history, unspent outputs and balance of addresses, script hashes or
//! scripts, as text lines (docs/admin.md), read through [`ChainQuery`].

use anode_coins::Coin;

use crate::query::{ChainQuery, QueryError, ScriptHash};

/// Most entries read from the index for one item: `query` shows the first `limit`, and says
/// how many more there are, up to this many.
const READ_CAP: usize = 1_000_000;

/// What an item names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Address(String),
    ScriptHash,
    Script(String),
}

/// Reads `item` as an address of `coin`, then as a 64-digit script hash (display order, as
/// clients send it), then as a hex output script.
fn resolve(coin: &dyn Coin, item: &str) -> Result<(Target, ScriptHash), String> {
    let item = item.trim();
    if let Ok(script) = coin.address_to_script(item) {
        return Ok((Target::Address(item.to_string()), script_hash(&script)));
    }
    if item.len() == 64 {
        if let Some(sh) = ScriptHash::from_display_hex(item) {
            return Ok((Target::ScriptHash, sh));
        }
    }
    match hex::decode(item) {
        Ok(script) if !script.is_empty() => {
            Ok((Target::Script(item.to_string()), script_hash(&script)))
        }
        _ => Err(format!(
            "{item:?} is neither a {} address, a script hash nor a hex script",
            coin.params().coin
        )),
    }
}

fn script_hash(script: &[u8]) -> ScriptHash {
    use sha2::{Digest, Sha256};
    ScriptHash(Sha256::digest(script).into())
}

/// `value` smallest units as a decimal amount of whole coins.
pub fn format_amount(value: i128, value_per_coin: u64) -> String {
    let per = i128::from(value_per_coin.max(1));
    let digits = value_per_coin.max(1).to_string().len() - 1;
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.abs();
    if digits == 0 {
        return format!("{sign}{abs}");
    }
    format!("{sign}{}.{:0digits$}", abs / per, abs % per)
}

fn query_error(e: &QueryError) -> String {
    match e {
        QueryError::HistoryTooLarge => format!("more than {READ_CAP} entries"),
        other => other.to_string(),
    }
}

/// The text lines `query` answers for `items`, at most `limit` history and UTXO lines each.
pub async fn query_lines(
    chain: &dyn ChainQuery,
    coin: &dyn Coin,
    items: &[String],
    limit: usize,
) -> Vec<String> {
    let params = coin.params();
    let mut lines = Vec::new();
    for item in items {
        let (target, sh) = match resolve(coin, item) {
            Ok(resolved) => resolved,
            Err(e) => {
                lines.push(format!("Error: {e}"));
                continue;
            }
        };
        match target {
            Target::Address(a) => lines.push(format!("Address: {a}")),
            Target::Script(s) => lines.push(format!("Script: {s}")),
            Target::ScriptHash => {}
        }
        lines.push(format!("Script hash: {}", sh.to_display_hex()));

        match chain.history(&sh, READ_CAP).await {
            Ok(history) => {
                let entries: Vec<_> = history.entries().collect();
                if entries.is_empty() {
                    lines.push("No history found".into());
                }
                for (n, entry) in entries.iter().take(limit).enumerate() {
                    lines.push(format!(
                        "History #{n}: height {} tx_hash {}",
                        entry.height,
                        crate::daemon::hash_to_hex(&entry.txid)
                    ));
                }
                if entries.len() > limit {
                    lines.push(format!("… {} more history entries", entries.len() - limit));
                }
            }
            Err(e) => lines.push(format!("History: {}", query_error(&e))),
        }

        match chain.unspent(&sh, READ_CAP).await {
            Ok(utxos) => {
                if utxos.is_empty() {
                    lines.push("No UTXOs found".into());
                }
                for (n, utxo) in utxos.iter().take(limit).enumerate() {
                    lines.push(format!(
                        "UTXO #{n}: tx_hash {} tx_pos {} height {} value {}",
                        crate::daemon::hash_to_hex(&utxo.txid),
                        utxo.vout,
                        utxo.height,
                        format_amount(i128::from(utxo.value), params.value_per_coin)
                    ));
                }
                if utxos.len() > limit {
                    lines.push(format!("… {} more UTXOs", utxos.len() - limit));
                }
            }
            Err(e) => lines.push(format!("UTXOs: {}", query_error(&e))),
        }

        match chain.balance(&sh).await {
            Ok(balance) => lines.push(format!(
                "Balance: {} {} confirmed, {} {} unconfirmed",
                format_amount(i128::from(balance.confirmed), params.value_per_coin),
                params.ticker,
                format_amount(i128::from(balance.unconfirmed), params.value_per_coin),
                params.ticker,
            )),
            Err(e) => lines.push(format!("Balance: {}", query_error(&e))),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_in_whole_coins() {
        assert_eq!(format_amount(150_000_000, 100_000_000), "1.50000000");
        assert_eq!(format_amount(-1, 100_000_000), "-0.00000001");
        assert_eq!(format_amount(0, 100_000_000), "0.00000000");
        assert_eq!(format_amount(7, 1), "7");
    }

    #[test]
    fn items_resolve_as_address_script_hash_or_script() {
        let coin = anode_coins::lookup("Bitcoin", "mainnet").expect("bitcoin");
        let (t, sh) = resolve(&*coin, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa").expect("address");
        assert_eq!(
            t,
            Target::Address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa".into())
        );
        let script = "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac";
        let (t, from_script) = resolve(&*coin, script).expect("script");
        assert_eq!(t, Target::Script(script.into()));
        assert_eq!(from_script, sh);
        let (t, from_hash) = resolve(&*coin, &sh.to_display_hex()).expect("hash");
        assert_eq!((t, from_hash), (Target::ScriptHash, sh));
        assert!(resolve(&*coin, "not-an-address").is_err());
    }
}
