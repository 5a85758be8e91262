//! ElectrumX's cost model (docs/protocol.md, Cost model): a decaying per-session cost, shared by
//! the sessions of one source subnet, that slows and finally refuses a session.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::Limits;

/// Cost of opening a connection.
pub const CONNECT_COST: f64 = 5.0;
/// Cost added per error.
pub const ERROR_COST: f64 = 100.0;
/// Extra cost of unparsable JSON.
pub const BAD_JSON_COST: f64 = 1000.0;

/// One session's cost, decaying continuously.
#[derive(Debug)]
pub struct SessionCost {
    cost: f64,
    at: Instant,
}

impl SessionCost {
    /// A new session's cost.
    pub fn new() -> Self {
        SessionCost {
            cost: CONNECT_COST,
            at: Instant::now(),
        }
    }

    /// The decayed cost now. Subscriptions slow the decay (docs/protocol.md, Subscription limits).
    pub fn current(&mut self, limits: &Limits, subs: usize) -> f64 {
        let now = Instant::now();
        let rate = limits.cost_hard_limit / (10_000.0 + 5.0 * subs as f64);
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.cost = (self.cost - rate * elapsed).max(0.0);
        self.at = now;
        self.cost
    }

    /// Adds `amount` (after decaying).
    pub fn add(&mut self, limits: &Limits, subs: usize, amount: f64) -> f64 {
        let c = self.current(limits, subs) + amount;
        self.cost = c;
        c
    }
}

impl Default for SessionCost {
    fn default() -> Self {
        Self::new()
    }
}

/// What throttling asks of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Throttle {
    /// run after sleeping, with at most `concurrency` requests of the session running
    Run {
        /// sleep before running
        sleep: Duration,
        /// the session's concurrency target
        concurrency: usize,
    },
    /// the hard limit is reached: answer -101 and close
    Refuse,
}

/// Throttling for an effective cost.
pub fn throttle(limits: &Limits, effective_cost: f64) -> Throttle {
    let span = limits.cost_hard_limit - limits.cost_soft_limit;
    if span <= 0.0 {
        // COST_SOFT_LIMIT=0 COST_HARD_LIMIT=0: throttling off, as aiorpcX does when the
        // hard limit is not above the soft one.
        return Throttle::Run {
            sleep: Duration::ZERO,
            concurrency: limits.initial_concurrent.max(1),
        };
    }
    let f = ((effective_cost - limits.cost_soft_limit) / span).max(0.0);
    let concurrency = ((1.0 - f) * limits.initial_concurrent as f64).ceil();
    if concurrency <= 0.0 {
        return Throttle::Refuse;
    }
    Throttle::Run {
        sleep: Duration::from_secs_f64(f * limits.request_sleep_ms as f64 / 1000.0),
        concurrency: concurrency as usize,
    }
}

/// The group a peer's cost is shared with: IPv4 /24 or IPv6 /48. Private, loopback and
/// link-local addresses are not grouped.
pub fn group_name(addr: &SocketAddr) -> Option<String> {
    match addr.ip() {
        IpAddr::V4(v4) => {
            if v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() {
                return None;
            }
            let o = v4.octets();
            Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return group_name(&SocketAddr::new(IpAddr::V4(v4), addr.port()));
            }
            let s = v6.segments();
            let local = v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80;
            if local {
                return None;
            }
            Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
        }
    }
}

#[derive(Debug, Default)]
struct Group {
    members: HashSet<u64>,
    retained: f64,
    at: Option<Instant>,
}

/// The cost groups of every session.
#[derive(Debug, Default)]
pub struct Groups {
    groups: Mutex<HashMap<String, Group>>,
}

impl Groups {
    /// Registers session `id` in `group`.
    pub fn join(&self, group: &str, id: u64) {
        self.groups
            .lock()
            .entry(group.to_string())
            .or_default()
            .members
            .insert(id);
    }

