//! One client session, whatever its transport: JSON-RPC envelope handling (docs/protocol.md,
//! JSON-RPC), the first-message rule (its Before negotiation), concurrency and throttling (its
//! Cost model), request timeouts, the bounded outgoing queue, and the per-session subscription
//! state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};

use super::cost::{self, SessionCost, Throttle};
use super::json::{self, py_str, thousands, to_wire, RpcError};
use super::notify::Round;
use super::transport::{Frame, FrameReader, FrameWriter};
use super::version::ProtocolVersion;
use super::{methods, SessionInfo, Shared};
use crate::config::ServiceKind;
use crate::query::gate::{ReadGate, REQUEST_GATE};
use crate::query::{Hash32, HashX, OutPoint, OutpointStatus, ScriptHash};

/// The JSON-RPC dialect fixed by the first message (docs/protocol.md, Dialects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// every message must say `"jsonrpc":"2.0"`
    Strict2,
    /// `jsonrpc` unchecked, replies in 2.0 shape
    Loose,
    /// `{"result":…,"error":…,"id":…}` replies
    V1,
}

fn dialect_of(value: &Value) -> Dialect {
    fn one(v: &Value) -> Dialect {
        match v.get("jsonrpc").and_then(Value::as_str) {
            Some("2.0") => Dialect::Strict2,
            Some("1.0") => Dialect::V1,
            _ if v.get("result").is_some() && v.get("error").is_some() => Dialect::V1,
            _ => Dialect::Loose,
        }
    }
    match value {
        Value::Array(items) if !items.is_empty() => {
            let all: Vec<Dialect> = items.iter().map(one).collect();
            if all.iter().all(|d| *d == all[0]) {
                all[0]
            } else if all.contains(&Dialect::Strict2) {
                Dialect::Strict2
            } else if all.contains(&Dialect::V1) {
                Dialect::V1
            } else {
                Dialect::Loose
            }
        }
        other => one(other),
    }
}

/// A script subscription.
#[derive(Debug, Clone)]
pub struct ScriptSub {
    /// the script hash
    pub script: ScriptHash,
    /// what notifications carry as the first parameter
    pub alias: String,
    /// the last status computed
    pub status: Option<Hash32>,
    /// whether that status involved mempool transactions (re-checked on new blocks)
    pub mempool: bool,
}

/// An outpoint subscription (1.7).
#[derive(Debug, Clone)]
pub struct OutpointSub {
    /// the last status computed
    pub status: OutpointStatus,
}

/// A session's subscriptions.
#[derive(Debug, Default)]
pub struct Subs {
    /// subscribed to headers
    pub headers: bool,
    /// the last tip sent (height, hash)
    pub last_header: Option<(u32, Hash32)>,
    /// script subscriptions by hashX
    pub scripts: HashMap<HashX, ScriptSub>,
    /// outpoint subscriptions
    pub outpoints: HashMap<OutPoint, OutpointSub>,
}

impl Subs {
    pub(crate) fn count(&self) -> usize {
        self.scripts.len() + self.outpoints.len()
    }
}

pub(crate) struct State {
    pub version: Option<ProtocolVersion>,
    pub client_name: String,
    dialect: Option<Dialect>,
    cost: SessionCost,
    pub subs: Subs,
}

/// Bytes handed to a session's writer and not yet written, counted in the server-wide total
/// (`Shared::unsent`) until the message is written or dropped with its session.
struct Unsent {
    bytes: usize,
    total: Arc<AtomicUsize>,
}

impl Unsent {
    fn new(bytes: usize, total: &Arc<AtomicUsize>) -> Unsent {
        total.fetch_add(bytes, Ordering::SeqCst);
        Unsent {
            bytes,
            total: Arc::clone(total),
        }
    }
}

