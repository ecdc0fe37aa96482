//! Accounts and who is asking: password hashing, users, sessions, API
//! tokens, login throttling, and the CSRF / Origin checks on requests.
//!
//! Only hashes of secrets are stored: argon2id for passwords, SHA-256 for
//! session and API tokens (random 256-bit values, so a fast hash suffices).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use poem::Request;
use poem::http::{Method, header};
use poem::web::headers::{
    Authorization, HeaderMapExt, authorization::Basic, authorization::Bearer,
};
use redb::ReadableTable;
use sha2::{Digest, Sha256};

use crate::App;
use crate::domain::{Password, Role, Username};
use crate::error::{AppError, AppResult};
use crate::files::Actor;
use crate::store::{
    self, SESSIONS, SessionRecord, TOKEN_HASHES, TOKENS, TokenRecord, USERS, UserRecord, now,
};

pub const SESSION_COOKIE: &str = "latch_session";
pub const CSRF_HEADER: &str = "X-CSRF-Token";
pub const CSRF_FIELD: &str = "_csrf";

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn argon2() -> Argon2<'static> {
    // argon2id, m = 19456 KiB, t = 2, p = 1: ~20 ms per check, OWASP's floor.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// How many argon2 computations run at once: one per core (at least two).
/// Each holds 19 MiB while it runs, and more at once would not finish sooner.
fn argon2_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2)
    })
}

type Argon2Job = Box<dyn FnOnce() + Send>;

/// Runs `work` on one of `argon2_limit()` threads kept for argon2 and waits
/// for it. Blocking. The allocator keeps the 19 MiB a thread once used, so
/// argon2 on whichever blocking thread was free grew the process by about
/// that much per thread the blocking pool ever had: 200 sign-ups at once
/// left it 3.7 GiB larger, 200 wrong passwords at once (no account needed)
/// 3.7 GiB more. On a few dedicated threads it stays under 300 MiB.
fn on_argon2_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    static JOBS: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Argon2Job>>> =
        std::sync::OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Argon2Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..argon2_limit() {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an argon2 thread");
            }
        }
        Mutex::new(tx)
    });
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let job: Argon2Job = Box::new(move || {
        let _ = done_tx.send(work());
    });
    let sent = jobs.lock().unwrap_or_else(|p| p.into_inner()).send(job);
    // No argon2 thread is left to take it: do the work here rather than fail.
    if let Err(std::sync::mpsc::SendError(job)) = sent {
        job();
    }
    done_rx.recv().ok()
}

/// Sign-ins queue here, on the async side, before taking a blocking thread:
/// a flood of them then waits cheaply instead of filling the blocking pool
/// that database work also needs.
async fn argon2_turn() -> Option<tokio::sync::OwnedSemaphorePermit> {
    static TURNS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    TURNS
        .get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(argon2_limit())))
        .clone()
        .acquire_owned()
        .await
        .ok()
}

/// Blocking (~20 ms): call from `spawn_blocking`.
pub fn hash_password(password: &Password) -> AppResult<String> {
    let password = password.as_str().to_string();
    on_argon2_thread(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal("hashing a password", e))
    })
    .unwrap_or_else(|| Err(AppError::Internal("the argon2 thread stopped".into())))
}

/// Blocking (~20 ms): call from `spawn_blocking`.
pub fn verify_password(phc: &str, password: &str) -> bool {
    let (phc, password) = (phc.to_string(), password.to_string());
    on_argon2_thread(move || {
        PasswordHash::new(&phc)
            .map(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
            .unwrap_or(false)
    })
    .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that an
/// unknown name costs as much time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        on_argon2_thread(|| {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(b"decoy password", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .unwrap_or_default()
    })
}

pub fn actor_of(user: &UserRecord) -> Actor {
    Actor {
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        role: user.role,
    }
}

/// Fields for a new account, already validated.
pub struct NewUser {
    pub username: Username,
    pub password: Password,
    pub role: Role,
    pub display_name: Option<String>,
}

/// Creates a user; 409 when the name is taken. Blocking.
pub fn create_user(store: &store::Store, new: NewUser) -> AppResult<UserRecord> {
    insert_user(store, new, false)
}

/// Creates the first account; 409 if any account exists by the time the
/// write happens, so two racing set-ups cannot both make an admin. Blocking.
pub fn create_first_user(store: &store::Store, new: NewUser) -> AppResult<UserRecord> {
    insert_user(store, new, true)
}

