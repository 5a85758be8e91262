//! The simulator's HTTP listener: JSON-RPC (single and batch) with optional basic auth, and
//! Bitcoin Core's REST endpoints (src/simulator/rest.rs). Replies follow Core 31: JSON-RPC
//! 2.0 requests get 2.0 replies with HTTP 200; legacy (1.0) requests get `result` and `error`
//! both, and an error a 500 (404 for an unknown method, 400 for an invalid request). Outages
//! close the listener so clients see "connection refused", as with a stopped node; HTTP faults
//! a test switches on ([`Simulator::fail_http`]) answer error pages, cut bodies off or cut
//! JSON short.

use std::convert::Infallible;
use std::net::SocketAddr;

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::debug;

use super::control::Simulator;
use super::faults::HttpFault;
use super::rpc::dispatch_request;

/// Credentials the simulated node demands, if any.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// `user:password` accepted in HTTP basic auth
    pub user_pass: Option<String>,
}

/// A running simulator listener.
pub struct SimServer {
    /// where it listens
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl SimServer {
    /// The JSON-RPC URL with credentials, for `DAEMON_URL`.
    pub fn url(&self, auth: &Auth) -> String {
        match &auth.user_pass {
            Some(up) => format!("http://{up}@{}/", self.addr),
            None => format!("http://{}/", self.addr),
        }
    }

    /// Stops listening.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves `sim` on `addr` (port 0 picks a free one) until the returned server is stopped.
pub async fn serve(sim: Simulator, addr: SocketAddr, auth: Auth) -> std::io::Result<SimServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (shutdown, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        let mut listener = Some(listener);
        loop {
            let Some(active) = listener.as_ref() else {
                // In an outage: stay closed until it ends, then listen again on the same port.
                if let Some(ends) = sim.outage_ends() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(ends.into()) => {}
                        _ = stopped.changed() => return,
                    }
                }
                match TcpListener::bind(addr).await {
                    Ok(l) => listener = Some(l),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
                continue;
            };
            let accepted = tokio::select! {
                a = active.accept() => a,
                _ = stopped.changed() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            if sim.in_outage() {
                drop(stream);
                listener = None;
                continue;
            }
            let (sim, auth) = (sim.clone(), auth.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    handle_with_faults(sim.clone(), auth.clone(), req)
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(error = %e, "simulator connection ended");
                }
            });
        }
    });
    Ok(SimServer { addr, shutdown })
}

/// An HTTP answer with `status`, `content_type` and `body` (the JSON-RPC and REST sides alike).
pub(super) fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

fn authorized(auth: &Auth, req: &Request<Incoming>) -> bool {
    let Some(expected) = &auth.user_pass else {
        return true;
    };
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    given.as_deref() == Some(expected.as_bytes())
}

/// One call's reply and, for a legacy request on its own, the HTTP status Core gives it;
/// `None` for a JSON-RPC 2.0 notification (no `id`), which gets no reply.
fn call(sim: &Simulator, request: &Value) -> Option<(Value, StatusCode)> {
    let Some(object) = request.as_object() else {
        return Some(legacy_error(Value::Null, -32600, "Invalid Request object"));
    };
    let v2 = object.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let id = object.get("id").cloned();
    let result = match object.get("method") {
        Some(Value::String(method)) => {
            dispatch_request(sim, method, object.get("params").unwrap_or(&Value::Null))
        }
        _ => Err((-32600, "Method must be a string".to_string())),
    };
    if v2 {
        let id = id?;
        return Some((
            match result {
                Ok(result) => json!({"jsonrpc": "2.0", "result": result, "id": id}),
                Err((code, message)) => {
                    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id})
                }
            },
            StatusCode::OK,
        ));
    }
    let id = id.unwrap_or(Value::Null);
    Some(match result {
        Ok(result) => (
            json!({"result": result, "error": null, "id": id}),
            StatusCode::OK,
        ),
        Err((code, message)) => legacy_error(id, code, &message),
    })
}

