//! The REST block reader (`/rest/block/HASH.bin`) and its JSON fallback against an HTTP node
//! on loopback whose answer is the input: raw bytes, or a status with a body sent with a
//! Content-Length (right, short or long), chunked (arbitrary chunk sizes, possibly cut
//! short), or until the connection closes. Invariants: no panic; a well-framed `200` body
//! is returned byte for byte; every error is a bounded message.
#![no_main]
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anode::daemon::{DaemonApi, RetryPolicy, RpcDaemon, RpcDaemonOptions};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// REST known on (`Some(true)`), unknown (`None`: a 404 turns it off) or off
    use_rest: Option<bool>,
    answer: Answer,
}

#[derive(Arbitrary, Debug)]
enum Answer {
    Raw(Vec<u8>),
    Http {
        status: u16,
        framing: Framing,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    },
}

#[derive(Arbitrary, Debug)]
enum Framing {
    Length { off_by: i8 },
    Chunked { sizes: Vec<u8>, cut: Option<u16> },
    UntilClose,
}

impl Answer {
    fn bytes(&self) -> Vec<u8> {
        let (status, framing, body, headers) = match self {
            Answer::Raw(bytes) => return bytes.clone(),
            Answer::Http {
                status,
                framing,
                body,
                headers,
            } => (status, framing, body, headers),
        };
        let mut out = format!("HTTP/1.1 {} Fuzz\r\n", 100 + status % 500).into_bytes();
        for (name, value) in headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n");
        match framing {
            Framing::Length { off_by } => {
                let len = (body.len() as i64 + i64::from(*off_by)).max(0);
                out.extend_from_slice(format!("Content-Length: {len}\r\n\r\n").as_bytes());
                out.extend_from_slice(body);
            }
            Framing::Chunked { sizes, cut } => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut rest = &body[..];
                for size in sizes.iter().chain(std::iter::once(&255)) {
                    if rest.is_empty() {
                        break;
                    }
                    let n = usize::from(*size).clamp(1, rest.len());
                    out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    out.extend_from_slice(&rest[..n]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                if !rest.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", rest.len()).as_bytes());
                    out.extend_from_slice(rest);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                if let Some(cut) = cut {
                    out.truncate(out.len().saturating_sub(usize::from(*cut)));
                }
            }
            Framing::UntilClose => {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(body);
            }
        }
        out
    }

    /// The body a correct reader must return: a plain `200` with exact framing.
    fn expected_block(&self) -> Option<&[u8]> {
        match self {
            Answer::Http {
                status,
                framing,
                body,
                headers,
            } if 100 + status % 500 == 200 && headers.is_empty() => match framing {
                Framing::Length { off_by: 0 } | Framing::Chunked { cut: None, .. } => Some(body),
                Framing::UntilClose => Some(body),
                _ => None,
            },
            _ => None,
        }
    }
}

struct Node {
    port: u16,
    answer: Arc<Mutex<Vec<u8>>>,
}

/// One loopback HTTP node per process: it reads each request whole, then writes the current
/// answer and closes.
fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("loopback listener");
        let port = listener.local_addr().expect("address").port();
        let answer = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&answer);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let bytes = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
                serve(stream, &bytes);
            }
        });
        Node { port, answer }
    })
}

fn serve(mut stream: TcpStream, answer: &[u8]) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the request whole (headers, then a Content-Length body): closing with unread
    // bytes would reset the connection and the client would see a reset, not the answer.
    let body_len = loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break end + 4 + len;
        }
    };
    while request.len() < body_len {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(answer);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Wait for the client to close, so it reads everything before the socket goes.
    let _ = stream.read(&mut buf);
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|input: Input| {
    let node = node();
    *node.answer.lock().unwrap_or_else(|p| p.into_inner()) = input.answer.bytes();
    let daemon = RpcDaemon::new(RpcDaemonOptions {
        urls: vec![format!("http://user:pass@127.0.0.1:{}/", node.port)],
        use_rest: input.use_rest,
        // One try: a broken answer is an error at once, not a retry loop.
        retry: RetryPolicy {
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            give_up_after: Some(Duration::ZERO),
            broken_answer_attempts: 1,
        },
        request_timeout: Duration::from_secs(10),
        ..RpcDaemonOptions::default()
    })
    .expect("daemon client");
    let result = runtime().block_on(daemon.block(&[0x11; 32]));
    match result {
        Ok(block) => {
            if input.use_rest != Some(false) {
                if let Some(expected) = input.answer.expected_block() {
                    assert_eq!(block, expected, "the REST body was not returned as sent");
                }
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.is_empty());
            assert!(
                text.len() < 4096,
                "an unbounded error message: {} bytes",
                text.len()
            );
        }
    }
});