fn insert_user(store: &store::Store, new: NewUser, only_if_none: bool) -> AppResult<UserRecord> {
    use redb::ReadableTableMetadata;
    let hash = hash_password(&new.password)?;
    let rec = UserRecord {
        username: new.username.as_str().to_string(),
        display_name: new
            .display_name
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| new.username.as_str().to_string()),
        password_hash: hash,
        role: new.role,
        disabled: false,
        created_at: now(),
    };
    store.write(|tx| {
        if only_if_none && tx.txn.open_table(USERS)?.len()? > 0 {
            return Err(AppError::Conflict(
                "Latch is already set up; sign in instead.".into(),
            ));
        }
        if store::get_user(&tx.txn.open_table(USERS)?, &rec.username)?.is_some() {
            return Err(AppError::Conflict(format!(
                "The username {} is taken.",
                rec.username
            )));
        }
        store::put_user(&tx.txn, &rec)?;
        Ok(rec.clone())
    })
}

/// Changes to an account, already validated.
#[derive(Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<Password>,
    pub display_name: Option<String>,
}

/// Applies `patch`; a change of role, password or a disabling ends the
/// user's sessions (the caller closes their live connections). Blocking.
pub fn update_user(
    store: &store::Store,
    username: &str,
    patch: UserPatch,
) -> AppResult<(UserRecord, bool)> {
    let hash = patch.password.as_ref().map(hash_password).transpose()?;
    store.write(|tx| {
        let mut rec = store::get_user(&tx.txn.open_table(USERS)?, username)?
            .ok_or_else(|| AppError::NotFound(format!("There is no user {username}.")))?;
        let mut end_sessions = false;
        if let Some(role) = patch.role
            && role != rec.role
        {
            if rec.role == Role::Admin && count_active_admins(tx)? <= 1 {
                return Err(AppError::Conflict(
                    "This is the last active admin; make another admin first.".into(),
                ));
            }
            rec.role = role;
            end_sessions = true;
        }
        if let Some(disabled) = patch.disabled
            && disabled != rec.disabled
        {
            if disabled && rec.role == Role::Admin && count_active_admins(tx)? <= 1 {
                return Err(AppError::Conflict(
                    "This is the last active admin; it cannot be disabled.".into(),
                ));
            }
            rec.disabled = disabled;
            end_sessions |= disabled;
        }
        if let Some(hash) = hash {
            rec.password_hash = hash;
            end_sessions = true;
        }
        if let Some(name) = patch.display_name.filter(|d| !d.is_empty()) {
            rec.display_name = name;
        }
        store::put_user(&tx.txn, &rec)?;
        if end_sessions {
            delete_sessions_of(tx, &rec.username)?;
        }
        Ok((rec, end_sessions))
    })
}

fn count_active_admins(tx: &store::Tx) -> AppResult<usize> {
    let users = tx.txn.open_table(USERS)?;
    let mut count = 0;
    for row in users.iter()? {
        let (_, v) = row?;
        let u: UserRecord = store::decode(v.value())?;
        if u.role == Role::Admin && !u.disabled {
            count += 1;
        }
    }
    Ok(count)
}

fn delete_sessions_of(tx: &store::Tx, username: &str) -> AppResult<()> {
    let mut sessions = tx.txn.open_table(SESSIONS)?;
    sessions.retain(|_, v| {
        serde_json::from_slice::<SessionRecord>(v)
            .map(|s| s.username != username)
            .unwrap_or(false)
    })?;
    Ok(())
}

/// A signed-in browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: Vec<u8>,
    pub csrf_token: String,
    pub user: UserRecord,
    /// When it began (unix seconds): it ends `session_absolute` after.
    pub created_at: i64,
    /// Its last recorded activity, this request included when recorded: it
    /// ends `session_idle` after unless activity is recorded again.
    pub last_seen: i64,
}

impl Session {
    /// The unix second from which `find_session` refuses this session
    /// unless activity after `last_seen` is recorded: the earlier of idle
    /// and absolute expiry.
    pub fn expires_at(&self, config: &crate::Config, last_seen: i64) -> i64 {
        let idle = last_seen.saturating_add(config.session_idle.as_secs() as i64);
        let absolute = self
            .created_at
            .saturating_add(config.session_absolute.as_secs() as i64);
        // `find_session` refuses once the elapsed time is *over* the limit.
        idle.min(absolute).saturating_add(1)
    }
}