impl Drop for Unsent {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// How often a pending write checks whether the server is over its unsent-bytes budget.
const PRESSURE_CHECK: Duration = Duration::from_millis(250);
/// Over the budget, a session whose socket has not taken its current message for this long
/// is closed as a slow reader, without waiting for the slow-reader timeout.
const PRESSURE_STALL: Duration = Duration::from_secs(1);

enum Out {
    /// a message, with the read-ahead place of the request it answers (released once the
    /// message is written to the socket)
    Msg(Vec<u8>, Option<OwnedSemaphorePermit>),
    Close,
}

/// A connected client.
pub(crate) struct Session {
    pub id: u64,
    pub peer: SocketAddr,
    pub kind: ServiceKind,
    group: Option<String>,
    pub state: Mutex<State>,
    out: mpsc::UnboundedSender<(Out, Option<Unsent>)>,
    /// the server-wide count of bytes handed to writers and not yet written
    unsent: Arc<AtomicUsize>,
    /// the order answers and notifications go out in
    order: Mutex<Sequencer>,
    /// per state key, the completion of the last request that changes that state
    lanes: Mutex<HashMap<String, watch::Receiver<bool>>>,
    queued: AtomicUsize,
    max_queued: usize,
    /// one permit per request (or batch) read whose answer is not yet written to the socket:
    /// when none is left the session stops reading, so a client that sends without reading
    /// gets TCP back-pressure instead of making the server hold its answers
    read_ahead: Arc<Semaphore>,
    closed: watch::Sender<bool>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    requests: AtomicU64,
    pub txs_sent: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicUsize,
    /// whether this session's requests are logged (admin `log`)
    pub logged: std::sync::atomic::AtomicBool,
    slot_freed: Notify,
}

enum Item {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response,
    Invalid {
        id: Value,
        error: RpcError,
    },
}

/// Keeps a session's outgoing messages in the order its requests arrived (docs/protocol.md,
/// "Answer order"): every request reserves a place when it is read, and its answer waits in
/// `parked` until every earlier place is filled. Messages the server originates
/// (notifications, the close) take the next place at once, so they never overtake an answer
/// to a request read before them — a subscription's answer cannot arrive after a newer
/// notification of the same script.
#[derive(Default)]
struct Sequencer {
    next_place: u64,
    next_out: u64,
    /// filled places not yet sendable; `None` for a place given up without a message
    parked: std::collections::BTreeMap<u64, Option<Out>>,
}

impl Sequencer {
    fn reserve(&mut self) -> u64 {
        let place = self.next_place;
        self.next_place += 1;
        place
    }

    /// Fills `place`; returns the messages now in order to send.
    fn fill(&mut self, place: u64, out: Option<Out>) -> Vec<Out> {
        self.parked.insert(place, out);
        let mut ready = Vec::new();
        while let Some(out) = self.parked.remove(&self.next_out) {
            self.next_out += 1;
            ready.extend(out);
        }
        ready
    }
}

/// A reserved place in the session's output order. Dropping it unfilled gives the place up,
/// so a request that ends without an answer (a cancelled task) never holds back later ones.
pub(crate) struct Place {
    session: Arc<Session>,
    place: Option<u64>,
}

impl Place {
    fn fill(mut self, out: Option<Out>) {
        if let Some(place) = self.place.take() {
            self.session.release(place, out);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(place) = self.place.take() {
            self.session.release(place, None);
        }
    }
}

/// Where a request that changes session state waits for the previous one with the same key,
/// and tells the next one it is done.
struct LaneTicket {
    previous: Option<watch::Receiver<bool>>,
    done: watch::Sender<bool>,
}

/// The state a request changes, for requests that must take effect in the order they were
/// sent: a subscription's key is its script or outpoint argument (so subscribe, then
/// unsubscribe, of one script apply in that order while other scripts proceed concurrently);
/// broadcasts share one key, so a child sent after its parent reaches the node after it.
fn state_key(method: &str, params: &Value) -> Option<String> {
    let family = match method {
        "blockchain.scripthash.subscribe"
        | "blockchain.scripthash.unsubscribe"
        | "blockchain.scriptpubkey.subscribe"
        | "blockchain.scriptpubkey.unsubscribe" => "script",
        "blockchain.outpoint.subscribe" | "blockchain.outpoint.unsubscribe" => "outpoint",
        "blockchain.headers.subscribe" => return Some("headers".into()),
        "blockchain.transaction.broadcast"
        | "blockchain.transaction.broadcast_package"
        | "server.add_peer" => return Some("broadcast".into()),
        "server.version" => return Some("version".into()),
        _ => return None,
    };
    // The arguments as sent: equal arguments in different spellings (hex case) fall back to
    // one key per family, which still orders them, only less concurrently.
    let argument = |names: &[&str], position: usize| match params {
        Value::Array(items) => items.get(position).cloned(),
        Value::Object(map) => names.iter().find_map(|n| map.get(*n).cloned()),
        _ => None,
    };
    let key = if family == "script" {
        argument(&["scripthash", "scriptpubkey"], 0).map(|v| v.to_string())
    } else {
        match (argument(&["tx_hash"], 0), argument(&["txout_idx"], 1)) {
            (Some(txid), Some(vout)) => Some(format!("{txid}:{vout}")),
            _ => None,
        }
    };
    Some(match key {
        Some(k) if !k.bytes().any(|b| b.is_ascii_uppercase()) => format!("{family}:{k}"),
        _ => family.to_string(),
    })
}

/// Keeps the session's concurrency count while a request runs.
struct Slot<'a>(&'a Session);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.slot_freed.notify_waiters();
    }
}

