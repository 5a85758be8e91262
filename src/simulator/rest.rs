//! Bitcoin Core 31's REST interface as the simulator serves it: blocks (whole, in parts, or
//! as JSON), headers, block hashes by height, the outputs a block spends (`spenttxouts`,
//! what electrs reads), transactions, chain and mempool info. Formats and status codes are
//! Core's: `.bin` raw bytes, `.hex` hex and a newline, `.json` JSON and a newline; errors
//! are plain text ending in CRLF.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::control::Simulator;
use super::core_json::{self, Detail};
use super::rpc;
use super::server::respond;
use crate::daemon::hash_to_hex;
use anode_coins::Hash32;

/// Most headers one `headers` request returns.
const MAX_HEADERS: usize = 2000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Bin,
    Hex,
    Json,
    Unknown,
}

const ALL_FORMATS: &str = ".bin, .hex, .json";

/// Splits `hash.bin` into `hash` and the format (Core's `ParseDataFormat`).
fn split_format(part: &str) -> (&str, Format) {
    match part.rsplit_once('.') {
        Some((name, "bin")) => (name, Format::Bin),
        Some((name, "hex")) => (name, Format::Hex),
        Some((name, "json")) => (name, Format::Json),
        _ => (part, Format::Unknown),
    }
}

/// Core's `RESTERR`.
fn error(status: StatusCode, message: impl std::fmt::Display) -> Response<Full<Bytes>> {
    respond(status, "text/plain", format!("{message}\r\n"))
}

fn no_format(available: &str) -> Response<Full<Bytes>> {
    error(
        StatusCode::NOT_FOUND,
        format!("output format not found (available: {available})"),
    )
}

/// Bytes in the asked format; JSON is built only when asked for.
fn bytes_reply(
    format: Format,
    bytes: &[u8],
    json: impl FnOnce() -> Option<Value>,
    available: &str,
) -> Response<Full<Bytes>> {
    match format {
        Format::Bin => respond(StatusCode::OK, "application/octet-stream", bytes.to_vec()),
        Format::Hex => respond(
            StatusCode::OK,
            "text/plain",
            format!("{}\n", hex::encode(bytes)),
        ),
        Format::Json => match json() {
            Some(v) => json_reply(&v),
            None => no_format(available),
        },
        Format::Unknown => no_format(available),
    }
}

fn json_reply(v: &Value) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, "application/json", format!("{v}\n"))
}

fn parse_hash(text: &str) -> Option<Hash32> {
    (text.len() == 64)
        .then(|| crate::daemon::hash_from_hex(text))
        .flatten()
}

/// A query parameter's value (`?offset=0&size=80`).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Answers `GET path?query` if it is one of the REST endpoints, `None` otherwise.
pub(crate) fn handle(
    sim: &Simulator,
    path: &str,
    query: Option<&str>,
) -> Option<Response<Full<Bytes>>> {
    let rest = path.strip_prefix("/rest/")?;
    if sim.warming_up() {
        return Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable: Loading block index...",
        ));
    }
    let (endpoint, tail) = rest.split_once('/').unwrap_or((rest, ""));
    Some(match endpoint {
        "block" => match tail.strip_prefix("notxdetails/") {
            Some(tail) => block(sim, tail, 1),
            None => block(sim, tail, 3),
        },
        "blockpart" => block_part(sim, tail, query),
        "headers" => headers(sim, tail, query),
        "blockhashbyheight" => block_hash_by_height(sim, tail),
        "spenttxouts" => spent_txouts(sim, tail),
        "tx" => transaction(sim, tail),
        "chaininfo.json" => json_reply(&rpc::blockchain_info(sim)),
        "chaininfo" | "chaininfo.bin" | "chaininfo.hex" => no_format("json"),
        "mempool" => mempool(sim, tail, query),
        _ => return None,
    })
}