/// A legacy error reply with Core's status: 404 for an unknown method, 400 for an invalid
/// request, 500 otherwise.
fn legacy_error(id: Value, code: i64, message: &str) -> (Value, StatusCode) {
    let status = match code {
        -32601 => StatusCode::NOT_FOUND,
        -32600 => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (
        json!({"result": null, "error": {"code": code, "message": message}, "id": id}),
        status,
    )
}

/// A response body that may fail mid-way (a simulated connection cut).
type FaultBody = UnsyncBoxBody<Bytes, std::io::Error>;

fn whole_body(body: Full<Bytes>) -> FaultBody {
    body.map_err(|never| match never {}).boxed_unsync()
}

/// [`handle`], with the HTTP fault switched on for this request, if any
/// ([`Simulator::fail_http`]).
async fn handle_with_faults(
    sim: Simulator,
    auth: Auth,
    req: Request<Incoming>,
) -> Result<Response<FaultBody>, Infallible> {
    let json_rpc = req.method() == hyper::Method::POST;
    let fault = sim.take_http_fault(json_rpc);
    if fault == Some(HttpFault::ServerError) {
        let page = respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "Internal Server Error (a simulated fault)",
        );
        return Ok(page.map(whole_body));
    }
    let response = handle(sim, auth, req).await?;
    let Some(fault) = fault else {
        return Ok(response.map(whole_body));
    };
    let (mut parts, body) = response.into_parts();
    let whole = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let half = whole.slice(..whole.len() / 2);
    let body = match fault {
        HttpFault::CutBody => {
            // The whole length is promised, half is sent, then the body fails: hyper closes
            // the connection, as a node that crashes while answering.
            parts
                .headers
                .insert(hyper::header::CONTENT_LENGTH, whole.len().into());
            let cut = async {
                // Not ready at once: hyper writes out the head and the half body before it
                // polls again and meets the error (an error on the spot would close the
                // connection with them still unsent, as if nothing had been answered).
                tokio::task::yield_now().await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "a simulated connection cut",
                ))
            };
            let frames =
                futures::stream::iter([Ok(Frame::data(half))]).chain(futures::stream::once(cut));
            StreamBody::new(frames).boxed_unsync()
        }
        _ => whole_body(Full::new(half)),
    };
    Ok(Response::from_parts(parts, body))
}

async fn handle(
    sim: Simulator,
    auth: Auth,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if sim.in_outage() {
        // Keep-alive connections opened before the outage end here too.
        return Ok(respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "node stopped",
        ));
    }
    let path = req.uri().path().to_string();
    if req.method() == hyper::Method::GET {
        // REST needs no authentication, as in Core.
        if let Some(response) = super::rest::handle(&sim, &path, req.uri().query()) {
            return Ok(response);
        }
        if !path.starts_with("/rest/") {
            return Ok(respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "JSONRPC server handles only POST requests",
            ));
        }
        return Ok(respond(StatusCode::NOT_FOUND, "text/plain", ""));
    }
    if !authorized(&auth, &req) {
        let mut refused = respond(StatusCode::UNAUTHORIZED, "text/plain", "");
        refused.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"jsonrpc\""),
        );
        return Ok(refused);
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "unreadable body",
            ))
        }
    };
    let (answer, status) = match serde_json::from_slice::<Value>(&body) {
        // A batch is answered with 200 whatever its calls' outcomes.
        Ok(Value::Array(batch)) => (
            Value::Array(
                batch
                    .iter()
                    .filter_map(|r| call(&sim, r).map(|(reply, _)| reply))
                    .collect(),
            ),
            StatusCode::OK,
        ),
        Ok(single) => match call(&sim, &single) {
            Some(reply) => reply,
            None => return Ok(respond(StatusCode::NO_CONTENT, "application/json", "")),
        },
        Err(_) => legacy_error(Value::Null, -32700, "Parse error"),
    };
    Ok(respond(status, "application/json", format!("{answer}\n")))
}
