//! Accounts: users, sign-in, sessions, API tokens and the login throttle,
//! as one service beside `Files`. Ending a session here also ends its live
//! connections, so no caller has to remember to.
//!
//! Only hashes of secrets are stored: argon2id for passwords, SHA-256 for
//! session and API tokens (random 256-bit values, so a fast hash suffices).
//! Who is asking, as HTTP sees it (cookies, Basic, CSRF, Origin), is the
//! edge's business: `http::guards`.

mod names;
mod password;
mod records;
mod throttle;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use self::names::Names;
pub use self::records::add_user_offline;
use self::records::{
    create_token, end_session, insert_user, list_tokens, revoke_token, start_session, token_owner,
    update_user,
};
pub use self::throttle::Throttle;
use crate::domain::{Password, Role, Username};
use crate::error::{AppError, AppResult};
use crate::files::Actor;
use crate::live::Hub;
use crate::secret::{self, random_hex, sha256};
use crate::store::{self, SESSIONS, SessionRecord, Store, TokenRecord, USERS, UserRecord, now};

/// How long a session lasts: `idle` after its last recorded activity, and
/// never more than `absolute` after it began.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub absolute: Duration,
}

impl SessionPolicy {
    /// The first unix second at which a session begun at `created_at`, last
    /// active at `last_seen`, is refused: the earlier of idle and absolute
    /// expiry (a session is refused once the time is *over* a limit).
    pub fn deadline(&self, created_at: i64, last_seen: i64) -> i64 {
        let idle = last_seen.saturating_add(self.idle.as_secs() as i64);
        let absolute = created_at.saturating_add(self.absolute.as_secs() as i64);
        idle.min(absolute).saturating_add(1)
    }
}

/// Users, sessions, tokens and sign-in; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    hub: Hub,
    throttle: Arc<Throttle>,
    policy: SessionPolicy,
    /// While no user exists: the token of the one-time `/setup` link.
    setup_token: Arc<Mutex<Option<String>>>,
    /// Display names for templates, kept in step with every add and rename.
    names: Names,
}

impl Accounts {
    /// Blocking: with no user yet, makes `admin` from `admin_password` or
    /// else a one-time setup token (see [`Accounts::setup_token`]).
    pub fn open(
        store: Store,
        hub: Hub,
        policy: SessionPolicy,
        admin_password: Option<&str>,
        names: Names,
    ) -> AppResult<Accounts> {
        let mut setup_token = None;
        if store.user_count()? == 0 {
            match admin_password {
                Some(password) => {
                    let new = NewUser {
                        username: Username::parse("admin")?,
                        password: Password::parse(password)
                            .map_err(|e| AppError::Invalid(format!("LATCH_ADMIN_PASSWORD: {e}")))?,
                        role: Role::Admin,
                        display_name: Some("Administrator".into()),
                    };
                    add_user_offline(&store, new)?;
                    tracing::info!("created user 'admin' from LATCH_ADMIN_PASSWORD");
                }
                None => setup_token = Some(random_hex(16)),
            }
        }
        names.fill(&store.all_users()?);
        Ok(Accounts {
            store,
            hub,
            throttle: Arc::new(Throttle::default()),
            policy,
            setup_token: Arc::new(Mutex::new(setup_token)),
            names,
        })
    }

