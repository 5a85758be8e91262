//! Notifications (docs/protocol.md, Notifications): the registry of sessions with its hashX →
//! sessions and outpoint → sessions indexes, the notifier that turns each [`ChainEvent`] into
//! rounds for only the sessions concerned, and the per-session round: headers, script statuses
//! (with the mempool re-check rule), outpoints, then 1.7 cover pings.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::methods::{outpoint_status_json, script_status};
use super::session::Session;
use super::Shared;
use crate::query::{ChainEvent, HashX, OutPoint};

/// One notification round for one session.
#[derive(Debug, Clone)]
pub(crate) enum Round {
    /// an event; its touched sets decide what is recomputed
    Event(Arc<ChainEvent>),
    /// events were missed: everything counts as touched
    Lagged,
    /// nothing for this session but a possible 1.7 cover ping
    CoverOnly,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<u64, (Arc<Session>, mpsc::UnboundedSender<Round>)>,
    by_hashx: HashMap<HashX, HashSet<u64>>,
    by_outpoint: HashMap<OutPoint, HashSet<u64>>,
    /// script and outpoint subscriptions of all sessions (a pair counts once)
    subscriptions: usize,
}

/// Every open session and who is subscribed to what.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    pub fn add(&self, session: Arc<Session>, rounds: mpsc::UnboundedSender<Round>) {
        self.inner
            .lock()
            .sessions
            .insert(session.id, (session, rounds));
    }

    /// Forgets a session and its index entries.
    pub fn remove(&self, id: u64) {
        let mut inner = self.inner.lock();
        let Some((session, _)) = inner.sessions.remove(&id) else {
            return;
        };
        let (hashxs, outpoints): (Vec<HashX>, Vec<OutPoint>) = {
            let state = session.state.lock();
            (
                state.subs.scripts.keys().copied().collect(),
                state.subs.outpoints.keys().copied().collect(),
            )
        };
        for h in hashxs {
            if remove_from(&mut inner.by_hashx, &h, id) {
                inner.subscriptions -= 1;
            }
        }
        for o in outpoints {
            if remove_from(&mut inner.by_outpoint, &o, id) {
                inner.subscriptions -= 1;
            }
        }
    }

    /// Script and outpoint subscriptions of all sessions.
    pub fn subscription_count(&self) -> usize {
        self.inner.lock().subscriptions
    }

    pub fn session(&self, id: u64) -> Option<Arc<Session>> {
        self.inner
            .lock()
            .sessions
            .get(&id)
            .map(|(s, _)| Arc::clone(s))
    }

    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.inner
            .lock()
            .sessions
            .values()
            .map(|(s, _)| Arc::clone(s))
            .collect()
    }

    pub fn index_script(&self, id: u64, hashx: HashX) {
        let mut inner = self.inner.lock();
        if inner.by_hashx.entry(hashx).or_default().insert(id) {
            inner.subscriptions += 1;
        }
    }

    pub fn unindex_script(&self, id: u64, hashx: &HashX) {
        let mut inner = self.inner.lock();
        if remove_from(&mut inner.by_hashx, hashx, id) {
            inner.subscriptions -= 1;
        }
    }

    pub fn index_outpoint(&self, id: u64, outpoint: OutPoint) {
        let mut inner = self.inner.lock();
        if inner.by_outpoint.entry(outpoint).or_default().insert(id) {
            inner.subscriptions += 1;
        }
    }

    pub fn unindex_outpoint(&self, id: u64, outpoint: &OutPoint) {
        let mut inner = self.inner.lock();
        if remove_from(&mut inner.by_outpoint, outpoint, id) {
            inner.subscriptions -= 1;
        }
    }

    /// Sends a round to the sessions an event concerns: those subscribed to a touched script
    /// or outpoint; on a tip change every session (headers, mempool re-checks, cover pings);
    /// after a lag, every session.
    fn dispatch(&self, shared: &Shared, event: Option<&Arc<ChainEvent>>) {
        let inner = self.inner.lock();
        let (round, targets): (Round, HashSet<u64>) = match event {
            None => (Round::Lagged, inner.sessions.keys().copied().collect()),
            Some(e) if e.tip_changed => (
                Round::Event(Arc::clone(e)),
                inner.sessions.keys().copied().collect(),
            ),
            Some(e) => {
                let mut t = HashSet::new();
                for h in &e.touched_scripts {
                    if let Some(ids) = inner.by_hashx.get(h) {
                        t.extend(ids);
                    }
                }
                for o in &e.touched_outpoints {
                    if let Some(ids) = inner.by_outpoint.get(o) {
                        t.extend(ids);
                    }
                }
                (Round::Event(Arc::clone(e)), t)
            }
        };
        for id in &targets {
            if let Some((_, tx)) = inner.sessions.get(id) {
                let _ = tx.send(round.clone());
            }
        }
        // Mempool-only rounds reach every 1.7 session as a chance of a cover ping
        // (docs/protocol.md, Cover traffic).
        if matches!(event, Some(e) if !e.tip_changed) && shared.config.cover_traffic {
            let p = (shared.config.mempool_refresh.as_secs_f64() / 600.0).min(1.0);
            let mut rng = rand::thread_rng();
            for (id, (session, tx)) in inner.sessions.iter() {
                if !targets.contains(id) && is_v17(session) && rng.gen_bool(p) {
                    let _ = tx.send(Round::CoverOnly);
                }
            }
        }
    }
}

