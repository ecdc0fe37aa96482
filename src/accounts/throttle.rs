//! Login throttling: failures per username at an address, per address and
//! per username; addresses a user signed in from; sign-ups per address; and
//! a short memory of good Basic-auth passwords.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::secret::{random_bytes, sha256};

/// Failed-login bookkeeping per username and per client address, and a
/// short memory of recent good Basic-auth passwords.
pub struct Throttle {
    failures: Mutex<HashMap<String, Failures>>,
    /// Keyed by a keyed hash of username and password; holds the PHC hash
    /// the password was verified against, so a password change misses.
    /// Git over HTTP sends Basic credentials with every request (one per
    /// object on a clone); without this each would cost ~20 ms of argon2.
    verified: Mutex<HashMap<Vec<u8>, (String, Instant)>>,
    /// `user@address` pairs that signed in, and when last.
    known: Mutex<HashMap<String, Instant>>,
    /// Recent sign-ups per client address.
    signups: Mutex<HashMap<IpAddr, Vec<Instant>>>,
    secret: [u8; 32],
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            failures: Mutex::default(),
            verified: Mutex::default(),
            known: Mutex::default(),
            signups: Mutex::default(),
            secret: random_bytes::<32>(),
        }
    }
}

const VERIFIED_FOR: Duration = Duration::from_secs(300);

impl Throttle {
    pub(super) fn verified_key(&self, username: &str, password: &str) -> Vec<u8> {
        let mut material = Vec::with_capacity(32 + username.len() + password.len() + 1);
        material.extend_from_slice(&self.secret);
        material.extend_from_slice(username.as_bytes());
        material.push(0);
        material.extend_from_slice(password.as_bytes());
        sha256(&material)
    }

    pub(super) fn recently_verified(&self, key: &[u8], current_hash: &str) -> bool {
        let map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .is_some_and(|(hash, at)| hash == current_hash && at.elapsed() < VERIFIED_FOR)
    }

    pub(super) fn remember_verified(&self, key: Vec<u8>, hash: &str) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < VERIFIED_FOR);
        }
        map.insert(key, (hash.to_string(), Instant::now()));
    }
}

struct Failures {
    count: u32,
    last: Instant,
}

impl Throttle {
    /// Failures allowed per username from one client address before that
    /// address must wait: what slows one guesser down.
    const FREE: u32 = 5;
    /// Per client address, whatever the usernames; larger because many
    /// people may share one address (an office NAT, a proxy not declared
    /// as trusted).
    const FREE_PER_ADDRESS: u32 = 30;
    /// Per username across all addresses: what slows guesses spread over
    /// many addresses.
    const FREE_PER_USER: u32 = 20;
    const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
    /// How long an address where a user signed in stays theirs.
    const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
    /// Sign-ups allowed per client address per [`Self::SIGNUP_WINDOW`].
    const SIGNUPS: usize = 5;
    const SIGNUP_WINDOW: Duration = Duration::from_secs(3600);

    /// Per username at an address, per address, per username; with the
    /// failures each allows before waiting is required.
    fn keys(username: &str, ip: IpAddr) -> [(String, u32); 3] {
        [
            (format!("ui:{username}@{ip}"), Self::FREE),
            (format!("ip:{ip}"), Self::FREE_PER_ADDRESS),
            (format!("u:{username}"), Self::FREE_PER_USER),
        ]
    }

    /// Whether `username` signed in from `ip` lately: such a pair is held
    /// only to its own failures, so strangers guessing elsewhere (or
    /// behind the same address at other accounts) cannot lock it out.
    fn known(&self, username: &str, ip: IpAddr) -> bool {
        let map = self.known.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&format!("{username}@{ip}"))
            .is_some_and(|at| at.elapsed() < Self::KNOWN_FOR)
    }

    /// How long this login must wait, if at all.
    pub fn check(&self, username: &str, ip: IpAddr) -> Option<Duration> {
        let budgets = if self.known(username, ip) { 1 } else { 3 };
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys(username, ip)
            .iter()
            .take(budgets)
            .filter_map(|(key, free)| map.get(key).map(|f| (f, *free)))
            .filter_map(|(f, free)| {
                if f.last.elapsed() > Self::FORGET_AFTER {
                    return None;
                }
                let over = f.count.checked_sub(free)?;
                // 1 s, 2 s, 4 s … up to 5 minutes after each further failure.
                let wait = Duration::from_secs((1u64 << over.min(9)).min(300));
                let since = f.last.elapsed();
                (since < wait).then(|| wait - since)
            })
            .max()
    }

    pub fn failed(&self, username: &str, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, f| f.last.elapsed() < Self::FORGET_AFTER);
        }
        for (key, _) in Self::keys(username, ip) {
            let entry = map.entry(key).or_insert(Failures {
                count: 0,
                last: Instant::now(),
            });
            if entry.last.elapsed() > Self::FORGET_AFTER {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = Instant::now();
        }
    }

    /// A good credential leaves no failures behind at its own address (typos
    /// before the right password), takes them back off the address's count,
    /// and makes the address the user's own. Other people's failures from
    /// the same address stay counted, so one good account cannot reset the
    /// address for guesses at another; guesses at this user from elsewhere
    /// stay counted against the username, for other addresses.
    pub fn succeeded(&self, username: &str, ip: IpAddr) {
        let [(user_at_address, _), (address, _), _] = Self::keys(username, ip);
        {
            let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(own) = map.remove(&user_at_address)
                && let Some(all) = map.get_mut(&address)
            {
                all.count = all.count.saturating_sub(own.count);
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() > 100_000 {
            known.retain(|_, at| at.elapsed() < Self::KNOWN_FOR);
        }
        known.insert(format!("{username}@{ip}"), Instant::now());
    }

    /// Takes one sign-up from `ip`'s allowance, or says how long until the
    /// next one is allowed.
    pub fn signup(&self, ip: IpAddr) -> Result<(), Duration> {
        let mut map = self.signups.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, times| times.iter().any(|t| t.elapsed() < Self::SIGNUP_WINDOW));
        }
        let times = map.entry(ip).or_default();
        times.retain(|t| t.elapsed() < Self::SIGNUP_WINDOW);
        if times.len() >= Self::SIGNUPS {
            let oldest = times.iter().map(Instant::elapsed).max().unwrap_or_default();
            return Err(Self::SIGNUP_WINDOW.saturating_sub(oldest));
        }
        times.push(Instant::now());
        Ok(())
    }
}