    /// Removes session `id`, keeping its remaining cost as the group's retained cost.
    pub fn leave(&self, limits: &Limits, group: &str, id: u64, remaining: f64) {
        let mut groups = self.groups.lock();
        if let Some(g) = groups.get_mut(group) {
            g.members.remove(&id);
            g.retained = decay_retained(limits, g) + remaining;
            g.at = Some(Instant::now());
            if g.members.is_empty() && g.retained <= 0.0 {
                groups.remove(group);
            }
        }
    }

    /// The other members of `group` and its retained cost now.
    pub fn others(&self, limits: &Limits, group: &str, id: u64) -> (Vec<u64>, f64) {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return (Vec::new(), 0.0);
        };
        g.retained = decay_retained(limits, g);
        g.at = Some(Instant::now());
        let others = g.members.iter().copied().filter(|m| *m != id).collect();
        (others, g.retained)
    }
}

/// Retained cost falls by `300 × hard / 5000` every 300 s, i.e. `hard / 5000` per second.
fn decay_retained(limits: &Limits, g: &Group) -> f64 {
    let elapsed = g.at.map_or(0.0, |t| t.elapsed().as_secs_f64());
    (g.retained - elapsed * limits.cost_hard_limit / 5000.0).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_sessions: 10,
            max_send: 1_000_000,
            max_recv: 1_000_000,
            max_subs: 0,
            max_session_subs: 0,
            session_timeout_secs: 600,
            request_timeout_secs: 30,
            cost_soft_limit: 1000.0,
            cost_hard_limit: 10000.0,
            request_sleep_ms: 2500,
            initial_concurrent: 10,
            bandwidth_unit_cost: 5000.0,
        }
    }

    #[test]
    fn throttling_follows_the_soft_and_hard_limits() {
        let l = limits();
        assert_eq!(
            throttle(&l, 500.0),
            Throttle::Run {
                sleep: Duration::ZERO,
                concurrency: 10
            }
        );
        assert_eq!(
            throttle(&l, 5500.0),
            Throttle::Run {
                sleep: Duration::from_millis(1250),
                concurrency: 5
            }
        );
        assert_eq!(throttle(&l, 10_000.0), Throttle::Refuse);
        assert_eq!(throttle(&l, 20_000.0), Throttle::Refuse);
    }

    #[test]
    fn zero_limits_turn_throttling_off() {
        // ElectrumX accepts COST_SOFT_LIMIT=0 COST_HARD_LIMIT=0: no sleep, no refusal.
        let l = Limits {
            cost_soft_limit: 0.0,
            cost_hard_limit: 0.0,
            ..limits()
        };
        for cost in [0.0, 5_000.0, 1e12] {
            assert_eq!(
                throttle(&l, cost),
                Throttle::Run {
                    sleep: Duration::ZERO,
                    concurrency: 10
                }
            );
        }
    }

    #[test]
    fn groups_by_subnet() {
        let a: SocketAddr = "203.0.113.7:1".parse().unwrap();
        assert_eq!(group_name(&a).as_deref(), Some("203.0.113.0/24"));
        assert_eq!(group_name(&"127.0.0.1:1".parse().unwrap()), None);
        assert_eq!(group_name(&"10.1.2.3:1".parse().unwrap()), None);
        assert_eq!(group_name(&"[::1]:1".parse().unwrap()), None);
        assert_eq!(
            group_name(&"[2001:db8:1:2::5]:1".parse().unwrap()).as_deref(),
            Some("2001:db8:1::/48")
        );
        let groups = Groups::default();
        groups.join("g", 1);
        groups.join("g", 2);
        let l = limits();
        assert_eq!(groups.others(&l, "g", 1).0, vec![2]);
        groups.leave(&l, "g", 2, 50.0);
        let (others, retained) = groups.others(&l, "g", 1);
        assert!(others.is_empty());
        assert!(retained > 49.0 && retained <= 50.0);
    }

    #[test]
    fn cost_decays() {
        let l = limits();
        let mut c = SessionCost::new();
        c.add(&l, 0, 100.0);
        c.at -= Duration::from_secs(10);
        let now = c.current(&l, 0);
        assert!((now - 95.0).abs() < 0.01, "{now}");
    }
}