impl Session {
    pub fn info(&self, shared: &Shared) -> SessionInfo {
        let mut state = self.state.lock();
        let subs = state.subs.count() + usize::from(state.subs.headers);
        let scount = state.subs.count();
        SessionInfo {
            id: self.id,
            peer: self.peer,
            kind: self.kind,
            client_name: state.client_name.clone(),
            protocol_version: state.version.as_ref().map(ToString::to_string),
            subscriptions: subs,
            script_subs: state.subs.scripts.len(),
            outpoint_subs: state.subs.outpoints.len(),
            group: self.group.clone(),
            txs_sent: self.txs_sent.load(Ordering::Relaxed),
            cost: state.cost.current(&shared.config.limits, scount),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// The negotiated version (only called after negotiation).
    pub fn version(&self) -> ProtocolVersion {
        self.state
            .lock()
            .version
            .clone()
            .unwrap_or_else(ProtocolVersion::min)
    }

    fn dialect(&self) -> Dialect {
        self.state.lock().dialect.unwrap_or(Dialect::Loose)
    }

    /// Closes at once, dropping whatever is queued.
    pub fn abort(&self) {
        self.closed.send_replace(true);
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Sends what is queued, then closes.
    fn close_after_flush(&self) {
        let mut order = self.order.lock();
        let place = order.reserve();
        let ready = order.fill(place, Some(Out::Close));
        self.send_in_order(ready);
    }

    /// Sends `bytes` after every answer to a request read before now.
    fn enqueue(&self, bytes: Vec<u8>) {
        let mut order = self.order.lock();
        let place = order.reserve();
        let ready = order.fill(place, Some(Out::Msg(bytes, None)));
        self.send_in_order(ready);
    }

    /// Waits for a read-ahead place for the request just read; `None` once the session is
    /// closing or the server shutting down, when the request must not run.
    async fn read_ahead_place(&self, shared: &Shared) -> Option<OwnedSemaphorePermit> {
        let mut closed = self.closed.subscribe();
        let mut shutdown = shared.shutdown.subscribe();
        tokio::select! {
            permit = Arc::clone(&self.read_ahead).acquire_owned() => permit.ok(),
            _ = closed.wait_for(|c| *c) => None,
            _ = shutdown.wait_for(|s| *s) => None,
        }
    }

    /// Reserves the next place in the output order, for a request read now.
    fn reserve(self: &Arc<Self>) -> Place {
        let place = self.order.lock().reserve();
        Place {
            session: Arc::clone(self),
            place: Some(place),
        }
    }

    fn release(&self, place: u64, out: Option<Out>) {
        let mut order = self.order.lock();
        let ready = order.fill(place, out);
        self.send_in_order(ready);
    }

    /// Hands messages to the writer; called with the order lock held, so that they reach the
    /// channel in the order the sequencer released them.
    fn send_in_order(&self, ready: Vec<Out>) {
        for out in ready {
            if self.is_closed() {
                return;
            }
            let mut charge = None;
            if let Out::Msg(bytes, _) = &out {
                charge = Some(Unsent::new(bytes.len(), &self.unsent));
                let queued = self.queued.fetch_add(bytes.len(), Ordering::SeqCst) + bytes.len();
                if queued > self.max_queued {
                    // A client that does not read must not make us buffer without bound.
                    tracing::info!(session = self.id, queued, "slow reader: disconnecting");
                    self.abort();
                    return;
                }
            }
            if self.out.send((out, charge)).is_err() {
                self.abort();
                return;
            }
        }
    }

    /// Takes this request's turn among the requests that change the same state.
    fn lane_ticket(&self, method: &str, params: &Value) -> Option<LaneTicket> {
        let key = state_key(method, params)?;
        let (done, waiter) = watch::channel(false);
        let mut lanes = self.lanes.lock();
        if lanes.len() >= 64 {
            // Forget finished lanes: a session that touched many scripts keeps only the
            // requests still running.
            lanes.retain(|_, rx| !*rx.borrow() && rx.has_changed().is_ok());
        }
        let previous = lanes.insert(key, waiter);
        Some(LaneTicket { previous, done })
    }

    /// Adds `amount` to the session's cost.
    pub fn add_cost(&self, shared: &Shared, amount: f64) {
        let mut state = self.state.lock();
        let subs = state.subs.count();
        state.cost.add(&shared.config.limits, subs, amount);
    }

    fn own_cost(&self, shared: &Shared) -> f64 {
        let mut state = self.state.lock();
        let subs = state.subs.count();
        state.cost.current(&shared.config.limits, subs)
    }

    /// Own cost plus the rest of the group's and the group's retained cost.
    fn effective_cost(&self, shared: &Shared) -> f64 {
        let own = self.own_cost(shared);
        let Some(group) = &self.group else {
            return own;
        };
        let (others, retained) = shared.groups.others(&shared.config.limits, group, self.id);
        let others_cost: f64 = others
            .iter()
            .filter_map(|id| shared.registry.session(*id))
            .map(|s| s.own_cost(shared))
            .sum();
        own + others_cost + retained
    }

    fn count_error(&self, shared: &Shared, extra: f64) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.add_cost(shared, cost::ERROR_COST + extra);
    }

    fn count_bytes(&self, shared: &Shared, n: usize, incoming: bool) {
        let counter = if incoming {
            &self.bytes_in
        } else {
            &self.bytes_out
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        self.add_cost(
            shared,
            n as f64 / shared.config.limits.bandwidth_unit_cost.max(1.0),
        );
    }

    fn response(&self, id: &Value, result: Result<Value, RpcError>) -> Value {
        match (self.dialect(), result) {
            (Dialect::V1, Ok(r)) => json!({"result": r, "error": null, "id": id}),
            (Dialect::V1, Err(e)) => json!({"result": null, "error": e.to_value(), "id": id}),
            (_, Ok(r)) => json!({"jsonrpc": "2.0", "result": r, "id": id}),
            (_, Err(e)) => json!({"jsonrpc": "2.0", "error": e.to_value(), "id": id}),
        }
    }

    fn too_large(shared: &Shared) -> RpcError {
        RpcError::new(
            json::INVALID_REQUEST,
            format!(
                "response too large (over {} bytes",
                thousands(shared.config.limits.max_send as u64)
            ),
        )
    }

    /// One response as sent, replaced by the size error past `MAX_SEND` (docs/protocol.md,
    /// Response size).
    fn answer(&self, shared: &Shared, id: &Value, result: Result<Value, RpcError>) -> Vec<u8> {
        if result.is_err() {
            self.count_error(shared, 0.0);
        }
        let mut bytes = to_wire(&self.response(id, result));
        if bytes.len() > shared.config.limits.max_send {
            self.count_error(shared, 0.0);
            bytes = to_wire(&self.response(id, Err(Self::too_large(shared))));
        }
        bytes
    }

    /// Sends one response now (after the answers to requests read before it).
    fn reply(&self, shared: &Shared, id: &Value, result: Result<Value, RpcError>) {
        let bytes = self.answer(shared, id, result);
        self.enqueue(bytes);
    }

    /// Sends a server notification.
    pub fn notify(&self, method: &str, params: Value) {
        let msg = match self.dialect() {
            Dialect::V1 => json!({"method": method, "params": params, "id": null}),
            _ => json!({"jsonrpc": "2.0", "method": method, "params": params}),
        };
        self.enqueue(to_wire(&msg));
    }

    fn parse_item(&self, value: &Value, dialect: Dialect) -> Item {
        let Some(obj) = value.as_object() else {
            return Item::Invalid {
                id: Value::Null,
                error: RpcError::new(json::INVALID_REQUEST, "request object must be a dictionary"),
            };
        };
        if !obj.contains_key("method") {
            return Item::Response;
        }
        let id = match obj.get("id") {
            None | Some(Value::Null) => None,
            Some(v @ (Value::Number(_) | Value::String(_) | Value::Bool(_))) => Some(v.clone()),
            Some(other) => {
                return Item::Invalid {
                    id: Value::Null,
                    error: RpcError::new(
                        json::INVALID_REQUEST,
                        format!("invalid \"id\": {}", py_str(other)),
                    ),
                }
            }
        };
        let invalid = |error: RpcError| Item::Invalid {
            id: id.clone().unwrap_or(Value::Null),
            error,
        };
        if dialect == Dialect::Strict2 && obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0")
        {
            return invalid(RpcError::new(
                json::INVALID_REQUEST,
                "\"jsonrpc\" is not \"2.0\"",
            ));
        }
        let Some(method) = obj.get("method").and_then(Value::as_str) else {
            return invalid(RpcError::new(
                json::METHOD_NOT_FOUND,
                "method must be a string",
            ));
        };
        let params = match obj.get("params") {
            None => Value::Array(Vec::new()),
            Some(p @ Value::Array(_)) => p.clone(),
            Some(p @ Value::Object(_)) if dialect != Dialect::V1 => p.clone(),
            Some(other) => {
                return invalid(RpcError::invalid_args(format!(
                    "invalid request arguments: {}",
                    py_str(other)
                )))
            }
        };
        match id {
            Some(id) => Item::Request {
                id,
                method: method.to_string(),
                params,
            },
            None => Item::Notification {
                method: method.to_string(),
                params,
            },
        }
    }

    fn negotiated(&self) -> bool {
        self.state.lock().version.is_some()
    }

    /// The legacy reply to anything before `server.version` (docs/protocol.md, Before
    /// negotiation).
    fn refuse_unidentified(&self, shared: &Shared, id: Option<&Value>) {
        self.notify_bare("blockchain.relayfee");
        self.notify_bare("blockchain.estimatefee");
        match id {
            Some(id) => self.reply(
                shared,
                id,
                Err(RpcError::bad_request(
                    "use server.version to identify client",
                )),
            ),
            None => self.count_error(shared, 0.0),
        }
        self.close_after_flush();
    }

    pub(crate) fn notify_bare(&self, method: &str) {
        self.enqueue(to_wire(&json!({"jsonrpc": "2.0", "method": method})));
    }

    /// Handles one incoming frame; false when the session must stop reading.
    async fn handle_frame(self: &Arc<Self>, shared: &Arc<Shared>, frame: Frame) -> bool {
        let bytes = match frame {
            Frame::Oversized(n) => {
                self.count_bytes(shared, n, true);
                return true;
            }
            Frame::Message(bytes) => bytes,
        };
        self.count_bytes(shared, bytes.len(), true);
        let Ok(text) = std::str::from_utf8(&bytes) else {
            self.count_error(shared, cost::BAD_JSON_COST);
            self.reply(
                shared,
                &Value::Null,
                Err(RpcError::new(
                    json::PARSE_ERROR,
                    "messages must be encoded in UTF-8",
                )),
            );
            return true;
        };
        // An empty line is a message that is not JSON, as ElectrumX (aiorpcX) answers it.
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            self.count_error(shared, cost::BAD_JSON_COST);
            self.reply(
                shared,
                &Value::Null,
                Err(RpcError::new(json::PARSE_ERROR, "invalid JSON")),
            );
            return true;
        };
        let dialect = {
            let mut state = self.state.lock();
            *state.dialect.get_or_insert_with(|| dialect_of(&value))
        };
        match value {
            Value::Array(items) => self.handle_batch(shared, items, dialect).await,
            single => {
                let item = self.parse_item(&single, dialect);
                self.handle_item(shared, item).await
            }
        }
    }

    async fn handle_item(self: &Arc<Self>, shared: &Arc<Shared>, item: Item) -> bool {
        match item {
            Item::Response => {
                self.count_error(shared, 0.0);
                true
            }
            Item::Invalid { id, error } => {
                self.reply(shared, &id, Err(error));
                true
            }
            Item::Notification { method, params } => {
                if !self.negotiated() {
                    self.refuse_unidentified(shared, None);
                    return false;
                }
                self.handle_notification(shared, &method, &params);
                true
            }
            Item::Request { id, method, params } => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                if !self.negotiated() {
                    if method != "server.version" {
                        self.refuse_unidentified(shared, Some(&id));
                        return false;
                    }
                    // Negotiation runs before the next message is read, so pipelined requests
                    // see the negotiated method table.
                    let result = methods::server_version(shared, self, &params);
                    let failed = result.is_err();
                    self.reply(shared, &id, result);
                    if failed {
                        self.close_after_flush();
                        return false;
                    }
                    return true;
                }
                let Some(unanswered) = self.read_ahead_place(shared).await else {
                    return false;
                };
                let place = self.reserve();
                let ticket = self.lane_ticket(&method, &params);
                let session = Arc::clone(self);
                let shared = Arc::clone(shared);
                tokio::spawn(async move {
                    let (result, refuse, slot) = session
                        .run_request(&shared, &method, &params, ticket.as_ref())
                        .await;
                    let bytes = session.answer(&shared, &id, result);
                    place.fill(Some(Out::Msg(bytes, Some(unanswered))));
                    drop(slot);
                    if refuse {
                        session.close_after_flush();
                    }
                    // Only now, with the answer in order, may the next request on this state run.
                    if let Some(ticket) = ticket {
                        ticket.done.send_replace(true);
                    }
                });
                true
            }
        }
    }

    fn handle_notification(&self, shared: &Shared, method: &str, params: &Value) {
        let v17 = self.version().at_least(&[1, 7]);
        if method == "server.ping" && v17 {
            self.add_cost(shared, 0.1);
            let data = match params {
                Value::Array(a) => a.get(1).or_else(|| a.first().filter(|v| v.is_string())),
                Value::Object(o) => o.get("data"),
                _ => None,
            };
            if let Some(data) = data {
                if super::params::hex_odd(data).is_err() {
                    self.count_error(shared, 0.0);
                }
            }
            return;
        }
        // Any other client notification is ignored and counted as an error (docs/protocol.md,
        // Notifications by version).
        self.count_error(shared, 0.0);
    }

    async fn handle_batch(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        items: Vec<Value>,
        dialect: Dialect,
    ) -> bool {
        if items.is_empty() {
            self.reply(
                shared,
                &Value::Null,
                Err(RpcError::new(json::INVALID_REQUEST, "batch is empty")),
            );
            return true;
        }
        let response_like = |v: &Value| {
            v.as_object()
                .is_some_and(|o| o.contains_key("result") || o.contains_key("error"))
        };
        if items.iter().all(response_like) {
            self.count_error(shared, 0.0);
            return true;
        }
        let parsed: Vec<Item> = items.iter().map(|v| self.parse_item(v, dialect)).collect();
        let mut replies: Vec<Value> = Vec::new();
        let mut pending = Vec::new();
        for item in parsed {
            match item {
                Item::Response => self.count_error(shared, 0.0),
                Item::Invalid { id, error } => {
                    self.count_error(shared, 0.0);
                    replies.push(self.response(&id, Err(error)));
                }
                Item::Notification { method, params } => {
                    if !self.negotiated() {
                        self.refuse_unidentified(shared, None);
                        return false;
                    }
                    self.handle_notification(shared, &method, &params);
                }
                Item::Request { id, method, params } => {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    if !self.negotiated() {
                        if method != "server.version" {
                            self.flush_batch(shared, replies);
                            self.refuse_unidentified(shared, Some(&id));
                            return false;
                        }
                        let result = methods::server_version(shared, self, &params);
                        if result.is_err() {
                            self.count_error(shared, 0.0);
                            replies.push(self.response(&id, result));
                            self.flush_batch(shared, replies);
                            self.close_after_flush();
                            return false;
                        }
                        replies.push(self.response(&id, result));
                        continue;
                    }
                    let ticket = self.lane_ticket(&method, &params);
                    pending.push((id, method, params, ticket));
                }
            }
        }
        let Some(unanswered) = self.read_ahead_place(shared).await else {
            return false;
        };
        let place = self.reserve();
        let session = Arc::clone(self);
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            let mut refuse_any = false;
            let mut running: FuturesUnordered<_> = pending
                .into_iter()
                .map(|(id, method, params, ticket)| {
                    let session = Arc::clone(&session);
                    let shared = Arc::clone(&shared);
                    async move {
                        let (result, refuse, _slot) = session
                            .run_request(&shared, &method, &params, ticket.as_ref())
                            .await;
                        if let Some(ticket) = ticket {
                            ticket.done.send_replace(true);
                        }
                        (id, result, refuse)
                    }
                })
                .collect();
            while let Some((id, result, refuse)) = running.next().await {
                refuse_any |= refuse;
                if result.is_err() {
                    session.count_error(&shared, 0.0);
                }
                replies.push(session.response(&id, result));
            }
            place.fill(
                session
                    .batch_answer(&shared, replies)
                    .map(|bytes| Out::Msg(bytes, Some(unanswered))),
            );
            if refuse_any {
                session.close_after_flush();
            }
        });
        true
    }

    /// Sends a batch reply now; past `MAX_SEND` (running total) elements become the size error.
    fn flush_batch(&self, shared: &Shared, replies: Vec<Value>) {
        if let Some(bytes) = self.batch_answer(shared, replies) {
            self.enqueue(bytes);
        }
    }

    /// A batch reply as sent; `None` when no element owes an answer.
    fn batch_answer(&self, shared: &Shared, replies: Vec<Value>) -> Option<Vec<u8>> {
        if replies.is_empty() {
            return None;
        }
        let limit = shared.config.limits.max_send;
        let mut total = 2usize;
        let mut out = Vec::with_capacity(replies.len());
        for reply in replies {
            let len = to_wire(&reply).len() + 1;
            if total + len > limit {
                self.count_error(shared, 0.0);
                let id = reply.get("id").cloned().unwrap_or(Value::Null);
                out.push(self.response(&id, Err(Self::too_large(shared))));
                total = limit + 1;
            } else {
                total += len;
                out.push(reply);
            }
        }
        Some(to_wire(&Value::Array(out)))
    }

    /// Throttles, runs with the request timeout, and says whether the session must close.
    /// The gate holding the server-wide work slot (or heavy-lane place) the answer was
    /// computed under comes back with it, to be released once the answer is queued.
    async fn run_request(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        method: &str,
        params: &Value,
        ticket: Option<&LaneTicket>,
    ) -> (Result<Value, RpcError>, bool, Option<Arc<ReadGate>>) {
        let limits = &shared.config.limits;
        let timeout = Duration::from_secs(limits.request_timeout_secs.max(1));
        if self.logged.load(Ordering::Relaxed) {
            let mut shown = params.to_string();
            if shown.len() > 400 {
                let cut = (0..=400)
                    .rev()
                    .find(|&i| shown.is_char_boundary(i))
                    .unwrap_or(0);
                shown.truncate(cut);
                shown.push('…');
            }
            tracing::info!(session = self.id, peer = %self.peer, method, params = %shown, "request");
        }
        let run = async {
            // Before throttling and the concurrency slot: a request waiting for its
            // predecessor must not hold a slot that predecessor needs.
            if let Some(mut previous) = ticket.and_then(|t| t.previous.clone()) {
                // An error means the predecessor's task ended without saying so (cancelled):
                // it will not run, so neither need we wait.
                let _ = previous.wait_for(|done| *done).await;
            }
            let (sleep, concurrency) = match cost::throttle(limits, self.effective_cost(shared)) {
                Throttle::Refuse => {
                    return (
                        Err(RpcError::new(
                            json::EXCESSIVE_RESOURCE_USAGE,
                            "excessive resource usage",
                        )),
                        true,
                        None,
                    )
                }
                Throttle::Run { sleep, concurrency } => (sleep, concurrency),
            };
            if !sleep.is_zero() {
                tokio::time::sleep(sleep).await;
            }
            let _slot = self.acquire_slot(concurrency).await;
            // Taken after the session's own throttling, so a throttled session never holds one.
            let work_slot = Arc::clone(&shared.work_slots).acquire_owned().await.ok();
            // The request's reads give the work slot back if they turn heavy (query::gate).
            let gate = ReadGate::new(work_slot, Arc::clone(&shared.heavy_lane));
            let started = std::time::Instant::now();
            let result = REQUEST_GATE
                .scope(
                    Arc::clone(&gate),
                    methods::dispatch(shared, self, method, params),
                )
                .await;
            if let Some(metrics) = shared.metrics.as_ref() {
                metrics.request_finished(
                    methods::metric_label(method),
                    started.elapsed(),
                    result.is_ok(),
                );
            }
            (result, false, Some(gate))
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => (
                Err(RpcError::new(
                    json::SERVER_BUSY,
                    "server busy - request timed out",
                )),
                false,
                None,
            ),
        }
    }

    async fn acquire_slot(&self, concurrency: usize) -> Slot<'_> {
        loop {
            let notified = self.slot_freed.notified();
            let current = self.in_flight.load(Ordering::SeqCst);
            if current < concurrency.max(1)
                && self
                    .in_flight
                    .compare_exchange(current, current + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                return Slot(self);
            }
            notified.await;
        }
    }
}

