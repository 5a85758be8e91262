//! Every configuration option, declared once: its TOML key, environment variables (ElectrumX's
//! names first), command-line flag, default and help. The loader, the `--help` text and
//! `docs/configuration.md` are all made from this one table, so they cannot disagree.

/// One configuration option.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// key in the TOML file (and the canonical name)
    pub key: &'static str,
    /// environment variables, in order of precedence; ElectrumX's name first where it has one
    pub env: &'static [&'static str],
    /// long command-line flag, without the dashes
    pub flag: &'static str,
    /// default value as text, if the option has one
    pub default: Option<&'static str>,
    /// one line for operators
    pub help: &'static str,
}

macro_rules! options {
    ($( $key:literal, [$($env:literal),*], $flag:literal, $default:expr, $help:literal; )*) => {
        /// The option table.
        pub const OPTIONS: &[OptionSpec] = &[
            $( OptionSpec { key: $key, env: &[$($env),*], flag: $flag, default: $default, help: $help }, )*
        ];
    };
}

options! {
    "coin", ["COIN", "ANODE_COIN"], "coin", Some("Bitcoin"),
        "Coin name as ElectrumX spells it (case-insensitive), e.g. Bitcoin, BitcoinCash, Litecoin.";
    "network", ["NET", "ANODE_NETWORK"], "network", Some("mainnet"),
        "Network of the coin: mainnet, testnet, testnet4, signet, regtest, nolnet, ...";
    "daemon_url", ["DAEMON_URL", "ANODE_DAEMON_URL"], "daemon-url", None,
        "Node RPC URL(s), comma-separated for failover: http://user:pass@host:port/.";
    "daemon_cookie_file", ["DAEMON_COOKIE_FILE", "ANODE_DAEMON_COOKIE_FILE"], "daemon-cookie-file", None,
        "Bitcoin Core's .cookie file, used for URLs without credentials (re-read when the node restarts).";
    "db_directory", ["DB_DIRECTORY", "ANODE_DB_DIRECTORY"], "db-directory", None,
        "Directory of the index database.";
    "db_engine", ["DB_ENGINE", "ANODE_DB_ENGINE"], "db-engine", None,
        "Storage engine: rocksdb, lmdb or sqlite (those compiled in). Default: the first compiled in of rocksdb, lmdb, sqlite.";
    "services", ["SERVICES", "ANODE_SERVICES"], "services", Some("tcp://127.0.0.1:50001,rpc://127.0.0.1:8000"),
        "Listeners: comma-separated kind://host:port with kind tcp, ssl, ws, wss or rpc.";
    "report_services", ["REPORT_SERVICES"], "report-services", None,
        "Services advertised to peers and clients (server.features), same syntax as services.";
    "cache_mb", ["CACHE_MB"], "cache-mb", Some("1200"),
        "Memory budget in MB for the UTXO and history caches during the initial sync.";
    "reorg_limit", ["REORG_LIMIT"], "reorg-limit", None,
        "Deepest reorganisation the index can undo. Default: the coin's.";
    "block_source", ["BLOCK_SOURCE", "ANODE_BLOCK_SOURCE"], "block-source", Some("auto"),
        "How blocks are fetched: auto, rpc (getblock hex), rest (/rest/block/*.bin) or p2p.";
    "daemon_p2p_addr", ["DAEMON_P2P_ADDR", "ANODE_DAEMON_P2P_ADDR"], "daemon-p2p-addr", None,
        "host:port of the node's P2P port for block_source = p2p. Default: the first daemon URL's host and the network's P2P port.";
    "zmq_block_url", ["ZMQ_BLOCK_URL"], "zmq-block-url", None,
        "ZMQ hashblock endpoint of the node (zmqpubhashblock, e.g. tcp://127.0.0.1:28332): each announced block is fetched at once instead of at the next poll; polling (poll_interval_blocks_ms) stays on and remains the source of truth.";
    "poll_interval_blocks_ms", ["DAEMON_POLL_INTERVAL_BLOCKS"], "poll-interval-blocks-ms", Some("5000"),
        "Milliseconds between polls of the node for a new tip.";
    "poll_interval_mempool_ms", ["DAEMON_POLL_INTERVAL_MEMPOOL"], "poll-interval-mempool-ms", Some("5000"),
        "Milliseconds between polls of the node's mempool.";
    "max_sessions", ["MAX_SESSIONS"], "max-sessions", Some("1000"),
        "Most client sessions at once; further connections are refused.";
    "max_send", ["MAX_SEND"], "max-send", None,
        "Largest response in bytes; larger answers get the protocol's error instead. Default: the coin's (8100000, 10000000 for AuxPoW coins), as ElectrumX.";
    "max_recv", ["MAX_RECV"], "max-recv", Some("1000000"),
        "Largest request line in bytes on TCP/SSL; a longer line is thrown away unanswered and reading resumes at the next newline, as ElectrumX.";
    "max_subs", ["MAX_SUBS"], "max-subs", Some("250000"),
        "Most script and outpoint subscriptions of all sessions together; a subscription past it gets ElectrumX 1.x's error \"server subscription limit N reached\". 0: no limit (ElectrumX 2.0's behaviour, where only the cost model governs subscriptions).";
    "max_session_subs", ["MAX_SESSION_SUBS"], "max-session-subs", Some("50000"),
        "Most script and outpoint subscriptions of one session; past it: \"your address subscription limit N reached\". 0: no limit.";
    "session_timeout", ["SESSION_TIMEOUT"], "session-timeout", Some("600"),
        "Seconds of silence after which a client session is closed.";
    "request_timeout", ["REQUEST_TIMEOUT"], "request-timeout", Some("30"),
        "Seconds a request may take before it is answered with an error.";
    "cost_soft_limit", ["COST_SOFT_LIMIT"], "cost-soft-limit", Some("1000"),
        "Session cost above which requests are slowed down.";
    "cost_hard_limit", ["COST_HARD_LIMIT"], "cost-hard-limit", Some("10000"),
        "Session cost at which the session is disconnected.";
    "request_sleep", ["REQUEST_SLEEP"], "request-sleep", Some("2500"),
        "Milliseconds of delay per request at the hard limit (scaled from the soft limit).";
    "initial_concurrent", ["INITIAL_CONCURRENT"], "initial-concurrent", Some("10"),
        "Concurrent requests a session may have before throttling; also how many requests it may have read whose answers are not yet written, past which reading pauses.";
    "bandwidth_unit_cost", ["BANDWIDTH_UNIT_COST"], "bandwidth-unit-cost", Some("5000"),
        "Bytes that cost one unit.";
    "banner_file", ["BANNER_FILE"], "banner-file", None,
        "File whose text server.banner returns.";
    "donation_address", ["DONATION_ADDRESS"], "donation-address", Some(""),
        "Address server.donation_address returns.";
    "pad_tcp", ["PAD_TCP"], "pad-tcp", Some("true"),
        "Pad TCP/SSL replies against traffic analysis as ElectrumX does (small replies may wait up to 1 s).";
    "peer_discovery", ["PEER_DISCOVERY"], "peer-discovery", Some("on"),
        "Peer discovery: on, off or self (off on regtest whatever this says).";
    "peer_announce", ["PEER_ANNOUNCE"], "peer-announce", Some("true"),
        "Whether to announce this server to peers.";
    "peers", ["ANODE_PEERS"], "peers", None,
        "Extra peer servers to seed discovery with, comma-separated ElectrumX real names (`host s50002 t50001`), added to the coin's default list.";
    "tor_proxy_host", ["TOR_PROXY_HOST"], "tor-proxy-host", None,
        "Tor SOCKS5 proxy host for onion peers (no onion peers are checked when unset).";
    "tor_proxy_port", ["TOR_PROXY_PORT"], "tor-proxy-port", None,
        "Tor SOCKS5 proxy port (default 9050 when tor_proxy_host is set).";
    "force_proxy", ["FORCE_PROXY"], "force-proxy", Some("false"),
        "Connect to every peer, not just onion peers, through the Tor proxy.";
    "ssl_certfile", ["SSL_CERTFILE"], "ssl-certfile", None,
        "PEM certificate chain for ssl:// and wss:// services.";
    "ssl_keyfile", ["SSL_KEYFILE"], "ssl-keyfile", None,
        "PEM private key for ssl:// and wss:// services.";
    "metrics_addr", ["METRICS_ADDR", "ANODE_METRICS_ADDR"], "metrics-addr", None,
        "host:port of the Prometheus endpoint, served at http://ADDR/metrics (off when unset; see docs/metrics.md).";
    "log_level", ["LOG_LEVEL", "RUST_LOG"], "log-level", Some("info"),
        "Log filter: error, warn, info, debug, trace, or a tracing filter directive.";
}

/// The option with TOML key `key`.
pub fn spec(key: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.key == key)
}
