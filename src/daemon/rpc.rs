//! The JSON-RPC (and REST) client for real nodes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{
    hash_from_hex, hash_to_hex, ChainInfo, DaemonApi, DaemonError, FeeEstimate, Hash32,
    MempoolInfo, Result,
};

/// How long and how often to retry a node that cannot be reached, is still loading, or
/// answers brokenly.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// first wait
    pub initial_backoff: Duration,
    /// longest wait between tries
    pub max_backoff: Duration,
    /// give up after this long; `None` retries for ever (the indexer's choice: a node restart
    /// must not stop the server)
    pub give_up_after: Option<Duration>,
    /// tries of one call that the node answers with an HTTP error page (500, not the 502-504
    /// of a node or proxy that is down or busy) or a broken answer (the connection closed
    /// mid-body, JSON cut short) before [`DaemonError::BrokenAnswers`]: a node that keeps
    /// doing so is failing, not restarting
    pub broken_answer_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            give_up_after: None,
            // With the default backoff, about 11 s of broken answers.
            broken_answer_attempts: 8,
        }
    }
}

/// Why one try of a call failed in a way worth another try.
enum Failure {
    /// the node (or the proxy in front of it) is down, busy or loading: retried as long as the
    /// policy's `give_up_after` allows
    Unavailable(DaemonError),
    /// an HTTP error page or a broken answer: retried `broken_answer_attempts` times
    Broken { url: String, problem: String },
}

/// The retry state of one call.
struct Retries {
    policy: RetryPolicy,
    started: Instant,
    backoff: Duration,
    broken: u32,
}

impl Retries {
    fn new(policy: RetryPolicy) -> Self {
        Retries {
            policy,
            started: Instant::now(),
            backoff: policy.initial_backoff,
            broken: 0,
        }
    }

    /// Waits before the next try, or returns the error that ends the call.
    async fn wait_after(&mut self, method: &str, failure: Failure) -> Result<()> {
        let error = match failure {
            Failure::Unavailable(error) => error,
            Failure::Broken { url, problem } => {
                self.broken += 1;
                let error = DaemonError::BrokenAnswers {
                    url,
                    method: method.to_string(),
                    attempts: self.broken,
                    problem,
                };
                if self.broken >= self.policy.broken_answer_attempts.max(1) {
                    return Err(error);
                }
                error
            }
        };
        if let Some(limit) = self.policy.give_up_after {
            if self.started.elapsed() + self.backoff > limit {
                return Err(error);
            }
        }
        warn!(method, error = %error, retry_in_ms = self.backoff.as_millis() as u64, "daemon call failed; retrying");
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(self.policy.max_backoff);
        Ok(())
    }
}

