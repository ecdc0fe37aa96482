//! `GET|PATCH /api/me`: who is asking, and where and which of their
//! notifications are mailed ([`crate::mail`]).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};

use crate::accounts::Accounts;
use crate::config::Config;
use crate::domain::EmailAddress;
use crate::http::api::json::RoleJson;
use crate::http::api::wire::{BODY, E422, LINE, Nullable, READ, Rule, Text, WRITE};
use crate::http::api::{Answer, Caller};
use crate::http::views::iso_time;
use crate::inbox::NoticeKind;
use crate::mail::{Choices, MailPatch};
use crate::store::UserRecord;

/// Joined to the `/api` service.
pub struct MeApi;

/// Which notifications come by mail.
#[derive(Object)]
#[oai(rename = "MailChoices")]
struct MailChoicesJson {
    reserved: bool,
    nudged: bool,
    overridden: bool,
    watched: bool,
    expiring: bool,
}

impl From<&Choices> for MailChoicesJson {
    fn from(c: &Choices) -> Self {
        MailChoicesJson {
            reserved: c.reserved,
            nudged: c.nudged,
            overridden: c.overridden,
            watched: c.watched,
            expiring: c.expiring,
        }
    }
}

/// `GET /me`: the caller's account with their mail settings.
#[derive(Object)]
struct MeJson {
    username: String,
    display_name: String,
    role: RoleJson,
    disabled: bool,
    created_at: String,
    /// Where notifications are mailed; `null`: nowhere.
    email: Nullable<String>,
    /// Which notifications are mailed (when `email` is set and the server sends mail).
    mail: MailChoicesJson,
    /// Whether this server sends mail at all (`--smtp-url`).
    mail_enabled: bool,
}

impl MeJson {
    fn of(u: &UserRecord, mail_enabled: bool) -> Self {
        MeJson {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.into(),
            disabled: u.disabled,
            created_at: iso_time(u.created_at),
            email: Nullable(u.email.as_ref().map(|e| e.as_str().to_string())),
            mail: MailChoicesJson::from(&u.mail),
            mail_enabled,
        }
    }
}

/// `PATCH /me`: change where and which notifications are mailed; a field
/// left out stays as it is.
#[derive(Object)]
struct MePatchRequest {
    /// An address like `name@example.com` (at most 254 bytes); `null` removes it.
    email: MaybeUndefined<Text<Rule<LINE, 0, 254>>>,
    mail: Option<MailChoicesPatch>,
}

/// Kinds to turn mail on (`true`) or off; kinds left out stay as they are.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct MailChoicesPatch {
    reserved: Option<bool>,
    nudged: Option<bool>,
    overridden: Option<bool>,
    watched: Option<bool>,
    expiring: Option<bool>,
}

impl MailChoicesPatch {
    fn kinds(&self) -> Vec<(NoticeKind, bool)> {
        [
            (NoticeKind::Reserved, self.reserved),
            (NoticeKind::Nudged, self.nudged),
            (NoticeKind::Overridden, self.overridden),
            (NoticeKind::Watched, self.watched),
            (NoticeKind::Expiring, self.expiring),
        ]
        .into_iter()
        .filter_map(|(kind, on)| on.map(|on| (kind, on)))
        .collect()
    }
}

// One line per operation attribute: tests/it/security.rs reads path and method from it.
#[rustfmt::skip::attributes(oai)]
#[OpenApi]
impl MeApi {
    /// Who am I, and where and which notifications are mailed to me.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(
        &self,
        Data(config): Data<&Arc<Config>>,
        caller: Caller,
    ) -> Answer<Json<MeJson>, READ> {
        Ok(Json(MeJson::of(caller.0.user(), config.mail.is_some())))
    }

    /// Set the address your notifications are mailed to (`null` removes it) and which kinds are mailed.
    #[oai(path = "/me", method = "patch", operation_id = "editMe")]
    async fn edit_me(
        &self,
        Data(accounts): Data<&Accounts>,
        Data(config): Data<&Arc<Config>>,
        caller: Caller,
        body: Json<MePatchRequest>,
    ) -> Answer<Json<MeJson>, { WRITE | BODY | E422 }> {
        let email = match &body.email {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(raw) => Some(Some(EmailAddress::parse(raw.as_str())?)),
        };
        let patch = MailPatch {
            email,
            kinds: body
                .mail
                .as_ref()
                .map(MailChoicesPatch::kinds)
                .unwrap_or_default(),
        };
        let user = accounts.set_mail(&caller.0.user().username, patch).await?;
        Ok(Json(MeJson::of(&user, config.mail.is_some())))
    }
}
