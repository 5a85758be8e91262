//! The P2P client against a scripted node: framing (magic, command, length, checksum), the
//! `version`/`verack` handshake, then `getdata` for blocks and `getheaders`, answered with
//! arbitrary `version`, `inv`, `notfound`, `headers`, `block`, `ping`/`pong` and raw bytes.
//! The node's messages carry correct checksums unless the script corrupts them, so the
//! fuzzer gets past framing. A second mode feeds raw bytes to the frame reader and every
//! payload decoder. Invariants: no panic; blocks returned are the ones requested, in order;
//! decoded messages re-encode to the bytes read; every error has a message.
#![no_main]
use std::sync::OnceLock;

use anode::daemon::p2p::{
    decode_getheaders, decode_headers, decode_inv, decode_version, encode_getheaders, encode_inv,
    encode_message, put_varint, read_message, P2pOptions, ReadError, MAX_HEADERS,
};
use anode_coins::hash::sha256d;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Arbitrary, Debug)]
enum Input {
    /// the node's side of a connection
    Node(Script),
    /// bytes straight into the frame reader
    Frames(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Script {
    sha256d_header: bool,
    witness: bool,
    batch: u8,
    /// indices of the script's blocks to ask for (and one unknown hash when past the end)
    wanted: Vec<u8>,
    ask_headers: bool,
    /// the node's messages; a `Yield` waits for the client's next `ping`
    messages: Vec<Msg>,
    /// the node hangs up after its last message instead of falling silent
    hang_up: bool,
}

#[derive(Arbitrary, Debug)]
enum Msg {
    Version {
        version: u32,
        services: u64,
        user_agent: Vec<u8>,
        start_height: i32,
        /// cut the payload to this many bytes
        cut: Option<u8>,
    },
    Verack,
    Ping(u64),
    Block(Vec<u8>),
    /// a block whose payload is a header of the given bytes followed by a body
    BlockWithHeader([u8; 80], Vec<u8>),
    Headers(Vec<[u8; 80]>, bool),
    Inv(Vec<(u32, [u8; 32])>),
    /// `notfound` for the script's block with this index
    NotFound(u8),
    Other {
        command: String,
        payload: Vec<u8>,
    },
    /// a valid frame with the checksum or the magic spoiled
    Spoiled {
        command: String,
        payload: Vec<u8>,
        spoil_magic: bool,
    },
    Raw(Vec<u8>),
    /// wait for the client's next `ping`, then answer it with its `pong` (or not)
    Yield {
        pong: bool,
    },
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // The client's read timeout passes at once when the node falls silent.
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

fn options(script: &Script) -> P2pOptions {
    let coin = anode_coins::lookup("Bitcoin", "regtest").expect("Bitcoin regtest exists");
    let mut options = P2pOptions::from_params(coin.params()).expect("regtest has a magic");
    options.sha256d_header = script.sha256d_header;
    options.witness = script.witness;
    options.batch = usize::from(script.batch);
    options
}

fn block_payloads(script: &Script) -> Vec<Vec<u8>> {
    script
        .messages
        .iter()
        .filter_map(|m| match m {
            Msg::Block(b) => Some(b.clone()),
            Msg::BlockWithHeader(h, body) => Some([&h[..], body].concat()),
            _ => None,
        })
        .collect()
}

fn block_hash(payload: &[u8]) -> [u8; 32] {
    payload.get(..80).map(sha256d).unwrap_or([0xee; 32])
}

/// The node's bytes for `msg`.
fn frame(magic: [u8; 4], msg: &Msg, blocks: &[Vec<u8>]) -> Vec<u8> {
    match msg {
        Msg::Version {
            version,
            services,
            user_agent,
            start_height,
            cut,
        } => {
            let mut p = Vec::new();
            p.extend_from_slice(&version.to_le_bytes());
            p.extend_from_slice(&services.to_le_bytes());
            p.extend_from_slice(&[0u8; 8 + 26 + 26 + 8]);
            put_varint(&mut p, user_agent.len() as u64);
            p.extend_from_slice(user_agent);
            p.extend_from_slice(&start_height.to_le_bytes());
            p.push(0);
            if let Some(cut) = cut {
                p.truncate(usize::from(*cut));
            }
            encode_message(magic, "version", &p)
        }
        Msg::Verack => encode_message(magic, "verack", &[]),
        Msg::Ping(n) => encode_message(magic, "ping", &n.to_le_bytes()),
        Msg::Block(b) => encode_message(magic, "block", b),
        Msg::BlockWithHeader(h, body) => encode_message(magic, "block", &[&h[..], body].concat()),
        Msg::Headers(headers, tx_counts) => {
            let mut p = Vec::new();
            put_varint(&mut p, headers.len() as u64);
            for h in headers {
                p.extend_from_slice(h);
                put_varint(&mut p, u64::from(*tx_counts));
            }
            encode_message(magic, "headers", &p)
        }
        Msg::Inv(items) => encode_message(magic, "inv", &encode_inv(items)),
        Msg::NotFound(i) => {
            let hash = blocks
                .get(usize::from(*i))
                .map(|b| block_hash(b))
                .unwrap_or([0xee; 32]);
            encode_message(magic, "notfound", &encode_inv(&[(2, hash)]))
        }
        Msg::Other { command, payload } => encode_message(magic, command, payload),
        Msg::Spoiled {
            command,
            payload,
            spoil_magic,
        } => {
            let mut bytes = encode_message(magic, command, payload);
            let at = if *spoil_magic { 0 } else { 20 };
            bytes[at] ^= 0x5a;
            bytes
        }
        Msg::Raw(bytes) => bytes.clone(),
        Msg::Yield { .. } => Vec::new(),
    }
}

async fn node(
    script: &Script,
    magic: [u8; 4],
    blocks: &[Vec<u8>],
    stream: tokio::io::DuplexStream,
) {
    let (mut read, mut write) = tokio::io::split(stream);
    let mut messages = script.messages.iter().peekable();
    // The client speaks first (`version`); the node answers after reading it.
    let mut waiting_for = Some("version");
    loop {
        if let Some(command) = waiting_for {
            loop {
                let msg = match read_message(&mut read, magic, 1 << 20).await {
                    Ok(m) => m,
                    Err(_) => return,
                };
                if msg.command == command {
                    if let Some(Msg::Yield { pong: true }) = messages.peek() {
                        messages.next();
                        let pong = encode_message(magic, "pong", &msg.payload);
                        if write.write_all(&pong).await.is_err() {
                            return;
                        }
                    } else if let Some(Msg::Yield { .. }) = messages.peek() {
                        messages.next();
                    }
                    break;
                }
            }
        }
        let mut out = Vec::new();
        waiting_for = None;
        while let Some(msg) = messages.peek() {
            if let Msg::Yield { .. } = msg {
                waiting_for = Some("ping");
                break;
            }
            out.extend(frame(magic, msg, blocks));
            messages.next();
        }
        if write.write_all(&out).await.is_err() || write.flush().await.is_err() {
            return;
        }
        if waiting_for.is_none() {
            break;
        }
    }
    if script.hang_up {
        return;
    }
    // Silent but connected: read until the client gives up.
    let mut sink = Vec::new();
    let _ = read.read_to_end(&mut sink).await;
}

async fn client(
    script: &Script,
    options: P2pOptions,
    blocks: &[Vec<u8>],
    stream: tokio::io::DuplexStream,
) {
    let sha256d_header = options.sha256d_header;
    let (read, write) = tokio::io::split(stream);
    let limit = options.connect_timeout;
    let source =
        tokio::time::timeout(limit, anode::fuzzing::p2p_handshake(read, write, options)).await;
    let mut source = match source {
        Ok(Ok(source)) => source,
        Ok(Err(e)) => {
            assert!(!e.to_string().is_empty());
            return;
        }
        Err(_) => return,
    };
    let hashes: Vec<[u8; 32]> = script
        .wanted
        .iter()
        .map(|i| {
            blocks
                .get(usize::from(*i))
                .map(|b| block_hash(b))
                .unwrap_or([0xdd; 32])
        })
        .collect();
    match source.blocks(&hashes).await {
        Ok(got) => {
            assert_eq!(got.len(), hashes.len());
            for (block, hash) in got.iter().zip(&hashes) {
                if sha256d_header {
                    assert_eq!(&block_hash(block), hash, "a block other than the one asked");
                } else {
                    assert!(blocks.contains(block), "a block the node never sent");
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if script.ask_headers {
        match source.headers(&hashes, &[0; 32]).await {
            Ok(headers) => assert!(headers.len() <= MAX_HEADERS),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

fn frames(data: &[u8]) {
    let magic = options(&Script {
        sha256d_header: true,
        witness: false,
        batch: 16,
        wanted: Vec::new(),
        ask_headers: false,
        messages: Vec::new(),
        hang_up: true,
    })
    .magic;
    // Every message with our magic (the first four bytes elsewhere are spoiled on purpose).
    let mut stream = data;
    runtime().block_on(async {
        loop {
            let before = stream;
            match read_message(&mut stream, magic, 1 << 16).await {
                Ok(msg) => {
                    let used = before.len() - stream.len();
                    assert_eq!(
                        encode_message(magic, &msg.command, &msg.payload),
                        before[..used],
                        "a message that does not re-encode to its bytes"
                    );
                    decode_payload(&msg.command, &msg.payload);
                }
                Err(ReadError::Eof) => break,
                Err(_) => break,
            }
        }
    });
    // Each payload decoder on the raw bytes as well.
    for command in ["version", "inv", "notfound", "getheaders", "headers"] {
        decode_payload(command, data);
    }
}

fn decode_payload(command: &str, payload: &[u8]) {
    match command {
        "version" => {
            if let Ok(v) = decode_version(payload) {
                assert!(v.user_agent.len() <= 4 * 256);
            }
        }
        "inv" | "notfound" | "getdata" => {
            if let Ok(items) = decode_inv(payload, command) {
                let again = decode_inv(&encode_inv(&items), command).expect("re-encoded inv");
                assert_eq!(items, again);
            }
        }
        "getheaders" | "getblocks" => {
            if let Ok((locator, stop)) = decode_getheaders(payload, command) {
                let again = decode_getheaders(&encode_getheaders(1, &locator, &stop), command)
                    .expect("re-encoded getheaders");
                assert_eq!((locator, stop), again);
            }
        }
        "headers" => {
            if let Ok(headers) = decode_headers(payload) {
                assert!(headers.len() <= MAX_HEADERS);
            }
        }
        _ => {}
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Frames(data) => frames(&data),
        Input::Node(script) => {
            let options = options(&script);
            let magic = options.magic;
            let blocks = block_payloads(&script);
            runtime().block_on(async {
                let (ours, theirs) = tokio::io::duplex(1 << 16);
                tokio::join!(
                    client(&script, options, &blocks, ours),
                    node(&script, magic, &blocks, theirs)
                );
            });
        }
    }
});