fn block(sim: &Simulator, part: &str, verbosity: i64) -> Response<Full<Bytes>> {
    let (hash_text, format) = split_format(part);
    let Some(hash) = parse_hash(hash_text) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Invalid hash: {hash_text}"),
        );
    };
    // through the fault switch (simulator/faults.rs), as every block a client can fetch
    let Some(raw) = sim.serve_block(&hash) else {
        return error(StatusCode::NOT_FOUND, format!("{hash_text} not found"));
    };
    bytes_reply(
        format,
        &raw,
        || sim.with_chain(|c| rpc::block_json(c, c.height_of(&hash)?, verbosity)),
        ALL_FORMATS,
    )
}

fn block_part(sim: &Simulator, part: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let (hash_text, format) = split_format(part);
    if !matches!(format, Format::Bin | Format::Hex) {
        return no_format(".bin, .hex");
    }
    let Some(hash) = parse_hash(hash_text) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Invalid hash: {hash_text}"),
        );
    };
    let number = |name: &str| query_param(query, name).and_then(|v| v.parse::<usize>().ok());
    let (Some(offset), Some(size)) = (number("offset"), number("size")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Block part needs an offset and a size: ?offset=<OFFSET>&size=<SIZE>",
        );
    };
    // through the fault switch (simulator/faults.rs), as every block a client can fetch
    let Some(raw) = sim.serve_block(&hash) else {
        return error(StatusCode::NOT_FOUND, format!("{hash_text} not found"));
    };
    match offset.checked_add(size).filter(|end| *end <= raw.len()) {
        Some(end) => bytes_reply(format, &raw[offset..end], || None, ".bin, .hex"),
        None => error(
            StatusCode::BAD_REQUEST,
            format!(
                "Block part out of range: offset {offset} and size {size} in a block of {} bytes",
                raw.len()
            ),
        ),
    }
}

fn headers(sim: &Simulator, part: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let (path, format) = split_format(part);
    // `<hash>?count=N` (Core 24 and later) or the older `<count>/<hash>`.
    let (count_text, hash_text) = match path.split_once('/') {
        Some((count, hash)) => (count, hash),
        None => (query_param(query, "count").unwrap_or("5"), path),
    };
    let count = match count_text.parse::<usize>() {
        Ok(n) if (1..=MAX_HEADERS).contains(&n) => n,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "Header count is invalid or out of acceptable range (1-{MAX_HEADERS}): {count_text}"
                ),
            )
        }
    };
    let Some(hash) = parse_hash(hash_text) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Invalid hash: {hash_text}"),
        );
    };
    // From the block upwards along the active chain; nothing when it is not on it.
    let heights: Vec<u32> = sim.with_chain(|c| match c.height_of(&hash) {
        Some(h) => (h..=c.height()).take(count).collect(),
        None => Vec::new(),
    });
    let bytes: Vec<u8> = sim.with_chain(|c| {
        heights
            .iter()
            .filter_map(|h| c.header_at(*h).map(|h| h.into_owned()))
            .flatten()
            .collect()
    });
    bytes_reply(
        format,
        &bytes,
        || {
            sim.with_chain(|c| {
                Some(Value::Array(
                    heights
                        .iter()
                        .filter_map(|h| rpc::header_json(c, *h).map(Value::Object))
                        .collect(),
                ))
            })
        },
        ALL_FORMATS,
    )
}

fn block_hash_by_height(sim: &Simulator, part: &str) -> Response<Full<Bytes>> {
    let (height_text, format) = split_format(part);
    let Ok(height) = height_text.parse::<u32>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Invalid height: {height_text}"),
        );
    };
    let Some(hash) = sim.with_chain(|c| c.hash_at(height)) else {
        return error(StatusCode::NOT_FOUND, "Block height out of range");
    };
    bytes_reply(
        format,
        &hash,
        || Some(json!({"blockhash": hash_to_hex(&hash)})),
        ALL_FORMATS,
    )
}

