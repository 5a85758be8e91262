//! The suite's own model of the chain and the protocol answers it implies.
//!
//! The model is built from the node's raw blocks and transactions (parsed by the coin layer,
//! which defines the chain's format) and computes every expected answer itself — status hashes
//! (docs/protocol.md, Status hashes), merkle and checkpoint branches (its Merkle branches),
//! balances, histories, UTXOs, outpoint statuses and the fee histogram (its
//! `mempool.get_fee_histogram`). It never asks the server's index or reuses
//! its query code, so a server bug cannot hide in the expectation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anode_coins::{Coin, Hash32, OutPoint, TxOut};
use anyhow::{anyhow, Context};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::node::Node;

/// Display-order hex of an internal-order hash (docs/protocol.md, Hashes and byte order).
pub fn display(hash: &Hash32) -> String {
    let mut h = *hash;
    h.reverse();
    hex::encode(h)
}

/// Internal-order hash from display hex.
pub fn from_display(text: &str) -> anyhow::Result<Hash32> {
    let mut bytes: Hash32 = hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("{text} is not a 32-byte hex hash"))?;
    bytes.reverse();
    Ok(bytes)
}

fn sha256(data: &[u8]) -> Hash32 {
    Sha256::digest(data).into()
}

fn sha256d(data: &[u8]) -> Hash32 {
    sha256(&sha256(data))
}

/// The merkle branch of leaf `index` and the root (docs/protocol.md, Merkle branches); `None` if
/// there is no such leaf.
pub fn merkle_branch(leaves: &[Hash32], index: usize) -> Option<(Vec<Hash32>, Hash32)> {
    if index >= leaves.len() {
        return None;
    }
    let (mut level, mut i, mut branch) = (leaves.to_vec(), index, Vec::new());
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(level[level.len() - 1]);
        }
        branch.push(level[i ^ 1]);
        level = level
            .chunks(2)
            .map(|p| sha256d(&[p[0], p[1]].concat()))
            .collect();
        i /= 2;
    }
    Some((branch, level[0]))
}

/// The status hash of a history given as (txid, height) in protocol order (docs/protocol.md,
/// Status hashes).
pub fn status_hash(entries: &[(Hash32, i64)]) -> Value {
    if entries.is_empty() {
        return Value::Null;
    }
    let text: String = entries
        .iter()
        .map(|(txid, h)| format!("{}:{h}:", display(txid)))
        .collect();
    json!(hex::encode(sha256(text.as_bytes())))
}

/// The compact fee histogram (docs/protocol.md, `mempool.get_fee_histogram`) from (fee, vsize)
/// pairs.
pub fn fee_histogram(txs: impl Iterator<Item = (u64, u64)>) -> Vec<(f64, u64)> {
    // Rates in tenths of sat/vB, rounded down, highest first.
    let mut by_rate: BTreeMap<u64, u64> = BTreeMap::new();
    for (fee, vsize) in txs {
        if vsize > 0 {
            *by_rate.entry(fee * 10 / vsize).or_default() += vsize;
        }
    }
    histogram_from_buckets(by_rate.into_iter().rev().map(|(r, s)| (r as f64 / 10.0, s)))
}

/// Step 2 of the fee histogram (docs/protocol.md, `mempool.get_fee_histogram`) over (rate,
/// size) buckets in descending rate order.
pub fn histogram_from_buckets(buckets: impl Iterator<Item = (f64, u64)>) -> Vec<(f64, u64)> {
    let (mut bin, mut acc, mut prev) = (30_000.0f64, 0u64, None::<f64>);
    let mut out = Vec::new();
    for (rate, size) in buckets {
        if let Some(p) = prev {
            if size as f64 > 2.0 * bin && acc > 0 {
                out.push((p, acc));
                acc = 0;
                bin *= 1.1;
            }
        }
        acc += size;
        if acc as f64 > bin {
            out.push((rate, acc));
            acc = 0;
            bin *= 1.1;
        }
        prev = Some(rate);
    }
    out
}

/// An output of a script: outpoint, value, and (height, position) of its funding tx when
/// confirmed.
type FundedOutput = (OutPoint, u64, Option<(u32, usize)>);