    /// Username → display name, for templates.
    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// The one-time setup link's token, while no user exists.
    pub fn setup_token(&self) -> Option<String> {
        self.setup_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `presented` is the setup link's token (never once set up).
    pub fn setup_token_ok(&self, presented: &str) -> bool {
        let guard = self.setup_token.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_deref()
            .is_some_and(|t| secret::same(t.as_bytes(), presented.as_bytes()))
    }

    pub async fn user_count(&self) -> AppResult<u64> {
        self.store.blocking(Store::user_count).await
    }

    pub async fn users(&self) -> AppResult<Vec<UserRecord>> {
        self.store.blocking(Store::all_users).await
    }

    /// Creates a user; 409 when the name is taken.
    pub async fn create_user(&self, new: NewUser) -> AppResult<UserRecord> {
        let user = self
            .store
            .blocking(move |store| insert_user(store, new, false))
            .await?;
        self.names.set(&user);
        Ok(user)
    }

    /// The first admin, through the one-time setup link: 403 for a wrong
    /// token, 409 once anyone exists (two racing set-ups cannot both make
    /// an admin). Signs the new admin in.
    pub async fn set_up(&self, presented: &str, new: NewUser) -> AppResult<(String, Session)> {
        self.may_set_up(presented).await?;
        let user = self
            .store
            .blocking(move |store| insert_user(store, new, true))
            .await?;
        self.names.set(&user);
        *self.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.start_session(&user).await
    }

    /// Whether the set-up link `presented` may still make the first admin:
    /// 409 once anyone exists, 403 for a wrong token.
    pub async fn may_set_up(&self, presented: &str) -> AppResult<()> {
        if self.user_count().await? > 0 {
            return Err(already_set_up());
        }
        if !self.setup_token_ok(presented) {
            return Err(AppError::Forbidden(
                "The setup link is not valid; use the one printed in the server's log.".into(),
            ));
        }
        Ok(())
    }

    /// Self-service sign-up (the caller checks it is allowed): a few per
    /// address an hour, as each costs an argon2 hash and leaves an account.
    /// Signs the new user in.
    pub async fn sign_up(&self, new: NewUser, ip: IpAddr) -> AppResult<(String, Session)> {
        if let Err(wait) = self.throttle.signup(ip) {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            return Err(AppError::TooManyRequests {
                message: match minutes {
                    1 => "Too many sign-ups from your address; try again in a minute.".into(),
                    n => format!("Too many sign-ups from your address; try again in {n} minutes."),
                },
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        let user = self.create_user(new).await?;
        self.start_session(&user).await
    }

    /// Applies `patch`. A change of role, password or a disabling ends the
    /// user's sessions and closes their live connections.
    pub async fn update_user(&self, username: String, patch: UserPatch) -> AppResult<UserRecord> {
        let (user, ended) = self
            .store
            .blocking(move |store| update_user(store, &username, patch))
            .await?;
        self.names.set(&user);
        if ended {
            self.hub.end_user(&user.username);
        }
        Ok(user)
    }

    /// Sets where `username`'s notifications are mailed and which kinds.
    pub async fn set_mail(
        &self,
        username: &str,
        patch: crate::mail::MailPatch,
    ) -> AppResult<UserRecord> {
        let who = username.to_string();
        self.store
            .blocking(move |store| records::set_mail(store, &who, patch))
            .await
    }

    /// Remembers how `username` likes the dashboard listed (cards or table).
    pub async fn set_view(
        &self,
        username: &str,
        view: crate::store::ListView,
    ) -> AppResult<UserRecord> {
        let who = username.to_string();
        self.store
            .blocking(move |store| records::set_view(store, &who, view))
            .await
    }

    /// Changes a signed-in user's own password after checking the current
    /// one (counted like a sign-in). Every session of theirs ends; the
    /// returned one replaces the caller's.
    pub async fn change_password(
        &self,
        session: &Session,
        current: &str,
        new: Password,
        ip: IpAddr,
    ) -> AppResult<(String, Session)> {
        // A wrong password is 403 (the session is fine); a throttled
        // attempt stays 429, with its wait, like any sign-in.
        self.login(&session.user.username, current, ip)
            .await
            .map_err(|e| match e {
                AppError::Unauthenticated(_) => {
                    AppError::Forbidden("The current password is wrong.".into())
                }
                other => other,
            })?;
        let patch = UserPatch {
            password: Some(new),
            ..Default::default()
        };
        let user = self
            .update_user(session.user.username.clone(), patch)
            .await?;
        self.start_session(&user).await
    }

    /// Starts a session: a fresh random token every login. Returns the
    /// token for the cookie and the session.
    pub async fn start_session(&self, user: &UserRecord) -> AppResult<(String, Session)> {
        let user = user.clone();
        self.store
            .blocking(move |store| start_session(store, &user))
            .await
    }

    /// The first of `tokens` (session cookies, at most a few) that names a
    /// live session, enforcing idle and absolute expiry and the user's
    /// disabled flag, and recording activity.
    pub async fn session(&self, tokens: Vec<String>) -> AppResult<Option<Session>> {
        if tokens.is_empty() {
            return Ok(None);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            for token in tokens {
                if let Some(session) = this.find_session(&token)? {
                    return Ok(Some(session));
                }
            }
            Ok(None)
        })
        .await?
    }

    /// Ends a session and closes its live connections.
    pub async fn end_session(&self, session: &Session) -> AppResult<()> {
        let hash = session.token_hash.clone();
        self.store
            .blocking(move |store| end_session(store, &hash))
            .await?;
        self.hub.end_session(&session.token_hash);
        Ok(())
    }

    /// Creates an API token; the token itself is returned once and never stored.
    pub async fn create_token(
        &self,
        username: &str,
        name: &str,
    ) -> AppResult<(TokenRecord, String)> {
        let (username, name) = (username.to_string(), name.to_string());
        self.store
            .blocking(move |store| create_token(store, &username, &name))
            .await
    }

    pub async fn tokens(&self, username: &str) -> AppResult<Vec<TokenRecord>> {
        let username = username.to_string();
        self.store
            .blocking(move |store| list_tokens(store, &username))
            .await
    }

    /// Revokes one of the actor's tokens (an admin may revoke anyone's).
    pub async fn revoke_token(&self, actor: &Actor, id: u64) -> AppResult<()> {
        let actor = actor.clone();
        self.store
            .blocking(move |store| revoke_token(store, &actor, id))
            .await
    }

    /// The enabled user an API token belongs to.
    pub async fn token_user(&self, token: &str) -> AppResult<Option<UserRecord>> {
        let token = token.to_string();
        Ok(self
            .store
            .blocking(move |store| token_owner(store, &token))
            .await?
            .filter(|u| !u.disabled))
    }

    /// HTTP Basic: the password may be an API token (it starts with
    /// `latch_`), or a password, which is a full login the first time and
    /// then a remembered success for a few minutes (Git sends Basic with
    /// every request; each would otherwise cost an argon2 check).
    pub async fn basic(&self, username: &str, password: &str, ip: IpAddr) -> AppResult<UserRecord> {
        let name = Username::parse(username)
            .map(|u| u.as_str().to_string())
            .unwrap_or_default();
        if password.starts_with("latch_") {
            let token = password.to_string();
            let owner = self
                .store
                .blocking(move |store| token_owner(store, &token))
                .await?;
            if let Some(owner) = owner {
                // A real token: it is this user's and the user is enabled,
                // or it is refused as a token (never tried as a password).
                return Some(owner)
                    .filter(|u| u.username == name && !u.disabled)
                    .ok_or_else(|| {
                        AppError::Unauthenticated("The username or API token is wrong.".into())
                    });
            }
            // No such token: a password may start like one too, so it is
            // checked (and counted) as a password.
        }
        let key = self.throttle.verified_key(&name, password);
        if !name.is_empty() {
            let lookup = name.clone();
            let user = self
                .store
                .blocking(move |store| store.user(&lookup))
                .await?;
            if let Some(user) = user
                && !user.disabled
                && self.throttle.recently_verified(&key, &user.password_hash)
            {
                return Ok(user);
            }
        }
        let user = self.login(username, password, ip).await?;
        self.throttle.remember_verified(key, &user.password_hash);
        Ok(user)
    }

    /// Blocking.
    fn find_session(&self, token: &str) -> AppResult<Option<Session>> {
        if token.len() != 64 {
            return Ok(None);
        }
        let token_hash = sha256(token.as_bytes());
        let found = self.store.read(|txn| {
            let Some(value) = txn.open_table(SESSIONS)?.get(token_hash.as_slice())? else {
                return Ok(None);
            };
            let session: SessionRecord = store::decode(value.value())?;
            let user = store::get_user(&txn.open_table(USERS)?, &session.username)?;
            let unread = crate::inbox::unread(txn, &session.username)?;
            Ok(user.map(|u| (session, u, unread)))
        })?;
        let Some((session, user, unread)) = found else {
            return Ok(None);
        };
        let t = now();
        if user.disabled || t >= self.policy.deadline(session.created_at, session.last_seen) {
            end_session(&self.store, &token_hash)?;
            return Ok(None);
        }
        // Activity is recorded at most once a minute, and more often when the
        // idle limit is short, so activity always keeps a session alive.
        let idle = self.policy.idle.as_secs() as i64;
        let mut last_seen = session.last_seen;
        if t - session.last_seen > (idle / 4).min(60) {
            let mut touched = session.clone();
            touched.last_seen = t;
            let hash = token_hash.clone();
            self.store.write_lazily(|tx| {
                tx.txn
                    .open_table(SESSIONS)?
                    .insert(hash.as_slice(), store::encode(&touched)?.as_slice())?;
                Ok(())
            })?;
            last_seen = t;
            // The session's live connections move their idle deadline on.
            self.hub.session_active(&token_hash, t);
        }
        Ok(Some(Session {
            token_hash,
            csrf_token: session.csrf_token,
            user,
            created_at: session.created_at,
            last_seen,
            unread,
        }))
    }
}

fn already_set_up() -> AppError {
    AppError::Conflict("Latch is already set up; sign in instead.".into())
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

/// Changes to an account, already validated.
#[derive(Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<Password>,
    pub display_name: Option<String>,
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
    /// Unread notifications when the session was read (the bell).
    pub unread: u64,
}

impl Session {
    pub fn actor(&self) -> Actor {
        actor_of(&self.user)
    }
}

/// Checks a username and password, with throttling and one message for
/// unknown users and wrong passwords alike.
impl Accounts {
    pub async fn login(&self, username: &str, password: &str, ip: IpAddr) -> AppResult<UserRecord> {
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
        if let Some(wait) = self.throttle.check(&name, ip) {
            return Err(throttled(wait));
        }
        // Checked again once it is this attempt's turn, and the outcome recorded
        // before the turn passes on: otherwise a burst of attempts all pass the
        // check before any failure counts (200 at once were 200 guesses).
        let turn = password::turn().await;
        if let Some(wait) = self.throttle.check(&name, ip) {
            return Err(throttled(wait));
        }
        let store = self.store.clone();
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
                .unwrap_or(password::decoy_hash());
            let ok = password::verify(hash, &password);
            Ok(user.filter(|u| ok && !u.disabled))
        })
        .await??;
        let outcome = match user {
            Some(user) => {
                self.throttle.succeeded(&name, ip);
                Ok(user)
            }
            None => {
                self.throttle.failed(&name, ip);
                Err(wrong())
            }
        };
        drop(turn);
        outcome
    }
}