/// The outputs each transaction of a block spends, as block undo data holds them: one list
/// per transaction, the coinbase's empty.
fn spent_txouts(sim: &Simulator, part: &str) -> Response<Full<Bytes>> {
    let (hash_text, format) = split_format(part);
    let Some(hash) = parse_hash(hash_text) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Invalid hash: {hash_text}"),
        );
    };
    let lists = sim.with_chain(|c| {
        let height = c.height_of(&hash)?;
        let block = c.block(height)?;
        let parsed = c.coin().parse_block(&block.raw, Some(height)).ok()?;
        parsed
            .txs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i == 0 {
                    Some(Vec::new())
                } else {
                    rpc::spent_outputs(c, &block.raw[t.range.clone()])
                }
            })
            .collect::<Option<Vec<_>>>()
    });
    let Some(lists) = lists else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{hash_text} not found or its undo data is not available"),
        );
    };
    let mut bytes = Vec::new();
    crate::daemon::p2p::put_varint(&mut bytes, lists.len() as u64);
    for list in &lists {
        crate::daemon::p2p::put_varint(&mut bytes, list.len() as u64);
        for out in list {
            bytes.extend_from_slice(&out.value.to_le_bytes());
            crate::daemon::p2p::put_varint(&mut bytes, out.script.len() as u64);
            bytes.extend_from_slice(&out.script);
        }
    }
    bytes_reply(
        format,
        &bytes,
        || {
            sim.with_chain(|c| {
                let coin = c.coin();
                Some(Value::Array(
                    lists
                        .iter()
                        .map(|list| {
                            Value::Array(
                                list.iter()
                                    .map(|out| {
                                        json!({
                                            "value": core_json::amount(coin.as_ref(), out.value),
                                            "scriptPubKey": core_json::script_pub_key(coin.as_ref(), &out.script),
                                        })
                                    })
                                    .collect(),
                            )
                        })
                        .collect(),
                ))
            })
        },
        ALL_FORMATS,
    )
}

fn transaction(sim: &Simulator, part: &str) -> Response<Full<Bytes>> {
    let (txid_text, format) = split_format(part);
    let Some(txid) = parse_hash(txid_text) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Invalid hash: {txid_text}"),
        );
    };
    let Some((raw, height)) = sim.with_chain(|c| c.tx(&txid).map(|t| (t.raw.clone(), t.height)))
    else {
        return error(StatusCode::NOT_FOUND, format!("{txid_text} not found"));
    };
    bytes_reply(
        format,
        &raw,
        || {
            sim.with_chain(|c| {
                let mut o =
                    core_json::tx_object(c.coin().as_ref(), &txid, &raw, None, Detail::Plain);
                // Core puts the block hash before the hex here.
                let hex = o.remove("hex");
                if let Some(hash) = height.and_then(|h| c.hash_at(h)) {
                    o.insert("blockhash".into(), json!(hash_to_hex(&hash)));
                }
                if let Some(hex) = hex {
                    o.insert("hex".into(), hex);
                }
                Some(Value::Object(o))
            })
        },
        ALL_FORMATS,
    )
}

fn mempool(sim: &Simulator, part: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let flag = |name: &str, default: bool| match query_param(query, name) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!(
            "The \"{name}\" query parameter must be either \"true\" or \"false\", not \"{other}\""
        )),
    };
    match part {
        "info.json" => json_reply(&rpc::mempool_info(sim)),
        "contents.json" => {
            let flags = (flag("verbose", true), flag("mempool_sequence", false));
            let (verbose, sequence) = match flags {
                (Ok(v), Ok(s)) => (v, s),
                (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
            };
            match rpc::raw_mempool(sim, verbose, sequence) {
                Ok(v) => json_reply(&v),
                Err((_, message)) => error(StatusCode::BAD_REQUEST, message),
            }
        }
        "info" | "contents" | "info.bin" | "info.hex" | "contents.bin" | "contents.hex" => {
            no_format("json")
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "Invalid URI format. Expected /rest/mempool/<info|contents>.json",
        ),
    }
}
