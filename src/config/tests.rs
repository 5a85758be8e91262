use super::*;

fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn electrumx_environment_is_understood() {
    let raw = RawConfig::defaults().with_env(env(&[
        ("COIN", "BitcoinCash"),
        ("NET", "nolnet"),
        (
            "DAEMON_URL",
            "http://u:p@127.0.0.1:8332/, http://u:p@127.0.0.1:18332/",
        ),
        ("DB_DIRECTORY", "/var/lib/anode"),
        ("DB_ENGINE", "LMDB"),
        ("SERVICES", "tcp://:50001,ws://[::1]:50003,rpc://"),
        ("CACHE_MB", "2000"),
        ("COST_SOFT_LIMIT", "500"),
    ]));
    let config = Config::from_raw(&raw).unwrap();
    assert_eq!(config.coin, "BitcoinCash");
    assert_eq!(config.network, "nolnet");
    assert_eq!(config.daemon_urls.len(), 2);
    assert_eq!(config.db_engine.as_deref(), Some("lmdb"));
    assert_eq!(config.cache_mb, 2000);
    assert_eq!(config.limits.cost_soft_limit, 500.0);
    assert_eq!(config.services[0].bind_addr(), "0.0.0.0:50001");
    assert_eq!(config.services[1].bind_addr(), "[::1]:50003");
    assert_eq!(config.services[2].bind_addr(), "127.0.0.1:8000");
}

#[test]
fn flags_beat_env_beat_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("anode.toml");
    std::fs::write(&file, "coin = \"Litecoin\"\ncache_mb = 100\nmax_sessions = 7\ndaemon_url = [\"http://a/\", \"http://b/\"]\n").unwrap();
    let raw = RawConfig::defaults()
        .with_file(&file)
        .unwrap()
        .with_env(env(&[("CACHE_MB", "200"), ("MAX_SESSIONS", "8")]))
        .with_flags([("max_sessions", "9".to_string())]);
    let config = Config::from_raw(&raw).unwrap();
    assert_eq!(config.coin, "Litecoin");
    assert_eq!(config.cache_mb, 200);
    assert_eq!(config.limits.max_sessions, 9);
    assert_eq!(config.daemon_urls, vec!["http://a/", "http://b/"]);
    assert_eq!(config.network, "mainnet");
    assert!(matches!(
        raw.get("max_sessions"),
        Some((_, Source::Flag("max-sessions")))
    ));
}

