//! The node the server under test indexes, reached the way a server reaches it: Bitcoin Core's
//! JSON-RPC, over HTTP (external and real-node modes) or in-process for the matrix's
//! simulator. The suite reads the chain from here for its expectations; it never asks the
//! server's index.

use anode::simulator::{dispatch, Simulator};
use anyhow::{anyhow, Context};
use serde_json::{json, Value};

/// A JSON-RPC endpoint of a node (real or simulated).
#[derive(Clone)]
pub enum Node {
    /// the simulator, called in-process (same dispatch as `anode simulate` serves over HTTP)
    InProcess(Simulator),
    /// a node's JSON-RPC URL, credentials in the URL (`http://user:pass@host:port/`)
    Http {
        /// endpoint
        url: String,
        /// client
        http: reqwest::Client,
    },
}

impl Node {
    /// A node at `url`.
    pub fn http(url: &str) -> Node {
        Node::Http {
            url: url.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Calls `method` with `params`; a node error becomes an error naming the call.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        match self {
            Node::InProcess(sim) => {
                let list = match params {
                    Value::Array(a) => a,
                    Value::Null => Vec::new(),
                    other => vec![other],
                };
                dispatch(sim, method, &list)
                    .map_err(|(code, message)| anyhow!("node {method}: {code} {message}"))
            }
            Node::Http { url, http } => {
                let (base, auth) = split_credentials(url);
                let mut request = http
                    .post(&base)
                    .json(&json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}));
                if let Some((user, pass)) = auth {
                    request = request.basic_auth(user, Some(pass));
                }
                let reply: Value = request
                    .send()
                    .await
                    .with_context(|| format!("node {method}: HTTP"))?
                    .json()
                    .await
                    .with_context(|| format!("node {method}: reply body"))?;
                match reply.get("error") {
                    Some(e) if !e.is_null() => Err(anyhow!("node {method}: {e}")),
                    _ => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
                }
            }
        }
    }
}

/// `http://user:pass@host/` → (`http://host/`, Some((user, pass))).
fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    match authority.rsplit_once('@') {
        Some((creds, host)) => {
            let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
            (
                format!("{scheme}://{host}{path}"),
                Some((user.to_string(), pass.to_string())),
            )
        }
        None => (url.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_credentials;

    #[test]
    fn credentials_leave_the_url() {
        assert_eq!(
            split_credentials("http://u:p@127.0.0.1:8332/"),
            (
                "http://127.0.0.1:8332/".to_string(),
                Some(("u".to_string(), "p".to_string()))
            )
        );
        assert_eq!(
            split_credentials("http://127.0.0.1:8332"),
            ("http://127.0.0.1:8332".to_string(), None)
        );
    }
}