fn is_v17(session: &Session) -> bool {
    session
        .state
        .lock()
        .version
        .as_ref()
        .is_some_and(|v| v.at_least(&[1, 7]))
}

/// Takes `id` out of `key`'s set; whether it was there.
fn remove_from<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, HashSet<u64>>,
    key: &K,
    id: u64,
) -> bool {
    let Some(set) = map.get_mut(key) else {
        return false;
    };
    let removed = set.remove(&id);
    if set.is_empty() {
        map.remove(key);
    }
    removed
}

/// Receives the index's events and fans them out until shutdown.
pub(crate) async fn run_notifier(shared: Arc<Shared>) {
    let mut events = shared.query.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let next = tokio::select! {
            _ = shutdown.changed() => return,
            next = events.recv() => next,
        };
        match next {
            Ok(event) => shared.registry.dispatch(&shared, Some(&event)),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "notifier lagged: treating everything as touched");
                shared.registry.dispatch(&shared, None);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Runs one session's rounds in order; a round that fails or overruns closes the session.
pub(crate) async fn session_rounds(
    shared: Arc<Shared>,
    session: Arc<Session>,
    mut rounds: mpsc::UnboundedReceiver<Round>,
) {
    while let Some(round) = rounds.recv().await {
        if session.state.lock().version.is_none() {
            continue;
        }
        let limit = shared.config.notification_timeout;
        match tokio::time::timeout(limit, run_round(&shared, &session, round)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::info!(session = session.id, error = %e, "notification failed: closing");
                session.abort();
                return;
            }
            Err(_) => {
                tracing::info!(
                    session = session.id,
                    "notification round timed out: closing"
                );
                session.abort();
                return;
            }
        }
    }
}

const COVER_PING_LEN: usize = 128;

fn cover_ping(session: &Session) {
    session.notify("server.ping", json!(["0".repeat(COVER_PING_LEN)]));
}