/// Whether an HTTP status says the node or a proxy in front of it is down or overloaded
/// (Bitcoin Core's "Work queue depth exceeded" is a 503), which a later try may find gone.
fn unavailable_status(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

/// Options of [`RpcDaemon`].
#[derive(Debug, Clone)]
pub struct RpcDaemonOptions {
    /// node URLs in failover order (`http://user:pass@host:port/`)
    pub urls: Vec<String>,
    /// Bitcoin Core's `.cookie` file, used when a URL carries no credentials; re-read after a
    /// refusal because the node writes a new one at each start
    pub cookie_file: Option<PathBuf>,
    /// retries
    pub retry: RetryPolicy,
    /// fetch blocks over REST (`/rest/block/HASH.bin`): `None` = try it and fall back to JSON
    /// hex when the node has REST off
    pub use_rest: Option<bool>,
    /// per-HTTP-request timeout
    pub request_timeout: Duration,
}

impl Default for RpcDaemonOptions {
    fn default() -> Self {
        RpcDaemonOptions {
            urls: Vec::new(),
            cookie_file: None,
            retry: RetryPolicy::default(),
            use_rest: None,
            request_timeout: Duration::from_secs(60),
        }
    }
}

struct Endpoint {
    /// URL without credentials
    base: reqwest::Url,
    credentials: Option<(String, String)>,
}

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

/// A node reached over JSON-RPC, with failover between several URLs.
pub struct RpcDaemon {
    http: reqwest::Client,
    /// replaced as a whole by [`RpcDaemon::set_urls`]; requests hold the list they started with
    endpoints: std::sync::RwLock<std::sync::Arc<Vec<Endpoint>>>,
    current: AtomicUsize,
    cookie_file: Option<PathBuf>,
    cookie: Mutex<Option<(String, String)>>,
    next_id: AtomicU64,
    options: RpcDaemonOptions,
    rest: AtomicU8,
    smart_fee: AtomicU8,
    plain_fee: AtomicU8,
}

/// One answer of a batch: the result or the node's error.
type Answer = std::result::Result<Value, (i64, String)>;

impl RpcDaemon {
    /// A client for `options.urls`. Fails only on URLs that do not parse.
    pub fn new(options: RpcDaemonOptions) -> Result<Self> {
        if options.urls.is_empty() {
            return Err(DaemonError::NoUrl);
        }
        let endpoints = options
            .urls
            .iter()
            .map(|u| parse_endpoint(u))
            .collect::<Result<Vec<_>>>()?;
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .pool_max_idle_per_host(8)
            .build()
            .map_err(|e| DaemonError::BadUrl {
                url: String::new(),
                reason: e.to_string(),
            })?;
        let rest = initial_rest_state(options.use_rest);
        Ok(RpcDaemon {
            http,
            endpoints: std::sync::RwLock::new(std::sync::Arc::new(endpoints)),
            current: AtomicUsize::new(0),
            cookie_file: options.cookie_file.clone(),
            cookie: Mutex::new(None),
            next_id: AtomicU64::new(1),
            options,
            rest: AtomicU8::new(rest),
            smart_fee: AtomicU8::new(UNKNOWN),
            plain_fee: AtomicU8::new(UNKNOWN),
        })
    }

    fn endpoints(&self) -> std::sync::Arc<Vec<Endpoint>> {
        std::sync::Arc::clone(&self.endpoints.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The URL in use, credentials hidden.
    pub fn current_url(&self) -> String {
        let endpoints = self.endpoints();
        let i = self.current.load(Ordering::Relaxed) % endpoints.len();
        endpoints[i].base.to_string()
    }

    /// Replaces the node URLs (the admin `daemon_url` command) and moves to the first. Requests
    /// under way finish on the URL they started with. What the old node supported (REST, fee
    /// methods) is asked again.
    pub fn replace_urls(&self, urls: &[String]) -> Result<()> {
        if urls.is_empty() {
            return Err(DaemonError::NoUrl);
        }
        let endpoints = urls
            .iter()
            .map(|u| parse_endpoint(u))
            .collect::<Result<Vec<_>>>()?;
        *self.endpoints.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(endpoints);
        self.current.store(0, Ordering::Relaxed);
        self.rest
            .store(initial_rest_state(self.options.use_rest), Ordering::Relaxed);
        self.smart_fee.store(UNKNOWN, Ordering::Relaxed);
        self.plain_fee.store(UNKNOWN, Ordering::Relaxed);
        *self.cookie.lock().unwrap_or_else(|p| p.into_inner()) = None;
        info!(url = %self.current_url(), "daemon URL replaced");
        Ok(())
    }

    fn read_cookie(&self) -> Option<(String, String)> {
        let path = self.cookie_file.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        let (user, pass) = text.trim().split_once(':')?;
        Some((user.to_string(), pass.to_string()))
    }

    fn credentials(&self, endpoint: &Endpoint) -> Option<(String, String)> {
        if endpoint.credentials.is_some() {
            return endpoint.credentials.clone();
        }
        let mut cached = self.cookie.lock().unwrap_or_else(|p| p.into_inner());
        if cached.is_none() {
            *cached = self.read_cookie();
        }
        cached.clone()
    }

    fn fail_over(&self, from: usize) {
        let endpoints = self.endpoints();
        if endpoints.len() > 1 && from < endpoints.len() {
            let next = (from + 1) % endpoints.len();
            // Only the first caller to see the failure moves the pointer.
            if self
                .current
                .compare_exchange(from, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                warn!(from = %endpoints[from].base, to = %endpoints[next].base, "failing over to the next daemon");
            }
        }
    }

    /// Sends one JSON-RPC body (a request or a batch) and returns the parsed answer, retrying
    /// and failing over per the retry policy. An answer is used only when its whole body
    /// arrived and parses as JSON.
    async fn post(&self, method: &str, body: &Value) -> Result<Value> {
        let mut retries = Retries::new(self.options.retry);
        let mut refreshed_cookie = false;
        loop {
            let endpoints = self.endpoints();
            let index = self.current.load(Ordering::Relaxed) % endpoints.len();
            let endpoint = &endpoints[index];
            let url = endpoint.base.to_string();
            let mut request = self.http.post(endpoint.base.clone()).json(body);
            if let Some((user, pass)) = self.credentials(endpoint) {
                request = request.basic_auth(user, Some(pass));
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status == reqwest::StatusCode::UNAUTHORIZED
                        || status == reqwest::StatusCode::FORBIDDEN
                    {
                        if endpoint.credentials.is_none()
                            && self.cookie_file.is_some()
                            && !refreshed_cookie
                        {
                            // The node may have restarted and written a new cookie.
                            refreshed_cookie = true;
                            *self.cookie.lock().unwrap_or_else(|p| p.into_inner()) =
                                self.read_cookie();
                            continue;
                        }
                        return Err(DaemonError::Auth { url });
                    }
                    match response.bytes().await {
                        Err(e) => {
                            self.fail_over(index);
                            Failure::Broken {
                                url,
                                problem: format!(
                                    "an answer cut off mid-body (HTTP {status}, {})",
                                    error_chain(&e)
                                ),
                            }
                        }
                        Ok(text) => match serde_json::from_slice::<Value>(&text) {
                            Ok(answer) => match warming_up(&answer) {
                                Some(message) => {
                                    Failure::Unavailable(DaemonError::WarmingUp(message))
                                }
                                None => return Ok(answer),
                            },
                            // "Work queue depth exceeded" and other overload pages are plain
                            // text.
                            Err(_) if unavailable_status(status) => {
                                self.fail_over(index);
                                Failure::Unavailable(DaemonError::Unreachable {
                                    url,
                                    reason: format!("HTTP {status}: {}", truncate_bytes(&text)),
                                })
                            }
                            Err(e) if status.is_server_error() || status.is_success() => {
                                self.fail_over(index);
                                let problem = if status.is_success() {
                                    format!(
                                        "a truncated or non-JSON answer (HTTP {status}, {} \
                                         bytes: {e})",
                                        text.len()
                                    )
                                } else {
                                    format!("HTTP {status}: {}", truncate_bytes(&text))
                                };
                                Failure::Broken { url, problem }
                            }
                            // A 404 page and the like: the URL's path is wrong, not the node.
                            Err(e) => {
                                return Err(DaemonError::BadResponse {
                                    method: method.to_string(),
                                    reason: format!(
                                        "HTTP {status}, not JSON ({e}): {}",
                                        truncate_bytes(&text)
                                    ),
                                })
                            }
                        },
                    }
                }
                Err(e) => {
                    self.fail_over(index);
                    Failure::Unavailable(DaemonError::Unreachable {
                        url,
                        reason: error_chain(&e),
                    })
                }
            };
            retries.wait_after(method, failure).await?;
        }
    }

    /// Calls `method` with `params`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params});
        let answer = self.post(method, &body).await?;
        single_answer(method, answer)
    }

    /// Calls `method` once per entry of `params_list` in one HTTP request; answers in order.
    pub async fn batch(&self, method: &str, params_list: Vec<Value>) -> Result<Vec<Answer>> {
        if params_list.is_empty() {
            return Ok(Vec::new());
        }
        let first_id = self
            .next_id
            .fetch_add(params_list.len() as u64, Ordering::Relaxed);
        let body: Vec<Value> = params_list
            .into_iter()
            .enumerate()
            .map(|(i, params)| json!({"jsonrpc": "1.0", "id": first_id + i as u64, "method": method, "params": params}))
            .collect();
        let count = body.len();
        let answer = self.post(method, &Value::Array(body)).await?;
        let Value::Array(items) = answer else {
            return Err(single_answer(method, answer)
                .err()
                .unwrap_or(DaemonError::BadResponse {
                    method: method.to_string(),
                    reason: "a batch was answered with a single object".into(),
                }));
        };
        let mut ordered: Vec<Option<Answer>> = vec![None; count];
        for item in items {
            let slot = item
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| id.checked_sub(first_id));
            let Some(slot) = slot.filter(|s| (*s as usize) < count) else {
                return Err(DaemonError::BadResponse {
                    method: method.to_string(),
                    reason: "an answer with an unknown id".into(),
                });
            };
            ordered[slot as usize] = Some(match rpc_error(&item) {
                Some(err) => Err(err),
                None => Ok(item.get("result").cloned().unwrap_or(Value::Null)),
            });
        }
        ordered
            .into_iter()
            .map(|a| {
                a.ok_or_else(|| DaemonError::BadResponse {
                    method: method.to_string(),
                    reason: "a batch answer is missing".into(),
                })
            })
            .collect()
    }

    /// The raw block over REST; `None` when the node answers that it has no REST interface
    /// (a 404 or another client error). HTTP error pages and bodies cut short are retried as
    /// [`RpcDaemon::post`] retries them.
    async fn block_rest(&self, hash: &Hash32) -> Result<Option<Vec<u8>>> {
        const METHOD: &str = "REST block";
        let mut retries = Retries::new(self.options.retry);
        loop {
            let endpoints = self.endpoints();
            let index = self.current.load(Ordering::Relaxed) % endpoints.len();
            let base = &endpoints[index].base;
            let url = base
                .join(&format!("rest/block/{}.bin", hash_to_hex(hash)))
                .map_err(|e| DaemonError::BadUrl {
                    url: base.to_string(),
                    reason: e.to_string(),
                })?;
            let base = base.to_string();
            let response = match self.http.get(url).send().await {
                Ok(r) => r,
                Err(e) => {
                    self.fail_over(index);
                    return Err(DaemonError::Unreachable {
                        url: base,
                        reason: error_chain(&e),
                    });
                }
            };
            let status = response.status();
            let failure = if status.is_success() {
                match response.bytes().await {
                    Ok(bytes) => return Ok(Some(bytes.to_vec())),
                    Err(e) => Failure::Broken {
                        url: base,
                        problem: format!(
                            "a block cut off mid-body (HTTP {status}, {})",
                            error_chain(&e)
                        ),
                    },
                }
            } else if unavailable_status(status) {
                Failure::Unavailable(DaemonError::Unreachable {
                    url: base,
                    reason: format!("HTTP {status} for a REST block"),
                })
            } else if status.is_server_error() {
                let page = response.bytes().await.unwrap_or_default();
                Failure::Broken {
                    url: base,
                    problem: format!("HTTP {status}: {}", truncate_bytes(&page)),
                }
            } else {
                return Ok(None);
            };
            retries.wait_after(METHOD, failure).await?;
        }
    }

    /// Checks the node serves `expected_genesis` (display order) and keeps every block and
    /// a transaction index; `coin` and `network` word the error.
    pub async fn preflight(&self, expected_genesis: &str, coin: &str, network: &str) -> Result<()> {
        let got = self.call("getblockhash", json!([0])).await?;
        let got = got.as_str().unwrap_or_default().to_string();
        if !got.eq_ignore_ascii_case(expected_genesis) {
            return Err(DaemonError::WrongNetwork {
                coin: coin.to_string(),
                network: network.to_string(),
                expected: expected_genesis.to_string(),
                got,
            });
        }
        let info = self.chain_info().await?;
        if info.pruned {
            return Err(DaemonError::Pruned);
        }
        match self.call("getindexinfo", json!([])).await {
            Ok(indexes) => {
                if indexes.get("txindex").is_none() {
                    return Err(DaemonError::NoTxIndex);
                }
            }
            // Nodes without getindexinfo (older Core, BSV): look for proof.
            Err(DaemonError::MethodNotFound(_)) if info.blocks >= 1 => {
                self.probe_txindex(info.blocks).await?
            }
            Err(DaemonError::MethodNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        info!(url = %self.current_url(), chain = %info.chain, height = info.blocks, "daemon checked");
        Ok(())
    }
}

impl RpcDaemon {
    /// Decides whether a node without `getindexinfo` keeps a transaction index. Without one,
    /// such nodes still find transactions with an unspent output (through the UTXO set), so the
    /// proof must be a transaction whose outputs are all spent: the previous transactions of
    /// recent spends. One of those that the node cannot find means no index; one it finds
    /// means an index. With no spends in the last blocks there is no proof either way, and the
    /// node is given the benefit of the doubt.
    async fn probe_txindex(&self, tip: u32) -> Result<()> {
        let mut candidates = 0;
        for height in (tip.saturating_sub(50)..=tip).rev() {
            let hash = self.call("getblockhash", json!([height])).await?;
            let block = self.call("getblock", json!([hash, 2])).await?;
            let Some(txs) = block.get("tx").and_then(Value::as_array) else {
                break;
            };
            for tx in txs.iter().skip(1) {
                let Some(vin) = tx.get("vin").and_then(Value::as_array) else {
                    continue;
                };
                for input in vin {
                    let Some(prev) = input.get("txid").and_then(Value::as_str) else {
                        continue;
                    };
                    let found = match self.call("getrawtransaction", json!([prev, 1])).await {
                        Err(DaemonError::Rpc { code: -5, .. }) => {
                            return Err(DaemonError::NoTxIndex)
                        }
                        Err(e) => return Err(e),
                        Ok(found) => found,
                    };
                    let outputs = found
                        .get("vout")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let mut all_spent = outputs > 0;
                    for n in 0..outputs {
                        if !self.call("gettxout", json!([prev, n])).await?.is_null() {
                            all_spent = false;
                            break;
                        }
                    }
                    if all_spent {
                        return Ok(());
                    }
                    candidates += 1;
                    if candidates >= 20 {
                        return Ok(());
                    }
                }
            }
        }
        warn!("cannot tell whether the daemon keeps a transaction index (no recent spends); assuming it does");
        Ok(())
    }
}

fn initial_rest_state(use_rest: Option<bool>) -> u8 {
    match use_rest {
        None => UNKNOWN,
        Some(true) => YES,
        Some(false) => NO,
    }
}

/// `url` with `port` added when it names none, as ElectrumX completes `DAEMON_URL` with the
/// coin's RPC port (an explicit `:80` is kept).
pub fn with_default_port(url: &str, port: Option<u16>) -> String {
    let Some(port) = port else {
        return url.to_string();
    };
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let has_port = match host_port.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => host_port.contains(':'),
    };
    if has_port || host_port.is_empty() {
        return url.to_string();
    }
    let scheme = scheme.map(|s| format!("{s}://")).unwrap_or_default();
    format!("{scheme}{authority}:{port}{path}")
}

fn parse_endpoint(url: &str) -> Result<Endpoint> {
    let bad = |reason: String| DaemonError::BadUrl {
        url: hide_credentials(url),
        reason,
    };
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let mut parsed = reqwest::Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(bad(
            "only http:// is supported; put a TLS proxy in front of remote nodes".into(),
        ));
    }
    let credentials = if parsed.username().is_empty() {
        None
    } else {
        let decode = |s: &str| percent_decode(s);
        Some((
            decode(parsed.username()),
            decode(parsed.password().unwrap_or("")),
        ))
    };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    if parsed.path().is_empty() {
        parsed.set_path("/");
    }
    Ok(Endpoint {
        base: parsed,
        credentials,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with any password replaced and control characters escaped, for logs and errors.
/// Textual rather than parsed: the URLs shown are often the ones that do not parse, and
/// `user:pass@host` without a scheme parses as scheme `user`, so a URL parser would leave the
/// password in either.
pub fn hide_credentials(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (&url[..scheme.len() + 3], rest),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    printable(&format!("{scheme}{authority}{tail}"))
}

/// `text` with control characters escaped (`\u{0}`, `\u{1b}`), so text from the operator or the
/// node cannot garble a terminal or a log line.
pub(crate) fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn truncate(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The start of an answer's body, for messages (bodies that are not UTF-8 show lossily).
fn truncate_bytes(body: &[u8]) -> String {
    truncate(String::from_utf8_lossy(&body[..body.len().min(800)]).trim())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn rpc_error(answer: &Value) -> Option<(i64, String)> {
    let error = answer.get("error")?;
    if error.is_null() {
        return None;
    }
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

/// Bitcoin Core answers -28 while it loads its block index or verifies blocks at start-up.
fn warming_up(answer: &Value) -> Option<String> {
    let check = |a: &Value| match rpc_error(a) {
        Some((-28, message)) => Some(message),
        _ => None,
    };
    match answer {
        Value::Array(items) => items.iter().find_map(check),
        single => check(single),
    }
}

fn single_answer(method: &str, answer: Value) -> Result<Value> {
    match rpc_error(&answer) {
        Some((-32601, _)) => Err(DaemonError::MethodNotFound(method.to_string())),
        Some((code, message)) => Err(DaemonError::Rpc { code, message }),
        None => Ok(answer.get("result").cloned().unwrap_or(Value::Null)),
    }
}

fn hash_of(method: &str, value: &Value) -> Result<Hash32> {
    value
        .as_str()
        .and_then(hash_from_hex)
        .ok_or_else(|| DaemonError::BadResponse {
            method: method.to_string(),
            reason: format!(
                "expected a 64-digit hex hash, got {}",
                truncate(&value.to_string())
            ),
        })
}

fn hex_bytes(method: &str, value: &Value) -> Result<Vec<u8>> {
    value
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| DaemonError::BadResponse {
            method: method.to_string(),
            reason: "expected a hex string".into(),
        })
}

fn from_value<T: serde::de::DeserializeOwned>(method: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| DaemonError::BadResponse {
        method: method.to_string(),
        reason: e.to_string(),
    })
}

#[async_trait]
impl DaemonApi for RpcDaemon {
    fn replace_urls(&self, urls: &[String]) -> Result<()> {
        RpcDaemon::replace_urls(self, urls)
    }

    fn describe(&self) -> String {
        format!("the node at {}", self.current_url())
    }

    async fn chain_info(&self) -> Result<ChainInfo> {
        from_value(
            "getblockchaininfo",
            self.call("getblockchaininfo", json!([])).await?,
        )
    }

    async fn block_count(&self) -> Result<u32> {
        from_value(
            "getblockcount",
            self.call("getblockcount", json!([])).await?,
        )
    }

    async fn block_hashes(&self, heights: std::ops::Range<u32>) -> Result<Vec<Hash32>> {
        let answers = self
            .batch("getblockhash", heights.map(|h| json!([h])).collect())
            .await?;
        answers
            .into_iter()
            .map(|a| match a {
                Ok(v) => hash_of("getblockhash", &v),
                Err((code, message)) => Err(DaemonError::Rpc { code, message }),
            })
            .collect()
    }

    async fn block(&self, hash: &Hash32) -> Result<Vec<u8>> {
        if self.rest.load(Ordering::Relaxed) != NO {
            match self.block_rest(hash).await? {
                Some(raw) => {
                    if self.rest.swap(YES, Ordering::Relaxed) == UNKNOWN {
                        info!("fetching blocks over REST (binary)");
                    }
                    return Ok(raw);
                }
                None if self.rest.load(Ordering::Relaxed) == UNKNOWN => {
                    info!(
                        "the daemon's REST interface is off (rest=0); fetching blocks as JSON hex"
                    );
                    self.rest.store(NO, Ordering::Relaxed);
                }
                None => {}
            }
        }
        let value = self.call("getblock", json!([hash_to_hex(hash), 0])).await?;
        let text = value.as_str().unwrap_or_default();
        hex::decode(text).map_err(|e| DaemonError::BadBlock {
            node: self.describe(),
            height: None,
            hash: hash_to_hex(hash),
            problem: format!(
                "`getblock` answered {} characters that are not a block's hex ({e})",
                text.len()
            ),
        })
    }

    async fn raw_transactions(&self, txids: &[Hash32]) -> Result<Vec<Option<Vec<u8>>>> {
        let params = txids.iter().map(|t| json!([hash_to_hex(t), 0])).collect();
        let answers = self.batch("getrawtransaction", params).await?;
        answers
            .into_iter()
            .map(|a| match a {
                Ok(v) => hex_bytes("getrawtransaction", &v).map(Some),
                // -5: no such transaction.
                Err((-5, _)) => Ok(None),
                Err((code, message)) => Err(DaemonError::Rpc { code, message }),
            })
            .collect()
    }

    async fn raw_transaction(&self, txid: &Hash32) -> Result<Vec<u8>> {
        let value = self
            .call("getrawtransaction", json!([hash_to_hex(txid), 0]))
            .await?;
        hex_bytes("getrawtransaction", &value)
    }

    async fn raw_transaction_verbose(&self, txid: &Hash32) -> Result<Value> {
        self.call("getrawtransaction", json!([hash_to_hex(txid), 1]))
            .await
    }

    async fn mempool_txids(&self) -> Result<Vec<Hash32>> {
        let value = self.call("getrawmempool", json!([])).await?;
        let Value::Array(items) = value else {
            return Err(DaemonError::BadResponse {
                method: "getrawmempool".into(),
                reason: "expected an array".into(),
            });
        };
        items.iter().map(|v| hash_of("getrawmempool", v)).collect()
    }

    async fn mempool_info(&self) -> Result<MempoolInfo> {
        from_value(
            "getmempoolinfo",
            self.call("getmempoolinfo", json!([])).await?,
        )
    }

    async fn estimate_fee(&self, blocks: u32, mode: Option<&str>) -> Result<FeeEstimate> {
        if self.smart_fee.load(Ordering::Relaxed) != NO {
            let params = match mode {
                Some(m) => json!([blocks, m]),
                None => json!([blocks]),
            };
            match self.call("estimatesmartfee", params).await {
                Ok(v) => {
                    self.smart_fee.store(YES, Ordering::Relaxed);
                    return Ok(match v.get("feerate").and_then(Value::as_f64) {
                        Some(rate) if rate > 0.0 => FeeEstimate::Rate(rate),
                        _ => FeeEstimate::Unknown,
                    });
                }
                Err(DaemonError::MethodNotFound(_)) => self.smart_fee.store(NO, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        if self.plain_fee.load(Ordering::Relaxed) != NO {
            match self.call("estimatefee", json!([blocks])).await {
                Ok(v) => {
                    self.plain_fee.store(YES, Ordering::Relaxed);
                    return Ok(match v.as_f64() {
                        Some(rate) if rate > 0.0 => FeeEstimate::Rate(rate),
                        _ => FeeEstimate::Unknown,
                    });
                }
                Err(DaemonError::MethodNotFound(_)) => self.plain_fee.store(NO, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        Ok(FeeEstimate::Unavailable)
    }

    async fn relay_fee(&self) -> Result<f64> {
        let info = self.call("getnetworkinfo", json!([])).await?;
        info.get("relayfee")
            .and_then(Value::as_f64)
            .ok_or_else(|| DaemonError::BadResponse {
                method: "getnetworkinfo".into(),
                reason: "no relayfee".into(),
            })
    }

    async fn node_version(&self) -> Result<super::NodeVersion> {
        let info = self.call("getnetworkinfo", json!([])).await?;
        super::NodeVersion::from_network_info(&info)
    }

    async fn send_raw_transaction(&self, raw_hex: &str) -> Result<Hash32> {
        let value = self.call("sendrawtransaction", json!([raw_hex])).await?;
        hash_of("sendrawtransaction", &value)
    }

    async fn test_mempool_accept(&self, raw_hexes: &[String]) -> Result<Value> {
        self.call("testmempoolaccept", json!([raw_hexes])).await
    }

    async fn submit_package(&self, raw_hexes: &[String]) -> Result<Value> {
        self.call("submitpackage", json!([raw_hexes])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_credentials_out_of_the_base() {
        let e = parse_endpoint("http://user:p%40ss@127.0.0.1:8332").unwrap();
        assert_eq!(e.base.as_str(), "http://127.0.0.1:8332/");
        assert_eq!(e.credentials, Some(("user".into(), "p@ss".into())));
        let e = parse_endpoint("127.0.0.1:18443").unwrap();
        assert_eq!(e.base.as_str(), "http://127.0.0.1:18443/");
        assert!(e.credentials.is_none());
        assert!(parse_endpoint("https://node.example/").is_err());
        assert_eq!(
            hide_credentials("http://u:secret@h:1/"),
            "http://u:***@h:1/"
        );
    }

    /// Found by fuzz/ `config`: URLs that do not parse (or parse as another scheme) showed
    /// their password and raw control characters in errors and in `anode config`.
    #[test]
    fn hidden_credentials_survive_urls_that_do_not_parse() {
        assert_eq!(
            hide_credentials("user:secret@node:8332"),
            "user:***@node:8332"
        );
        assert_eq!(
            hide_credentials("http://u:s3cret@no de:1/path"),
            "http://u:***@no de:1/path"
        );
        assert_eq!(hide_credentials("http://u:a@b@h/"), "http://u:***@h/");
        assert_eq!(hide_credentials("http://h:8332/x@y"), "http://h:8332/x@y");
        assert_eq!(hide_credentials("\0:8332"), "\\u{0}:8332");
        let Err(e) = parse_endpoint("http://user:s3cret@bad\u{1b}host:8332") else {
            panic!("a host with an escape character parsed");
        };
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn a_url_without_port_gets_the_coins_rpc_port() {
        let cases = [
            ("user:pass@node", "user:pass@node:8332"),
            ("http://user:pass@node", "http://user:pass@node:8332"),
            ("http://user:p:ss@node/", "http://user:p:ss@node:8332/"),
            ("http://node:80/", "http://node:80/"),
            ("http://u:p@node:18443", "http://u:p@node:18443"),
            ("http://[::1]/", "http://[::1]:8332/"),
            ("http://u:p@[::1]:9/", "http://u:p@[::1]:9/"),
        ];
        for (given, expected) in cases {
            assert_eq!(with_default_port(given, Some(8332)), expected, "{given}");
        }
        assert_eq!(with_default_port("http://node/", None), "http://node/");
        let e = parse_endpoint(&with_default_port("u:p@127.0.0.1", Some(8332))).unwrap();
        assert_eq!(e.base.as_str(), "http://127.0.0.1:8332/");
    }

    #[tokio::test]
    async fn replaced_urls_take_effect_from_the_first() {
        let daemon = RpcDaemon::new(RpcDaemonOptions {
            urls: vec!["http://127.0.0.1:1/".into(), "http://127.0.0.1:2/".into()],
            ..RpcDaemonOptions::default()
        })
        .unwrap();
        daemon.fail_over(0);
        assert_eq!(daemon.current_url(), "http://127.0.0.1:2/");
        daemon
            .replace_urls(&["http://u:p@127.0.0.1:3/".into()])
            .unwrap();
        assert_eq!(daemon.current_url(), "http://127.0.0.1:3/");
        assert!(daemon.replace_urls(&[]).is_err());
        assert!(daemon.replace_urls(&["https://x/".into()]).is_err());
        assert_eq!(daemon.current_url(), "http://127.0.0.1:3/");
    }

    #[test]
    fn warming_up_is_recognised_in_single_and_batch_answers() {
        let single = json!({"result": null, "error": {"code": -28, "message": "Loading block index..."}, "id": 1});
        assert_eq!(
            warming_up(&single).as_deref(),
            Some("Loading block index...")
        );
        assert!(warming_up(&json!([{"result": 1, "error": null, "id": 1}, single])).is_some());
        assert!(warming_up(&json!({"result": 5, "error": null, "id": 1})).is_none());
    }
}
