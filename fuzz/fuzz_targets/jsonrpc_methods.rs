//! Structure-aware sessions: `server.version` in a chosen protocol version, then requests whose
//! method comes from the method table and whose params are arbitrary JSON built from values a
//! client could know (the chain's txids, script hashes, scripts, heights), positional or
//! named, alone or in batches. Invariants: no panic; every request gets exactly one
//! well-formed response carrying its id.
#![no_main]
use anode_fuzz::{parse_output, Fixture};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const VERSIONS: &[&str] = &["1.4", "1.4.2", "1.5", "1.6", "1.7"];

#[derive(Arbitrary, Debug)]
struct Session {
    version: u8,
    /// answer in JSON-RPC 1.0 shape instead of 2.0
    v1_dialect: bool,
    requests: Vec<Request>,
}

#[derive(Arbitrary, Debug)]
struct Request {
    /// index into the method table; past its end, a method that does not exist
    method: u8,
    params: Vec<Param>,
    /// params as an object keyed by these names instead of a list
    named: Option<Vec<String>>,
    /// sent in one batch with the following requests
    batch_with_next: bool,
}

#[derive(Arbitrary, Debug)]
enum Param {
    Known(u16),
    KnownTruncated(u16, u8),
    Height(u8),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Text(String),
    List(Vec<Param>),
    Object(Vec<(String, Param)>),
}

impl Param {
    fn to_json(&self, fixture: &Fixture, depth: u32) -> Value {
        let known = |i: &u16| fixture.known_hex[*i as usize % fixture.known_hex.len()].clone();
        match self {
            Param::Known(i) => Value::from(known(i)),
            Param::KnownTruncated(i, n) => {
                let mut text = known(i);
                text.truncate(*n as usize);
                Value::from(text)
            }
            Param::Height(h) => Value::from(u32::from(*h) % (fixture.tip_height + 3)),
            Param::Int(i) => Value::from(*i),
            Param::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Param::Bool(b) => Value::from(*b),
            Param::Null => Value::Null,
            Param::Text(s) => Value::from(s.clone()),
            Param::List(items) if depth < 4 => Value::Array(
                items
                    .iter()
                    .map(|p| p.to_json(fixture, depth + 1))
                    .collect(),
            ),
            Param::Object(members) if depth < 4 => Value::Object(
                members
                    .iter()
                    .map(|(k, p)| (k.clone(), p.to_json(fixture, depth + 1)))
                    .collect::<Map<_, _>>(),
            ),
            Param::List(_) | Param::Object(_) => Value::Null,
        }
    }
}

fuzz_target!(|session: Session| {
    let fixture = Fixture::get();
    let methods = anode::fuzzing::method_names();
    let version = VERSIONS[session.version as usize % VERSIONS.len()];
    let envelope = |id: usize, method: &str, params: Value| {
        if session.v1_dialect {
            json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params})
        } else {
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        }
    };
    let mut input =
        serde_json::to_vec(&envelope(0, "server.version", json!(["fuzz", version]))).expect("JSON");
    input.push(b'\n');
    let mut batch: Vec<Value> = Vec::new();
    let count = session.requests.len();
    for (i, request) in session.requests.iter().enumerate() {
        let id = i + 1;
        let method = methods
            .get(request.method as usize)
            .copied()
            .unwrap_or("blockchain.no_such_method");
        let params: Vec<Value> = request
            .params
            .iter()
            .map(|p| p.to_json(fixture, 0))
            .collect();
        let params = match &request.named {
            // JSON-RPC 1.0 has positional params only; the server refuses the object form.
            Some(names) if !session.v1_dialect => {
                Value::Object(names.iter().cloned().zip(params).collect::<Map<_, _>>())
            }
            _ => Value::Array(params),
        };
        batch.push(envelope(id, method, params));
        if !request.batch_with_next || i + 1 == count {
            let message = if batch.len() == 1 {
                batch.pop().expect("one request")
            } else {
                Value::Array(std::mem::take(&mut batch))
            };
            let line = serde_json::to_vec(&message).expect("JSON");
            if line.len() > anode_fuzz::MAX_RECV {
                // An oversized line is dropped unanswered; the raw-stream target covers it.
                return;
            }
            input.extend_from_slice(&line);
            input.push(b'\n');
        }
    }
    let output = fixture.session(&input);
    let mut answered = vec![0usize; count + 1];
    for answer in parse_output(&output) {
        let id: usize = answer
            .id
            .parse()
            .unwrap_or_else(|_| panic!("an answer with id {}", answer.id));
        assert!(id <= count, "an answer to id {id} that was never sent");
        answered[id] += 1;
        if id == 0 {
            assert_eq!(answer.error, None, "negotiating {version} failed");
        }
    }
    for (id, n) in answered.iter().enumerate() {
        assert_eq!(
            *n,
            1,
            "request {id} answered {n} times; output {}",
            String::from_utf8_lossy(&output)
        );
    }
});
