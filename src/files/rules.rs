//! Who may do what: the account an operation needs, read where the change
//! is made, and who may change a checked-out file.

use super::Actor;
use crate::domain::Role;
use crate::error::{AppError, AppResult};
use crate::store::{self, FileRecord, Tx, USERS};

/// What an operation needs of its actor's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Needs {
    /// An account that exists and is enabled.
    Account,
    /// That, with the admin role.
    Admin,
}

/// Refuses (403) an actor whose account, read inside the write transaction
/// that would make the change, no longer allows it: removed, disabled, or
/// no longer an admin. The request was authenticated when its head
/// arrived; its body may have streamed for minutes since, and a disabled
/// user's check-in must not land. One lookup, in the same transaction, so
/// no change of the account can slip in between.
pub(super) fn require_active(tx: &Tx, actor: &Actor, needs: Needs, what: &str) -> AppResult<()> {
    let user = store::get_user(&tx.txn.open_table(USERS)?, &actor.username)?;
    let name = &actor.username;
    match user {
        None => Err(AppError::Forbidden(format!(
            "There is no account {name} any more, so it cannot {what}; nothing was changed."
        ))),
        Some(u) if u.disabled => Err(AppError::Forbidden(format!(
            "The account {name} was disabled, so it cannot {what}; nothing was changed."
        ))),
        Some(u) if needs == Needs::Admin && u.role != Role::Admin => {
            Err(AppError::Forbidden(format!(
                "Only an admin can {what}, and {name} is no longer an admin; nothing was changed."
            )))
        }
        Some(_) => Ok(()),
    }
}

pub fn require_admin(actor: &Actor, what: &str) -> AppResult<()> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!("Only an admin can {what}.")))
    }
}

pub(super) fn require_holder(rec: &FileRecord, actor: &Actor, what: &str) -> AppResult<()> {
    match &rec.lock {
        None => Err(AppError::Conflict(format!(
            "{} is not checked out; check it out first to {what}.",
            rec.path
        ))),
        Some(lock) if lock.owner != actor.username => Err(AppError::Forbidden(format!(
            "{} is checked out by {}; only they can {what}.",
            rec.path, lock.owner
        ))),
        Some(_) => Ok(()),
    }
}