/// One block as the model knows it.
#[derive(Debug, Clone)]
pub struct Block {
    /// height on the active chain
    pub height: u32,
    /// internal-order hash
    pub hash: Hash32,
    /// header as served
    pub header: Vec<u8>,
    /// txids in block order
    pub txids: Vec<Hash32>,
}

/// One transaction as the model knows it.
#[derive(Debug, Clone)]
pub struct Tx {
    /// serialized
    pub raw: Vec<u8>,
    /// spent outpoints (none for a coinbase)
    pub inputs: Vec<OutPoint>,
    /// outputs
    pub outputs: Vec<TxOut>,
    /// virtual size
    pub vsize: u64,
    /// (height, position) when confirmed; `None` in the mempool
    pub confirmed: Option<(u32, usize)>,
}

/// The chain and mempool at one moment, read from the node.
pub struct ChainView {
    /// the coin (its format and script rules)
    pub coin: Arc<dyn Coin>,
    /// the active chain, genesis first
    pub blocks: Vec<Block>,
    /// every confirmed and mempool transaction
    pub txs: HashMap<Hash32, Tx>,
    /// mempool txids
    pub mempool: Vec<Hash32>,
    /// outpoint → spending txid (confirmed or mempool)
    pub spenders: HashMap<OutPoint, Hash32>,
    /// script hash → txids touching it (confirmed in chain order, then mempool)
    touching: HashMap<Hash32, Vec<Hash32>>,
}

/// Raw blocks already fetched, by hash, so each step reads only new blocks.
#[derive(Default)]
pub struct BlockCache {
    blocks: HashMap<Hash32, (Block, Vec<(Hash32, Tx)>)>,
}

impl ChainView {
    /// Reads the node's active chain and mempool.
    pub async fn load(
        node: &Node,
        coin: Arc<dyn Coin>,
        cache: &mut BlockCache,
    ) -> anyhow::Result<ChainView> {
        let count = node
            .call("getblockcount", json!([]))
            .await?
            .as_u64()
            .context("getblockcount is not a number")? as u32;
        let mut blocks = Vec::new();
        let mut txs = HashMap::new();
        for height in 0..=count {
            let hash_hex = node.call("getblockhash", json!([height])).await?;
            let hash = from_display(hash_hex.as_str().unwrap_or_default())
                .with_context(|| format!("getblockhash {height}"))?;
            if let std::collections::hash_map::Entry::Vacant(slot) = cache.blocks.entry(hash) {
                let raw_hex = node.call("getblock", json!([display(&hash), 0])).await?;
                let raw = hex::decode(raw_hex.as_str().unwrap_or_default())
                    .with_context(|| format!("block {height} is not hex"))?;
                let parsed = coin
                    .parse_block(&raw, Some(height))
                    .with_context(|| format!("parsing block {height}"))?;
                let block = Block {
                    height,
                    hash,
                    header: parsed.header.clone(),
                    txids: parsed.txs.iter().map(|t| t.txid).collect(),
                };
                let block_txs = parsed
                    .txs
                    .iter()
                    .enumerate()
                    .map(|(pos, t)| {
                        let tx = Tx {
                            raw: raw[t.range.clone()].to_vec(),
                            inputs: t.inputs.clone(),
                            outputs: t.outputs.clone(),
                            vsize: t.vsize() as u64,
                            confirmed: Some((height, pos)),
                        };
                        (t.txid, tx)
                    })
                    .collect();
                slot.insert((block, block_txs));
            }
            let (block, block_txs) = &cache.blocks[&hash];
            // A block may have been cached at another height before a reorg.
            let mut block = block.clone();
            block.height = height;
            for (txid, tx) in block_txs {
                let mut tx = tx.clone();
                tx.confirmed = tx.confirmed.map(|(_, pos)| (height, pos));
                txs.insert(*txid, tx);
            }
            blocks.push(block);
        }
        let mempool_ids = node.call("getrawmempool", json!([])).await?;
        let mut mempool = Vec::new();
        for id in mempool_ids.as_array().cloned().unwrap_or_default() {
            let text = id.as_str().unwrap_or_default();
            let txid = from_display(text)?;
            let raw_hex = node.call("getrawtransaction", json!([text, 0])).await?;
            let raw = hex::decode(raw_hex.as_str().unwrap_or_default())
                .with_context(|| format!("mempool tx {text} is not hex"))?;
            let parsed = coin
                .parse_tx(&raw)
                .with_context(|| format!("parsing mempool tx {text}"))?;
            txs.insert(
                txid,
                Tx {
                    vsize: parsed.vsize() as u64,
                    raw,
                    inputs: parsed.inputs,
                    outputs: parsed.outputs,
                    confirmed: None,
                },
            );
            mempool.push(txid);
        }
        let mut view = ChainView {
            coin,
            blocks,
            txs,
            mempool,
            spenders: HashMap::new(),
            touching: HashMap::new(),
        };
        view.index();
        Ok(view)
    }

