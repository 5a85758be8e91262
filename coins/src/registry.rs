//! The network registry: built-in data files, run-time data files, and lookup by
//! ElectrumX's `COIN` / `NET` names.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::coin::GenericCoin;
use crate::params::{parse_networks, NetworkParams};
use crate::{Coin, Error};

// The built-in data files: every `coins/networks/*.toml`, embedded by build.rs in family
// order (docs/coins.md, Families) (`const BUILTIN: &[(&str, &str)]`).
include!(concat!(env!("OUT_DIR"), "/networks.rs"));

/// Every built-in network, parsed once. A broken built-in file is a build defect
/// caught by the test suite; here it surfaces as an error from [`lookup`].
pub fn builtin_networks() -> Result<&'static [NetworkParams], Error> {
    static CELL: OnceLock<Result<Vec<NetworkParams>, Error>> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut all = Vec::new();
        for (name, text) in BUILTIN {
            all.extend(parse_networks(text, name)?);
        }
        check_unique(&all)?;
        Ok(all)
    })
    .as_ref()
    .map(|v| v.as_slice())
    .map_err(Clone::clone)
}

fn check_unique(all: &[NetworkParams]) -> Result<(), Error> {
    for (i, a) in all.iter().enumerate() {
        for b in &all[..i] {
            if names_of(a).any(|n| names_of(b).any(|m| m.eq_ignore_ascii_case(n)))
                && a.net.eq_ignore_ascii_case(&b.net)
            {
                return Err(Error::Config(format!(
                    "duplicate network {} (also {})",
                    a.id(),
                    b.id()
                )));
            }
        }
    }
    Ok(())
}

fn names_of(p: &NetworkParams) -> impl Iterator<Item = &str> {
    std::iter::once(p.coin.as_str()).chain(p.aliases.iter().map(String::as_str))
}

/// Parses network entries from TOML text (`origin` names it in errors).
pub fn load_networks_from_str(text: &str, origin: &str) -> Result<Vec<NetworkParams>, Error> {
    parse_networks(text, origin)
}

/// Loads every `*.toml` file of a directory (sorted by name).
pub fn load_networks_from_dir(dir: &Path) -> Result<Vec<NetworkParams>, Error> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", dir.display())))?;
    let mut files: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", f.display())))?;
        all.extend(parse_networks(&text, &f.display().to_string())?);
    }
    Ok(all)
}

/// Builds a coin from parameters.
pub fn coin_from_params(params: NetworkParams) -> Arc<dyn Coin> {
    Arc::new(GenericCoin::new(params))
}

/// A set of networks: the built-in ones plus any loaded at run time. Later entries
/// with the same coin and net replace earlier ones.
#[derive(Clone, Debug)]
pub struct Registry {
    networks: Vec<NetworkParams>,
}

impl Registry {
    /// The built-in networks.
    pub fn builtin() -> Result<Self, Error> {
        Ok(Registry {
            networks: builtin_networks()?.to_vec(),
        })
    }

    /// An empty registry.
    pub fn empty() -> Self {
        Registry {
            networks: Vec::new(),
        }
    }

    /// Adds networks, replacing any with the same coin and net.
    pub fn extend(&mut self, nets: Vec<NetworkParams>) {
        for n in nets {
            self.networks.retain(|o| {
                !(o.coin.eq_ignore_ascii_case(&n.coin) && o.net.eq_ignore_ascii_case(&n.net))
            });
            self.networks.push(n);
        }
    }

    /// Adds every `*.toml` file of a directory.
    pub fn load_dir(&mut self, dir: &Path) -> Result<(), Error> {
        let nets = load_networks_from_dir(dir)?;
        self.extend(nets);
        Ok(())
    }

    pub fn networks(&self) -> &[NetworkParams] {
        &self.networks
    }

    /// Finds the parameters of `coin`/`net` (case-insensitive; `net` defaults to
    /// `mainnet` when empty).
    pub fn find(&self, coin: &str, net: &str) -> Result<&NetworkParams, Error> {
        let net = if net.trim().is_empty() {
            "mainnet"
        } else {
            net.trim()
        };
        let coin = coin.trim();
        self.networks
            .iter()
            .find(|p| {
                p.net.eq_ignore_ascii_case(net) && names_of(p).any(|n| n.eq_ignore_ascii_case(coin))
            })
            .ok_or_else(|| self.unknown(coin, net))
    }

    /// Looks up a network and builds its coin.
    pub fn lookup(&self, coin: &str, net: &str) -> Result<Arc<dyn Coin>, Error> {
        Ok(coin_from_params(self.find(coin, net)?.clone()))
    }

    fn unknown(&self, coin: &str, net: &str) -> Error {
        let want = format!("{}/{}", coin.to_ascii_lowercase(), net.to_ascii_lowercase());
        let coin_l = coin.to_ascii_lowercase();
        let mut scored: Vec<(usize, String)> = self
            .networks
            .iter()
            .map(|p| {
                let id = format!("{}/{}", p.coin, p.net);
                let d = names_of(p)
                    .map(|n| {
                        let cand =
                            format!("{}/{}", n.to_ascii_lowercase(), p.net.to_ascii_lowercase());
                        let mut d = levenshtein(&want, &cand);
                        if n.eq_ignore_ascii_case(coin) {
                            d = d.min(1);
                        } else if !coin_l.is_empty() && n.to_ascii_lowercase().contains(&coin_l) {
                            d = d.min(3);
                        }
                        d
                    })
                    .min()
                    .unwrap_or(usize::MAX);
                (d, id)
            })
            .collect();
        scored.sort();
        let close: Vec<String> = scored
            .iter()
            .filter(|(d, _)| *d <= 4)
            .take(8)
            .map(|(_, id)| {
                format!(
                    "COIN={} NET={}",
                    id.split('/').next().unwrap_or(""),
                    id.split('/').nth(1).unwrap_or("")
                )
            })
            .collect();
        let hint = if close.is_empty() {
            format!(
                "no close match among {} networks (see docs/coins.md)",
                self.networks.len()
            )
        } else {
            format!("did you mean: {}", close.join(", "))
        };
        Error::UnknownNetwork {
            coin: coin.to_string(),
            net: net.to_string(),
            hint,
        }
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Looks up a built-in network by ElectrumX's `COIN` and `NET` names
/// (case-insensitive), e.g. `lookup("BitcoinCash", "nolnet")`.
pub fn lookup(coin: &str, net: &str) -> Result<Arc<dyn Coin>, Error> {
    static REG: OnceLock<Result<Registry, Error>> = OnceLock::new();
    REG.get_or_init(Registry::builtin)
        .as_ref()
        .map_err(Clone::clone)?
        .lookup(coin, net)
}