impl Session {
    pub fn actor(&self) -> Actor {
        actor_of(&self.user)
    }
}

/// Starts a session: a fresh random token every login. Returns the token
/// for the cookie and the session. Blocking.
pub fn start_session(store: &store::Store, user: &UserRecord) -> AppResult<(String, Session)> {
    let token = hex(&random_bytes::<32>());
    let token_hash = sha256(token.as_bytes());
    let rec = SessionRecord {
        username: user.username.clone(),
        csrf_token: random_hex(24),
        created_at: now(),
        last_seen: now(),
    };
    let (created_at, last_seen) = (rec.created_at, rec.last_seen);
    store.write(|tx| {
        let mut sessions = tx.txn.open_table(SESSIONS)?;
        sessions.insert(token_hash.as_slice(), store::encode(&rec)?.as_slice())?;
        // Sweep expired sessions now and then so the table stays small.
        if token_hash[0] == 0 {
            let cutoff = now() - 7 * 24 * 3600;
            sessions.retain(|_, v| {
                serde_json::from_slice::<SessionRecord>(v)
                    .map(|s| s.last_seen > cutoff)
                    .unwrap_or(false)
            })?;
        }
        Ok(())
    })?;
    Ok((
        token,
        Session {
            token_hash,
            csrf_token: rec.csrf_token,
            user: user.clone(),
            created_at,
            last_seen,
        },
    ))
}

/// Looks a session token up, enforcing idle and absolute expiry and the
/// user's disabled flag. Blocking.
pub fn find_session(app: &App, token: &str) -> AppResult<Option<Session>> {
    if token.len() != 64 {
        return Ok(None);
    }
    let token_hash = sha256(token.as_bytes());
    let found = app.store.read(|txn| {
        let Some(value) = txn.open_table(SESSIONS)?.get(token_hash.as_slice())? else {
            return Ok(None);
        };
        let session: SessionRecord = store::decode(value.value())?;
        let user = store::get_user(&txn.open_table(USERS)?, &session.username)?;
        Ok(user.map(|u| (session, u)))
    })?;
    let Some((session, user)) = found else {
        return Ok(None);
    };
    let t = now();
    let idle = app.config.session_idle.as_secs() as i64;
    let absolute = app.config.session_absolute.as_secs() as i64;
    if user.disabled || t - session.last_seen > idle || t - session.created_at > absolute {
        end_session(&app.store, &token_hash)?;
        return Ok(None);
    }
    // Activity is recorded at most once a minute, and more often when the
    // idle limit is short, so activity always keeps a session alive.
    let mut last_seen = session.last_seen;
    if t - session.last_seen > (idle / 4).min(60) {
        let mut touched = session.clone();
        touched.last_seen = t;
        let hash = token_hash.clone();
        app.store.write_lazily(|tx| {
            tx.txn
                .open_table(SESSIONS)?
                .insert(hash.as_slice(), store::encode(&touched)?.as_slice())?;
            Ok(())
        })?;
        last_seen = t;
        // The session's live connections move their idle deadline on.
        app.hub.session_active(&token_hash, t);
    }
    Ok(Some(Session {
        token_hash,
        csrf_token: session.csrf_token,
        user,
        created_at: session.created_at,
        last_seen,
    }))
}

/// Blocking.
pub fn end_session(store: &store::Store, token_hash: &[u8]) -> AppResult<()> {
    store.write(|tx| {
        tx.txn.open_table(SESSIONS)?.remove(token_hash)?;
        Ok(())
    })
}

/// Creates an API token; the token itself is returned once and never stored.
pub fn create_token(
    store: &store::Store,
    username: &str,
    name: &str,
) -> AppResult<(TokenRecord, String)> {
    let token = format!("latch_{}", hex(&random_bytes::<32>()));
    let hash = sha256(token.as_bytes());
    let rec = store.write(|tx| {
        let id = store::next_token_id(&tx.txn)?;
        let rec = TokenRecord {
            id,
            username: username.to_string(),
            name: name.to_string(),
            hash: hash.clone(),
            created_at: now(),
            last_used: None,
        };
        tx.txn
            .open_table(TOKENS)?
            .insert(id, store::encode(&rec)?.as_slice())?;
        tx.txn
            .open_table(TOKEN_HASHES)?
            .insert(hash.as_slice(), id)?;
        Ok(rec)
    })?;
    Ok((rec, token))
}