    /// Fills `spenders` and `touching` from the blocks and the mempool.
    fn index(&mut self) {
        let first = if self.coin.index_genesis_outputs() {
            0
        } else {
            1
        };
        let mut order: Vec<Hash32> = self
            .blocks
            .iter()
            .skip(first)
            .flat_map(|b| b.txids.iter().copied())
            .collect();
        order.extend(self.mempool.iter().copied());
        for txid in order {
            let Some(tx) = self.txs.get(&txid) else {
                continue;
            };
            let mut scripts = Vec::new();
            for input in &tx.inputs {
                self.spenders.insert(*input, txid);
                if let Some(out) = self.indexed_output(input) {
                    scripts.push(self.coin.script_hash(&out.script));
                }
            }
            let height = tx.confirmed.map_or(self.height() + 1, |(h, _)| h);
            for out in &tx.outputs {
                if !self.coin.is_unspendable(&out.script, height) {
                    scripts.push(self.coin.script_hash(&out.script));
                }
            }
            for sh in scripts {
                let list = self.touching.entry(sh).or_default();
                if list.last() != Some(&txid) && !list.contains(&txid) {
                    list.push(txid);
                }
            }
        }
    }

    /// The output `outpoint` refers to, if it exists and is indexed (not unspendable, not a
    /// genesis output the coin leaves out).
    pub fn indexed_output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        let tx = self.txs.get(&outpoint.txid)?;
        let out = tx.outputs.get(outpoint.vout as usize)?;
        let height = match tx.confirmed {
            Some((0, _)) if !self.coin.index_genesis_outputs() => return None,
            Some((h, _)) => h,
            None => self.height() + 1,
        };
        (!self.coin.is_unspendable(&out.script, height)).then_some(out)
    }

    /// Tip height.
    pub fn height(&self) -> u32 {
        (self.blocks.len() - 1) as u32
    }

    /// The tip block.
    pub fn tip(&self) -> &Block {
        &self.blocks[self.blocks.len() - 1]
    }

    /// Fee of a transaction: inputs minus outputs, floored at 0 (unknown inputs count 0).
    pub fn fee(&self, tx: &Tx) -> u64 {
        let inputs: u64 = tx
            .inputs
            .iter()
            .filter_map(|o| self.txs.get(&o.txid)?.outputs.get(o.vout as usize))
            .map(|o| o.value)
            .sum();
        inputs.saturating_sub(tx.outputs.iter().map(|o| o.value).sum())
    }

    /// Height of a transaction as the protocol writes it (docs/protocol.md, Heights): block
    /// height, 0 in the mempool with confirmed inputs, -1 with an unconfirmed parent.
    pub fn protocol_height(&self, txid: &Hash32) -> Option<i64> {
        let tx = self.txs.get(txid)?;
        Some(match tx.confirmed {
            Some((h, _)) => i64::from(h),
            None if tx
                .inputs
                .iter()
                .any(|i| self.txs.get(&i.txid).is_some_and(|p| p.confirmed.is_none())) =>
            {
                -1
            }
            None => 0,
        })
    }

    /// The history of a script (in the order of docs/protocol.md, Status hashes): (txid, height)
    /// pairs.
    pub fn history(&self, scripthash: &Hash32) -> Vec<(Hash32, i64)> {
        let txids = self.touching.get(scripthash).cloned().unwrap_or_default();
        let mut confirmed = Vec::new();
        let mut mempool = Vec::new();
        for txid in txids {
            let (Some(tx), Some(h)) = (self.txs.get(&txid), self.protocol_height(&txid)) else {
                continue;
            };
            match tx.confirmed {
                Some(at) => confirmed.push((at, txid, h)),
                None => mempool.push((txid, h)),
            }
        }
        confirmed.sort_by_key(|(at, _, _)| *at);
        // 0 before -1, then txid in display order.
        mempool.sort_by_key(|(txid, h)| (std::cmp::Reverse(*h), display(txid)));
        confirmed
            .into_iter()
            .map(|(_, t, h)| (t, h))
            .chain(mempool)
            .collect()
    }

    /// Expected `get_history` items.
    pub fn history_json(&self, scripthash: &Hash32) -> Value {
        Value::Array(
            self.history(scripthash)
                .into_iter()
                .map(|(txid, h)| self.history_item(&txid, h))
                .collect(),
        )
    }

    fn history_item(&self, txid: &Hash32, height: i64) -> Value {
        if self.txs[txid].confirmed.is_some() {
            json!({"tx_hash": display(txid), "height": height})
        } else {
            json!({"tx_hash": display(txid), "height": height, "fee": self.fee(&self.txs[txid])})
        }
    }

    /// Expected `get_mempool` items.
    pub fn mempool_json(&self, scripthash: &Hash32) -> Value {
        Value::Array(
            self.history(scripthash)
                .into_iter()
                .filter(|(t, _)| self.txs[t].confirmed.is_none())
                .map(|(txid, h)| self.history_item(&txid, h))
                .collect(),
        )
    }

    /// Expected status.
    pub fn status(&self, scripthash: &Hash32) -> Value {
        status_hash(&self.history(scripthash))
    }

    /// Outputs of the script: (outpoint, value, confirmed position).
    fn outputs_of(&self, scripthash: &Hash32) -> Vec<FundedOutput> {
        let mut found = Vec::new();
        for txid in self.touching.get(scripthash).into_iter().flatten() {
            let tx = &self.txs[txid];
            for (vout, out) in tx.outputs.iter().enumerate() {
                let outpoint = OutPoint {
                    txid: *txid,
                    vout: vout as u32,
                };
                if self.indexed_output(&outpoint).is_some()
                    && self.coin.script_hash(&out.script) == *scripthash
                {
                    found.push((outpoint, out.value, tx.confirmed));
                }
            }
        }
        found
    }

    fn spent_in_chain(&self, outpoint: &OutPoint) -> bool {
        self.spenders
            .get(outpoint)
            .is_some_and(|s| self.txs.get(s).is_some_and(|t| t.confirmed.is_some()))
    }

    fn spent_in_mempool(&self, outpoint: &OutPoint) -> bool {
        self.spenders
            .get(outpoint)
            .is_some_and(|s| self.txs.get(s).is_some_and(|t| t.confirmed.is_none()))
    }

    /// Expected `get_balance` (docs/protocol.md, `blockchain.scripthash.get_balance`).
    pub fn balance_json(&self, scripthash: &Hash32) -> Value {
        let mut confirmed = 0i64;
        let mut unconfirmed = 0i64;
        for (outpoint, value, at) in self.outputs_of(scripthash) {
            let value = value as i64;
            if at.is_some() {
                if !self.spent_in_chain(&outpoint) {
                    confirmed += value;
                }
            } else {
                unconfirmed += value;
            }
            if self.spent_in_mempool(&outpoint) {
                unconfirmed -= value;
            }
        }
        json!({"confirmed": confirmed, "unconfirmed": unconfirmed})
    }

    /// Expected `listunspent` (docs/protocol.md, `blockchain.scripthash.listunspent`); mempool
    /// entries, whose order is unspecified, sorted by (txid, vout) — compare with
    /// [`sort_unconfirmed_utxos`] applied to the answer.
    pub fn listunspent_json(&self, scripthash: &Hash32) -> Value {
        let mut confirmed = Vec::new();
        let mut mempool = Vec::new();
        for (outpoint, value, at) in self.outputs_of(scripthash) {
            if self.spent_in_mempool(&outpoint) {
                continue;
            }
            match at {
                Some(at) if !self.spent_in_chain(&outpoint) => {
                    confirmed.push((at, outpoint, value))
                }
                Some(_) => {}
                None => mempool.push((display(&outpoint.txid), outpoint.vout, value)),
            }
        }
        confirmed.sort_by_key(|(at, o, _)| (*at, o.vout));
        mempool.sort();
        let mut items: Vec<Value> = confirmed
            .into_iter()
            .map(|((h, _), o, v)| {
                json!({"tx_hash": display(&o.txid), "tx_pos": o.vout, "height": h, "value": v})
            })
            .collect();
        items.extend(
            mempool
                .into_iter()
                .map(|(t, vout, v)| json!({"tx_hash": t, "tx_pos": vout, "height": 0, "value": v})),
        );
        Value::Array(items)
    }

    /// Expected outpoint status (docs/protocol.md, `blockchain.outpoint.subscribe`), computed
    /// from the chain.
    pub fn outpoint_status(&self, outpoint: &OutPoint) -> Value {
        if self.indexed_output(outpoint).is_none() {
            return json!({});
        }
        let Some(funder) = self.protocol_height(&outpoint.txid) else {
            return json!({});
        };
        match self.spenders.get(outpoint) {
            Some(spender) => json!({
                "funder_height": funder,
                "spender_txhash": display(spender),
                "spender_height": self.protocol_height(spender).unwrap_or(0),
            }),
            None => json!({"funder_height": funder}),
        }
    }

    /// Expected header checkpoint proof for `height` under `cp_height` (docs/protocol.md, Merkle
    /// branches): (branch, root).
    pub fn checkpoint(&self, height: u32, cp_height: u32) -> Option<(Value, Value)> {
        let leaves: Vec<Hash32> = self
            .blocks
            .get(..=cp_height as usize)?
            .iter()
            .map(|b| b.hash)
            .collect();
        let (branch, root) = merkle_branch(&leaves, height as usize)?;
        Some((
            json!(branch.iter().map(display).collect::<Vec<_>>()),
            json!(display(&root)),
        ))
    }

    /// Expected transaction branch of the tx at `pos` of block `height`.
    pub fn tx_branch(&self, height: u32, pos: usize) -> Option<Value> {
        let block = self.blocks.get(height as usize)?;
        let (branch, _) = merkle_branch(&block.txids, pos)?;
        Some(json!(branch.iter().map(display).collect::<Vec<_>>()))
    }

    /// Expected fee histogram.
    pub fn histogram(&self) -> Vec<(f64, u64)> {
        fee_histogram(
            self.mempool
                .iter()
                .filter_map(|t| self.txs.get(t))
                .map(|tx| (self.fee(tx), tx.vsize)),
        )
    }

    /// Scripts paid by the chain or mempool (indexed outputs only), with how many
    /// transactions touch each.
    pub fn scripts(&self) -> Vec<(Vec<u8>, usize)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let first = if self.coin.index_genesis_outputs() {
            0
        } else {
            1
        };
        let txids = self
            .blocks
            .iter()
            .skip(first)
            .flat_map(|b| b.txids.iter())
            .chain(self.mempool.iter());
        for txid in txids {
            for out_ in &self.txs[txid].outputs {
                let sh = self.coin.script_hash(&out_.script);
                if seen.insert(sh) {
                    let n = self.touching.get(&sh).map_or(0, Vec::len);
                    out.push((out_.script.clone(), n));
                }
            }
        }
        out
    }
}