async fn run_round(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    round: Round,
) -> Result<(), super::json::RpcError> {
    let v17 = is_v17(session);
    let (event, lagged) = match round {
        Round::CoverOnly => {
            if v17 && shared.config.cover_traffic {
                cover_ping(session);
            }
            return Ok(());
        }
        Round::Lagged => (None, true),
        Round::Event(e) => (Some(e), false),
    };
    let tip = shared.query.tip();
    let tip_changed = lagged || event.as_ref().is_some_and(|e| e.tip_changed);
    let mut sent = 0usize;

    // 1. Headers: keyed on (height, hash), so a same-height reorg is announced too.
    let send_header = {
        let mut state = session.state.lock();
        let key = (tip.height, tip.hash);
        if state.subs.headers && state.subs.last_header != Some(key) {
            state.subs.last_header = Some(key);
            true
        } else {
            false
        }
    };
    if send_header {
        session.notify(
            "blockchain.headers.subscribe",
            json!([{"hex": hex::encode(&tip.header), "height": tip.height}]),
        );
        sent += 1;
    }

    // 2. Script statuses.
    let (touched, mempool_watch): (Vec<HashX>, Vec<HashX>) = {
        let state = session.state.lock();
        let scripts = &state.subs.scripts;
        let touched: Vec<HashX> = match &event {
            None => scripts.keys().copied().collect(),
            Some(e) => scripts
                .keys()
                .filter(|h| e.touched_scripts.contains(*h))
                .copied()
                .collect(),
        };
        let watch = scripts
            .iter()
            .filter(|(h, s)| s.mempool && !touched.contains(h))
            .map(|(h, _)| *h)
            .collect();
        (touched, watch)
    };
    let method = if v17 {
        "blockchain.scriptpubkey.subscribe"
    } else {
        "blockchain.scripthash.subscribe"
    };
    let recheck = tip_changed || !touched.is_empty();
    let mut work: Vec<(HashX, bool)> = touched.iter().map(|h| (*h, true)).collect();
    if recheck {
        work.extend(mempool_watch.iter().map(|h| (*h, false)));
    }
    for (hashx, always) in work {
        let Some(sub) = session.state.lock().subs.scripts.get(&hashx).cloned() else {
            continue;
        };
        match script_status(shared, &sub.script).await {
            Ok((status, mempool)) => {
                let changed = status != sub.status;
                if let Some(s) = session.state.lock().subs.scripts.get_mut(&hashx) {
                    s.status = status;
                    s.mempool = mempool;
                }
                if always || changed {
                    session.notify(method, json!([sub.alias, status.map(hex::encode)]));
                    sent += 1;
                }
            }
            Err(_) => {
                // E.g. the history grew past the limit: drop silently, tell the client null.
                session.state.lock().subs.scripts.remove(&hashx);
                shared.registry.unindex_script(session.id, &hashx);
                session.notify(method, json!([sub.alias, Value::Null]));
                sent += 1;
            }
        }
    }

    // 3. Outpoints: touched ones always; on a new tip, those with mempool heights if changed.
    let work: Vec<(OutPoint, bool)> = {
        let state = session.state.lock();
        state
            .subs
            .outpoints
            .iter()
            .filter_map(|(o, sub)| {
                let touched = event
                    .as_ref()
                    .is_none_or(|e| e.touched_outpoints.contains(o));
                let in_mempool = sub.status.funder_height.is_some_and(|h| h <= 0)
                    || sub.status.spender.is_some_and(|(_, h)| h <= 0);
                if touched {
                    Some((*o, true))
                } else if tip_changed && in_mempool {
                    Some((*o, false))
                } else {
                    None
                }
            })
            .collect()
    };
    for (outpoint, always) in work {
        let status = shared
            .query
            .outpoint_status(&outpoint)
            .await
            .map_err(super::methods::query_error)?;
        let changed = {
            let mut state = session.state.lock();
            match state.subs.outpoints.get_mut(&outpoint) {
                Some(sub) => {
                    let changed = sub.status != status;
                    sub.status = status.clone();
                    changed
                }
                None => continue,
            }
        };
        if always || changed {
            session.notify(
                "blockchain.outpoint.subscribe",
                json!([
                    crate::daemon::hash_to_hex(&outpoint.txid),
                    outpoint.vout,
                    outpoint_status_json(&status)
                ]),
            );
            sent += 1;
        }
    }

    // 4. Cover traffic (1.7).
    if v17 && shared.config.cover_traffic {
        if tip_changed {
            if sent < 2 {
                cover_ping(session);
            }
            while rand::thread_rng().gen_bool(0.1) {
                cover_ping(session);
            }
        } else if rand::thread_rng()
            .gen_bool((shared.config.mempool_refresh.as_secs_f64() / 600.0).min(1.0))
        {
            cover_ping(session);
        }
    }
    Ok(())
}