pub fn list_tokens(store: &store::Store, username: &str) -> AppResult<Vec<TokenRecord>> {
    store.read(|txn| {
        let mut out = Vec::new();
        for row in txn.open_table(TOKENS)?.iter()? {
            let (_, v) = row?;
            let rec: TokenRecord = store::decode(v.value())?;
            if rec.username == username {
                out.push(rec);
            }
        }
        Ok(out)
    })
}

/// Revokes one of `username`'s tokens (an admin may revoke anyone's).
pub fn revoke_token(store: &store::Store, actor: &Actor, id: u64) -> AppResult<()> {
    store.write(|tx| {
        let mut tokens = tx.txn.open_table(TOKENS)?;
        let rec: TokenRecord = match tokens.get(id)? {
            Some(v) => store::decode(v.value())?,
            None => return Err(AppError::NotFound(format!("There is no token {id}."))),
        };
        if rec.username != actor.username && !actor.is_admin() {
            return Err(AppError::NotFound(format!("There is no token {id}.")));
        }
        tokens.remove(id)?;
        tx.txn
            .open_table(TOKEN_HASHES)?
            .remove(rec.hash.as_slice())?;
        Ok(())
    })
}

fn user_by_token(store: &store::Store, token: &str) -> AppResult<Option<UserRecord>> {
    Ok(token_owner(store, token)?.filter(|u| !u.disabled))
}

/// The user a token belongs to, disabled or not.
fn token_owner(store: &store::Store, token: &str) -> AppResult<Option<UserRecord>> {
    let hash = sha256(token.as_bytes());
    store.read(|txn| {
        let Some(id) = txn
            .open_table(TOKEN_HASHES)?
            .get(hash.as_slice())?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        let Some(value) = txn.open_table(TOKENS)?.get(id)? else {
            return Ok(None);
        };
        let rec: TokenRecord = store::decode(value.value())?;
        store::get_user(&txn.open_table(USERS)?, &rec.username)
    })
}

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
    fn verified_key(&self, username: &str, password: &str) -> Vec<u8> {
        let mut material = Vec::with_capacity(32 + username.len() + password.len() + 1);
        material.extend_from_slice(&self.secret);
        material.extend_from_slice(username.as_bytes());
        material.push(0);
        material.extend_from_slice(password.as_bytes());
        sha256(&material)
    }

    fn recently_verified(&self, key: &[u8], current_hash: &str) -> bool {
        let map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .is_some_and(|(hash, at)| hash == current_hash && at.elapsed() < VERIFIED_FOR)
    }

    fn remember_verified(&self, key: Vec<u8>, hash: &str) {
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

/// Checks a username and password, with throttling and one message for
/// unknown users and wrong passwords alike.
pub async fn login(app: &App, username: &str, password: &str, ip: IpAddr) -> AppResult<UserRecord> {
    let wrong = || AppError::Unauthenticated("The username or password is wrong.".into());
    // An empty password is no guess: Git sends one (or none) to learn
    // whether the server wants credentials before it asks its helper.
    // Answered 401 (with the challenge, where the caller adds one), counted
    // nowhere, and before the throttle so Git is never told to wait for it.
    if password.is_empty() {
        return Err(wrong());
    }
    let name = Username::parse(username)
        .map(|u| u.as_str().to_string())
        .unwrap_or_default();
    let throttled = |wait: Duration| AppError::TooManyRequests {
        message: match wait.as_secs().max(1) {
            1 => "Too many failed logins; try again in 1 second.".to_string(),
            n => format!("Too many failed logins; try again in {n} seconds."),
        },
        retry_after_secs: wait.as_secs().max(1),
    };
    if let Some(wait) = app.throttle.check(&name, ip) {
        return Err(throttled(wait));
    }
    // Checked again once it is this attempt's turn, and the outcome recorded
    // before the turn passes on: otherwise a burst of attempts all pass the
    // check before any failure counts (200 at once were 200 guesses).
    let turn = argon2_turn().await;
    if let Some(wait) = app.throttle.check(&name, ip) {
        return Err(throttled(wait));
    }
    let store = app.store.clone();
    let password = password.to_string();
    let lookup = name.clone();
    let user = tokio::task::spawn_blocking(move || -> AppResult<Option<UserRecord>> {
        let user = if lookup.is_empty() {
            None
        } else {
            store.user(&lookup)?
        };
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.as_str())
            .unwrap_or(decoy_hash());
        let ok = verify_password(hash, &password);
        Ok(user.filter(|u| ok && !u.disabled))
    })
    .await??;
    let outcome = match user {
        Some(user) => {
            app.throttle.succeeded(&name, ip);
            Ok(user)
        }
        None => {
            app.throttle.failed(&name, ip);
            Err(wrong())
        }
    };
    drop(turn);
    outcome
}