/// Runs a session over a transport until the client leaves, it misbehaves, or the server
/// shuts down.
pub(crate) async fn run(
    shared: Arc<Shared>,
    peer: SocketAddr,
    kind: ServiceKind,
    mut reader: Box<dyn FrameReader>,
    writer: Box<dyn FrameWriter>,
) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (round_tx, round_rx) = mpsc::unbounded_channel::<Round>();
    let group = cost::group_name(&peer);
    let session = Arc::new(Session {
        id,
        peer,
        kind,
        group: group.clone(),
        state: Mutex::new(State {
            version: None,
            client_name: String::new(),
            dialect: None,
            cost: SessionCost::new(),
            subs: Subs::default(),
        }),
        out: out_tx,
        unsent: Arc::clone(&shared.unsent),
        order: Mutex::new(Sequencer::default()),
        lanes: Mutex::new(HashMap::new()),
        queued: AtomicUsize::new(0),
        max_queued: shared.config.max_queued_bytes,
        read_ahead: Arc::new(Semaphore::new(
            shared.config.limits.initial_concurrent.max(1),
        )),
        closed: watch::channel(false).0,
        bytes_in: AtomicU64::new(0),
        bytes_out: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        txs_sent: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        logged: std::sync::atomic::AtomicBool::new(shared.log_new_sessions.load(Ordering::Relaxed)),
        slot_freed: Notify::new(),
    });
    if let Some(g) = &group {
        shared.groups.join(g, id);
    }
    shared.registry.add(Arc::clone(&session), round_tx);
    tracing::debug!(session = id, %peer, %kind, "session opened");
    let transport = match kind {
        ServiceKind::Tcp => "tcp",
        ServiceKind::Ssl => "ssl",
        ServiceKind::Ws => "ws",
        ServiceKind::Wss => "wss",
        ServiceKind::Rpc => "rpc",
    };
    if let Some(metrics) = shared.metrics.as_ref() {
        metrics.session_opened(transport);
    }

    let writer_task = tokio::spawn(write_loop(
        Arc::clone(&shared),
        Arc::clone(&session),
        writer,
        out_rx,
    ));
    let notify_task = tokio::spawn(super::notify::session_rounds(
        Arc::clone(&shared),
        Arc::clone(&session),
        round_rx,
    ));

    let idle = Duration::from_secs(shared.config.limits.session_timeout_secs.max(1));
    let mut closed = session.closed.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = closed.changed() => break,
            _ = shutdown.changed() => break,
            next = tokio::time::timeout(idle, reader.next_frame()) => match next {
                Err(_) => {
                    tracing::debug!(session = id, "idle timeout");
                    break;
                }
                Ok(Ok(Some(frame))) => {
                    if !session.handle_frame(&shared, frame).await {
                        break;
                    }
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    tracing::debug!(session = id, error = %e, "read failed");
                    break;
                }
            },
        }
    }
    // Whatever is queued (a final error reply) still goes out, within a second.
    session.close_after_flush();
    let _ = tokio::time::timeout(Duration::from_secs(1), writer_task).await;
    session.abort();
    notify_task.abort();
    let remaining = session.own_cost(&shared);
    if let Some(g) = &group {
        shared.groups.leave(&shared.config.limits, g, id, remaining);
    }
    shared.registry.remove(id);
    if let Some(metrics) = shared.metrics.as_ref() {
        metrics.session_closed(transport);
        metrics.bytes_received(session.bytes_in.load(Ordering::Relaxed));
        metrics.bytes_sent(session.bytes_out.load(Ordering::Relaxed));
    }
    tracing::debug!(session = id, "session closed");
}