#[test]
fn errors_name_the_option_and_its_source() {
    let raw = RawConfig::defaults().with_env(env(&[("CACHE_MB", "lots")]));
    let err = Config::from_raw(&raw).unwrap_err().to_string();
    assert!(
        err.contains("cache_mb") && err.contains("CACHE_MB"),
        "{err}"
    );

    let raw = RawConfig::defaults().with_env(env(&[("SERVICES", "gopher://:70")]));
    let err = Config::from_raw(&raw).unwrap_err().to_string();
    assert!(err.contains("unknown service kind"), "{err}");

    let raw = RawConfig::defaults().with_env(env(&[("SERVICES", "ssl://:50002")]));
    let err = Config::from_raw(&raw).unwrap_err().to_string();
    assert!(err.contains("ssl_certfile"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("anode.toml");
    std::fs::write(&file, "cache_mbb = 1\n").unwrap();
    let err = RawConfig::defaults()
        .with_file(&file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown option `cache_mbb`"), "{err}");

    let config = Config::from_raw(&RawConfig::defaults()).unwrap();
    let err = config.db_directory().unwrap_err().to_string();
    assert!(
        err.contains("DB_DIRECTORY") && err.contains("--db-directory"),
        "{err}"
    );
}

#[test]
fn every_option_has_distinct_names_and_a_parseable_default() {
    let mut keys = std::collections::HashSet::new();
    let mut flags = std::collections::HashSet::new();
    for o in OPTIONS {
        assert!(keys.insert(o.key), "duplicate key {}", o.key);
        assert!(flags.insert(o.flag), "duplicate flag {}", o.flag);
        assert!(!o.env.is_empty(), "{} has no environment variable", o.key);
    }
    Config::from_raw(&RawConfig::defaults()).unwrap();
}

#[test]
fn peer_options() {
    let raw = RawConfig::defaults().with_env(env(&[
        ("ANODE_PEERS", "a.example s t, b.example t50011"),
        ("TOR_PROXY_HOST", "127.0.0.1"),
        ("FORCE_PROXY", "yes"),
    ]));
    let config = Config::from_raw(&raw).unwrap();
    assert_eq!(config.peers, ["a.example s t", "b.example t50011"]);
    assert_eq!(config.tor_proxy, Some(("127.0.0.1".to_string(), 9050)));
    assert!(config.force_proxy);
    let defaults = Config::from_raw(&RawConfig::defaults()).unwrap();
    assert!(defaults.peers.is_empty() && !defaults.force_proxy);
    // Forcing the proxy without one would silently stop all peer checks.
    let raw = RawConfig::defaults().with_env(env(&[("FORCE_PROXY", "1")]));
    assert!(matches!(
        Config::from_raw(&raw),
        Err(ConfigError::Invalid {
            key: "force_proxy",
            ..
        })
    ));
}

#[test]
fn size_limits_default_as_electrumx_with_the_coins_send_limit() {
    let config = Config::from_raw(&RawConfig::defaults()).unwrap();
    assert_eq!(config.limits.max_send, 8_100_000);
    assert_eq!(config.limits.max_recv, 1_000_000);
    let aux =
        Config::from_raw(&RawConfig::defaults().with_env(env(&[("COIN", "Namecoin")]))).unwrap();
    assert_eq!(
        aux.limits.max_send,
        anode_coins::lookup("Namecoin", "mainnet")
            .unwrap()
            .params()
            .default_max_send
    );
    assert_eq!(aux.limits.max_send, 10_000_000, "AuxPoW headers are large");
    let set =
        Config::from_raw(&RawConfig::defaults().with_env(env(&[("MAX_SEND", "400000")]))).unwrap();
    assert_eq!(set.limits.max_send, 400_000);
}

#[test]
fn cost_limits_follow_electrumx_rules() {
    let limits = |soft: &str, hard: &str| {
        let raw = RawConfig::defaults()
            .with_env(env(&[("COST_SOFT_LIMIT", soft), ("COST_HARD_LIMIT", hard)]));
        Config::from_raw(&raw).map(|c| (c.limits.cost_soft_limit, c.limits.cost_hard_limit))
    };
    // Both zero: accepted, and throttling is off (server/cost.rs).
    assert_eq!(limits("0", "0").unwrap(), (0.0, 0.0));
    // Equal above zero: the hard limit is raised by 1, as ElectrumX's env.py does.
    assert_eq!(limits("500", "500").unwrap(), (500.0, 501.0));
    assert_eq!(limits("1000", "10000").unwrap(), (1000.0, 10000.0));
    // Below the soft limit: refused, saying so.
    let err = limits("2000", "1000").unwrap_err().to_string();
    assert!(
        err.contains("cost_hard_limit") && err.contains(">= cost_soft_limit"),
        "{err}"
    );
}

/// Found by fuzz/ `config`: the TOML parser quotes the offending line, and a NUL or an escape
/// byte in the file reached the error message, and so the terminal, raw.
#[test]
fn file_errors_escape_control_characters() {
    let err = RawConfig::defaults()
        .with_toml(Path::new("anode.toml"), "\0 = 1\n\u{1b}[31m = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("anode.toml"), "{err}");
    assert!(err.contains("\\u{0}"), "{err}");
    assert!(
        !err.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{err:?}"
    );
    let err = Config::from_raw(&RawConfig::defaults().with_env(env(&[("SERVICES", "\u{2}")])))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SERVICES"), "{err}");
    assert!(!err.chars().any(char::is_control), "{err:?}");
}
