//! The account records in redb: users, sessions and API tokens, read and
//! written in one transaction each. Blocking; `Accounts` runs these off
//! the async workers.

use redb::ReadableTable;

use super::{NewUser, Session, UserPatch, already_set_up, password};
use crate::domain::Role;
use crate::error::{AppError, AppResult};
use crate::files::Actor;
use crate::mail::MailPatch;
use crate::secret::{hex, random_bytes, random_hex, sha256};
use crate::store::{
    self, ListView, SESSIONS, SessionRecord, Store, TOKEN_HASHES, TOKENS, TokenRecord, USERS,
    UserRecord, now,
};

/// For `latch user add` with the server stopped: creates a user; 409 when
/// the name is taken. Blocking.
pub fn add_user_offline(store: &Store, new: NewUser) -> AppResult<UserRecord> {
    insert_user(store, new, false)
}

/// Blocking; with `only_if_none`, 409 if any account exists by the time
/// the write happens.
pub(super) fn insert_user(
    store: &Store,
    new: NewUser,
    only_if_none: bool,
) -> AppResult<UserRecord> {
    use redb::ReadableTableMetadata;
    let hash = password::hash(&new.password)?;
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
        email: None,
        mail: Default::default(),
        view: Default::default(),
    };
    store.write(|tx| {
        if only_if_none && tx.txn.open_table(USERS)?.len()? > 0 {
            return Err(already_set_up());
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

/// Blocking; see [`Accounts::update_user`]. Says whether sessions ended.
pub(super) fn update_user(
    store: &Store,
    username: &str,
    patch: UserPatch,
) -> AppResult<(UserRecord, bool)> {
    let hash = patch.password.as_ref().map(password::hash).transpose()?;
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

/// Blocking; see [`Accounts::set_mail`].
pub(super) fn set_mail(store: &Store, username: &str, patch: MailPatch) -> AppResult<UserRecord> {
    store.write(|tx| {
        let mut rec = store::get_user(&tx.txn.open_table(USERS)?, username)?
            .ok_or_else(|| AppError::NotFound(format!("There is no user {username}.")))?;
        if let Some(email) = patch.email {
            rec.email = email;
        }
        for (kind, on) in patch.kinds {
            rec.mail.set(kind, on);
        }
        store::put_user(&tx.txn, &rec)?;
        Ok(rec)
    })
}

/// Blocking; see [`Accounts::set_view`].
pub(super) fn set_view(store: &Store, username: &str, view: ListView) -> AppResult<UserRecord> {
    store.write(|tx| {
        let mut rec = store::get_user(&tx.txn.open_table(USERS)?, username)?
            .ok_or_else(|| AppError::NotFound(format!("There is no user {username}.")))?;
        if rec.view != view {
            rec.view = view;
            store::put_user(&tx.txn, &rec)?;
        }
        Ok(rec)
    })
}

pub(super) fn count_active_admins(tx: &store::Tx) -> AppResult<usize> {
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

pub(super) fn delete_sessions_of(tx: &store::Tx, username: &str) -> AppResult<()> {
    let mut sessions = tx.txn.open_table(SESSIONS)?;
    sessions.retain(|_, v| {
        serde_json::from_slice::<SessionRecord>(v)
            .map(|s| s.username != username)
            .unwrap_or(false)
    })?;
    Ok(())
}

/// Blocking.
pub(super) fn start_session(store: &Store, user: &UserRecord) -> AppResult<(String, Session)> {
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
            // A fresh sign-in's first page reads the session again.
            unread: 0,
        },
    ))
}

/// Blocking.
pub(super) fn end_session(store: &Store, token_hash: &[u8]) -> AppResult<()> {
    store.write(|tx| {
        tx.txn.open_table(SESSIONS)?.remove(token_hash)?;
        Ok(())
    })
}

/// Blocking.
pub(super) fn create_token(
    store: &Store,
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

pub(super) fn list_tokens(store: &Store, username: &str) -> AppResult<Vec<TokenRecord>> {
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

/// Blocking.
pub(super) fn revoke_token(store: &Store, actor: &Actor, id: u64) -> AppResult<()> {
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

/// The user a token belongs to, disabled or not.
pub(super) fn token_owner(store: &Store, token: &str) -> AppResult<Option<UserRecord>> {
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