/// Sorts the height-0 tail of a `listunspent` answer by (txid, vout), whose order the protocol
/// leaves unspecified (docs/protocol.md, `blockchain.scripthash.listunspent`).
pub fn sort_unconfirmed_utxos(items: &Value) -> Value {
    let Some(list) = items.as_array() else {
        return items.clone();
    };
    let (confirmed, mut mempool): (Vec<Value>, Vec<Value>) = list
        .iter()
        .cloned()
        .partition(|i| i["height"].as_i64().unwrap_or(0) > 0);
    mempool.sort_by_key(|i| {
        (
            i["tx_hash"].as_str().unwrap_or_default().to_string(),
            i["tx_pos"].as_u64().unwrap_or(0),
        )
    });
    Value::Array(confirmed.into_iter().chain(mempool).collect())
}

/// The Electrum script hash of a script (docs/protocol.md, Script hashes), display hex, as a
/// client computes it.
pub fn scripthash_hex(coin: &dyn Coin, script: &[u8]) -> String {
    display(&coin.script_hash(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> Hash32 {
        from_display(&c.to_string().repeat(64)).expect("hex")
    }

    #[test]
    fn status_vector_of_section_3_5() {
        let entries = [(id('a'), 3), (id('b'), 7), (id('c'), 0), (id('d'), -1)];
        assert_eq!(
            status_hash(&entries),
            json!("d9ea8657bbd23584fd4e30b37bf2c3a058f9be4751230697d42ac6125fd0125b")
        );
        assert_eq!(status_hash(&[]), Value::Null);
    }

    #[test]
    fn merkle_vector_of_section_3_6() {
        let leaves = [id('1'), id('2'), id('3')];
        let (branch, root) = merkle_branch(&leaves, 2).expect("leaf");
        assert_eq!(display(&branch[0]), "3".repeat(64));
        assert_eq!(
            display(&branch[1]),
            "ba982c0808a9a03c4e958ae612516f85faac3780dcb34d9ab83ceeaf74b54011"
        );
        assert_eq!(
            display(&root),
            "e6f5f3a082e7117eca9f5b077b5f9e08a64c213c92f4b6377af3825e5c89cdca"
        );
        let (branch, _) = merkle_branch(&leaves, 0).expect("leaf");
        assert_eq!(
            display(&branch[1]),
            "4d20e68c68750c24821ab555f35234854017219926f9f1c3fa9402493bb599ee"
        );
        assert!(merkle_branch(&leaves, 3).is_none());
        assert_eq!(merkle_branch(&leaves[..1], 0), Some((vec![], leaves[0])));
    }

    #[test]
    fn histogram_vectors_of_section_4_22() {
        let first = [
            (50.0, 20000),
            (20.5, 15000),
            (12.3, 5000),
            (5.0, 100000),
            (2.0, 8000),
            (1.0, 40000),
        ];
        assert_eq!(
            histogram_from_buckets(first.into_iter()),
            vec![(20.5, 35000), (12.3, 5000), (5.0, 100000), (1.0, 48000)]
        );
        let second = [
            (22.0, 1000),
            (21.0, 75000),
            (20.0, 1000),
            (19.0, 1000),
            (18.0, 900000),
            (17.0, 1000),
            (16.0, 1000),
            (15.0, 1000),
            (14.0, 1000),
            (13.0, 1000),
            (12.0, 10000000),
            (11.0, 1000),
            (10.0, 100000),
        ];
        assert_eq!(
            histogram_from_buckets(second.into_iter()),
            vec![
                (22.0, 1000),
                (21.0, 75000),
                (19.0, 2000),
                (18.0, 900000),
                (13.0, 5000),
                (12.0, 10000000),
                (10.0, 101000)
            ]
        );
        // Rates round down to 0.1 sat/vB: 299,999 sats over 30,001 vB is 9.9.
        assert_eq!(
            fee_histogram([(299_999, 30_001)].into_iter()),
            vec![(9.9, 30_001)]
        );
    }

    #[test]
    fn scripthash_vector_of_section_3_3() {
        let coin = anode_coins::lookup("Bitcoin", "mainnet").expect("coin");
        let script =
            hex::decode("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac").expect("hex");
        assert_eq!(
            scripthash_hex(coin.as_ref(), &script),
            "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"
        );
    }
}