/// The value of the first `latch_session` cookie, if any.
pub fn session_cookie(req: &Request) -> Option<String> {
    session_cookies(req).into_iter().next()
}

/// Every `latch_session` cookie sent (at most a few): a sibling subdomain
/// can plant one of its own beside ours, and the browser may send it first.
fn session_cookies(req: &Request) -> Vec<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .take(4)
        .collect()
}

pub fn session_set_cookie(app: &App, req: &Request, token: &str) -> String {
    let secure = if is_https(app, req) { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        app.config.session_absolute.as_secs()
    )
}

pub fn session_clear_cookie(app: &App, req: &Request) -> String {
    let secure = if is_https(app, req) { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}

/// The session of a request, if it carries a valid one.
pub async fn request_session(app: &App, req: &Request) -> AppResult<Option<Session>> {
    let tokens = session_cookies(req);
    if tokens.is_empty() {
        return Ok(None);
    }
    let app = app.clone();
    // The first valid one counts, wherever it stands.
    tokio::task::spawn_blocking(move || {
        for token in tokens {
            if let Some(session) = find_session(&app, &token)? {
                return Ok(Some(session));
            }
        }
        Ok(None)
    })
    .await?
}

fn from_trusted_proxy(app: &App, req: &Request) -> bool {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    peer.is_some_and(|ip| app.config.trusted_proxies.contains(&ip))
}

fn forwarded(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next_back().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The client's address: the peer, or what a trusted proxy says it is.
pub fn client_ip(app: &App, req: &Request) -> IpAddr {
    let peer = req
        .remote_addr()
        .as_socket_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    if from_trusted_proxy(app, req)
        && let Some(ip) = forwarded(req, "x-forwarded-for").and_then(|v| v.parse().ok())
    {
        return ip;
    }
    peer
}

pub fn is_https(app: &App, req: &Request) -> bool {
    if app.config.secure_cookies {
        return true;
    }
    from_trusted_proxy(app, req)
        && forwarded(req, "x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The `host[:port]` this server is reached at, as the browser sees it.
fn own_authority(app: &App, req: &Request) -> Option<String> {
    if from_trusted_proxy(app, req)
        && let Some(host) = forwarded(req, "x-forwarded-host")
    {
        return Some(host.to_ascii_lowercase());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| h.to_ascii_lowercase())
        .or_else(|| {
            req.uri()
                .authority()
                .map(|a| a.as_str().to_ascii_lowercase())
        })
}

/// Refuses requests a browser sent from another site: `Origin` must name
/// this server when present, and `Sec-Fetch-Site` must not be cross-site.
pub fn check_same_origin(app: &App, req: &Request) -> AppResult<()> {
    let refused =
        || AppError::Forbidden("This request came from another site and was refused.".into());
    if let Some(site) = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refused());
    }
    let mut origins = req.headers().get_all(header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        // A browser sends one; two are a forgery that hopes one is ignored.
        if origins.next().is_some() {
            return Err(refused());
        }
        let origin = origin.to_str().map_err(|_| refused())?;
        let (scheme, rest) = origin.split_once("://").ok_or_else(refused)?;
        let authority = rest.trim_end_matches('/').to_ascii_lowercase();
        if Some(authority) != own_authority(app, req)
            || !scheme.eq_ignore_ascii_case(own_scheme(app, req))
        {
            return Err(refused());
        }
    }
    Ok(())
}

/// The scheme browsers reach this server by: `https` with
/// `--secure-cookies` or when a trusted proxy says so, `http` otherwise
/// (Latch itself speaks plain HTTP; behind TLS the flags are required).
fn own_scheme(app: &App, req: &Request) -> &'static str {
    // One answer for cookies and Origin alike: `--secure-cookies` says the
    // public side is HTTPS even when a proxy behind the TLS terminator
    // forwards `X-Forwarded-Proto: http`.
    if is_https(app, req) { "https" } else { "http" }
}

pub fn is_unsafe_method(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Compares a CSRF token without leaking timing.
pub fn csrf_matches(session: &Session, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let (a, b) = (session.csrf_token.as_bytes(), presented.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn csrf_header(req: &Request) -> Option<String> {
    req.headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// How a script authenticated.
pub enum Credential {
    Session(Session),
    Token(UserRecord),
}

impl Credential {
    pub fn user(&self) -> &UserRecord {
        match self {
            Credential::Session(s) => &s.user,
            Credential::Token(u) => u,
        }
    }
}

/// Authenticates an API (or LFS) request: bearer token, HTTP Basic with a
/// password or token, or a session cookie plus CSRF header for writes.
pub async fn authenticate_api(app: &App, req: &Request) -> AppResult<Credential> {
    let missing = || {
        AppError::Unauthenticated(
            "Sign in first: send a session cookie, an API token (Authorization: Bearer …) or HTTP Basic credentials."
                .into(),
        )
    };
    // Whatever the credential: a browser replays cached Basic credentials on
    // a cross-site form post, so a write that a browser marks as coming from
    // another site is refused before any credential counts. Scripts and Git
    // send neither header.
    if is_unsafe_method(req.method()) {
        check_same_origin(app, req)?;
    }
    if let Some(bearer) = req.headers().typed_get::<Authorization<Bearer>>() {
        let store = app.store.clone();
        let token = bearer.token().to_string();
        let user = tokio::task::spawn_blocking(move || user_by_token(&store, &token)).await??;
        return user.map(Credential::Token).ok_or_else(|| {
            AppError::Unauthenticated("The API token is unknown or revoked.".into())
        });
    }
    if let Some(basic) = req.headers().typed_get::<Authorization<Basic>>() {
        let password = basic.password().to_string();
        if password.starts_with("latch_") {
            let store = app.store.clone();
            let wanted = Username::parse(basic.username())
                .map(|u| u.as_str().to_string())
                .unwrap_or_default();
            let owner =
                tokio::task::spawn_blocking(move || token_owner(&store, &password)).await??;
            if let Some(owner) = owner {
                // A real token: it is this user's and the user is enabled,
                // or it is refused as a token (never tried as a password).
                return Some(owner)
                    .filter(|u| u.username == wanted && !u.disabled)
                    .map(Credential::Token)
                    .ok_or_else(|| {
                        AppError::Unauthenticated("The username or API token is wrong.".into())
                    });
            }
            // No such token: a password may start like one too, so it is
            // checked (and counted) as a password.
        }
        return basic_password(app, req, basic.username(), basic.password()).await;
    }
    let session = request_session(app, req).await?.ok_or_else(missing)?;
    if is_unsafe_method(req.method()) && !csrf_matches(&session, csrf_header(req).as_deref()) {
        return Err(AppError::Forbidden(
            "The X-CSRF-Token header is missing or wrong; it comes from POST /api/login.".into(),
        ));
    }
    Ok(Credential::Session(session))
}

/// HTTP Basic with a password: a full login the first time, then a
/// remembered success for a few minutes (see `Throttle::verified`).
async fn basic_password(
    app: &App,
    req: &Request,
    username: &str,
    password: &str,
) -> AppResult<Credential> {
    let name = Username::parse(username)
        .map(|u| u.as_str().to_string())
        .unwrap_or_default();
    let key = app.throttle.verified_key(&name, password);
    if !name.is_empty() {
        let store = app.store.clone();
        let lookup = name.clone();
        let user = tokio::task::spawn_blocking(move || store.user(&lookup)).await??;
        if let Some(user) = user
            && !user.disabled
            && app.throttle.recently_verified(&key, &user.password_hash)
        {
            return Ok(Credential::Token(user));
        }
    }
    let user = login(app, username, password, client_ip(app, req)).await?;
    app.throttle.remember_verified(key, &user.password_hash);
    Ok(Credential::Token(user))
}