async fn write_loop(
    shared: Arc<Shared>,
    session: Arc<Session>,
    mut writer: Box<dyn FrameWriter>,
    mut rx: mpsc::UnboundedReceiver<(Out, Option<Unsent>)>,
) {
    let mut closed = session.closed.subscribe();
    let slow = shared.config.slow_reader_timeout;
    loop {
        let deadline = writer.flush_deadline();
        let next = tokio::select! {
            biased;
            _ = closed.changed() => break,
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            } => {
                match tokio::time::timeout(slow, writer.flush_due()).await {
                    Ok(Ok(())) => continue,
                    _ => break,
                }
            }
            next = rx.recv() => next,
        };
        match next {
            Some((Out::Msg(bytes, _unanswered), _charge)) => {
                let len = bytes.len();
                match write_or_give_up(&shared, writer.as_mut(), &bytes).await {
                    Ok(Ok(())) => {
                        session.queued.fetch_sub(len, Ordering::SeqCst);
                        session.count_bytes(&shared, len, false);
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(session = session.id, error = %e, "write failed");
                        break;
                    }
                    Err(why) => {
                        tracing::info!(session = session.id, why, "slow reader: disconnecting");
                        break;
                    }
                }
            }
            Some((Out::Close, _)) | None => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.close()).await;
    session.abort();
}

/// Writes one message, giving up (`Err` with the reason) when the socket takes nothing for the
/// slow-reader timeout, or for [`PRESSURE_STALL`] while the server holds more unsent bytes
/// than its budget: a thousand clients that never read would otherwise hold their answers in
/// memory together until the slow-reader timeout.
async fn write_or_give_up(
    shared: &Shared,
    writer: &mut dyn FrameWriter,
    bytes: &[u8],
) -> Result<std::io::Result<()>, &'static str> {
    let started = tokio::time::Instant::now();
    let write = writer.write_frame(bytes);
    tokio::pin!(write);
    loop {
        tokio::select! {
            written = &mut write => return Ok(written),
            _ = tokio::time::sleep(PRESSURE_CHECK) => {
                let stalled = started.elapsed();
                if stalled >= shared.config.slow_reader_timeout {
                    return Err("send timed out");
                }
                let unsent = shared.unsent.load(Ordering::SeqCst);
                if stalled >= PRESSURE_STALL && unsent > shared.config.max_unsent_bytes {
                    return Err("send stalled while the server is over its unsent-bytes budget");
                }
            }
        }
    }
}
