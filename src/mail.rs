//! Mail for notifications: which notifications a person wants by mail,
//! the outbox in redb, and the mailer that drains it over SMTP.
//!
//! Invariants:
//! - a mail is owed when a notification is written for someone with an
//!   address who wants its kind, on a server with mail configured; it is
//!   put in the outbox in the transaction that writes the notification
//!   (`Store::write` hands [`enqueue`] every notification the transaction
//!   wrote, the same list the live hub gets), so it exists exactly when
//!   the notification does, across crashes and restarts;
//! - sending happens only in the mailer task, never in an operation: a
//!   slow or dead SMTP server holds nothing up;
//! - a row goes once its mail is sent, or when its retries run out (or the
//!   server refuses it for good), which is logged: the outbox stays small.
//!   A crash between sending and deleting sends that mail again
//!   (at least once, never lost); a resent mail keeps its Message-ID.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::{MailConfig, SmtpTls};
use crate::domain::{EmailAddress, RepoPath};
use crate::error::{AppError, AppResult};
use crate::inbox::{InboxChange, NoticeKind};
use crate::store::{self, Store, USERS, decode, encode, next_counter};

/// Mail id → [`Outgoing`].
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("mail_outbox");

const NEXT_MAIL: &str = "next_mail";

/// Which kinds of notification a person wants by mail. Stored on their
/// user record; a kind left out of a stored record takes its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choices {
    #[serde(default = "on")]
    pub reserved: bool,
    #[serde(default = "on")]
    pub nudged: bool,
    #[serde(default = "on")]
    pub overridden: bool,
    /// Off by default: a busy folder would fill an inbox.
    #[serde(default)]
    pub watched: bool,
    #[serde(default = "on")]
    pub expiring: bool,
}

fn on() -> bool {
    true
}

impl Default for Choices {
    fn default() -> Self {
        Choices {
            reserved: true,
            nudged: true,
            overridden: true,
            watched: false,
            expiring: true,
        }
    }
}

impl Choices {
    pub fn is_default(&self) -> bool {
        *self == Choices::default()
    }

    pub fn wants(&self, kind: NoticeKind) -> bool {
        match kind {
            NoticeKind::Reserved => self.reserved,
            NoticeKind::Nudged => self.nudged,
            NoticeKind::Overridden => self.overridden,
            NoticeKind::Watched => self.watched,
            NoticeKind::Expiring => self.expiring,
        }
    }

    pub fn set(&mut self, kind: NoticeKind, on: bool) {
        let slot = match kind {
            NoticeKind::Reserved => &mut self.reserved,
            NoticeKind::Nudged => &mut self.nudged,
            NoticeKind::Overridden => &mut self.overridden,
            NoticeKind::Watched => &mut self.watched,
            NoticeKind::Expiring => &mut self.expiring,
        };
        *slot = on;
    }
}

/// A change to someone's mail settings; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct MailPatch {
    /// `Some(None)` removes the address.
    pub email: Option<Option<EmailAddress>>,
    pub kinds: Vec<(NoticeKind, bool)>,
}

/// One mail owed: the notification it tells of, and how sending it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outgoing {
    pub username: String,
    pub to: EmailAddress,
    pub kind: NoticeKind,
    pub file_id: u64,
    pub path: RepoPath,
    pub actor: String,
    pub text: String,
    /// Unix seconds when the notification was written.
    pub queued_at: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Unix milliseconds before which it is not tried (0: at once).
    pub next_at: i64,
}

/// Puts a mail in the outbox for each new notification whose recipient
/// has an address and wants its kind; in the transaction that wrote them.
/// Returns how many were queued.
pub fn enqueue<'a>(
    txn: &WriteTransaction,
    changes: impl Iterator<Item = &'a InboxChange>,
) -> AppResult<usize> {
    let mut queued = 0;
    for change in changes {
        let Some(n) = &change.new else { continue };
        let user = store::get_user(&txn.open_table(USERS)?, &change.username)?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            continue;
        };
        let Some(to) = user.email.clone().filter(|_| user.mail.wants(n.kind)) else {
            continue;
        };
        let id = next_counter(txn, NEXT_MAIL)?;
        let row = Outgoing {
            username: user.username,
            to,
            kind: n.kind,
            file_id: n.file_id,
            path: n.path.clone(),
            actor: n.actor.clone(),
            text: n.text.clone(),
            queued_at: n.at,
            attempts: 0,
            next_at: 0,
        };
        txn.open_table(OUTBOX)?
            .insert(id, encode(&row)?.as_slice())?;
        queued += 1;
    }
    Ok(queued)
}

/// Opens the outbox, so reads never meet a missing table.
pub fn create_tables(txn: &WriteTransaction) -> AppResult<()> {
    txn.open_table(OUTBOX)?;
    Ok(())
}

/// How many mails wait in the outbox.
pub fn waiting(store: &Store) -> AppResult<u64> {
    use redb::ReadableTableMetadata;
    store.read(|txn| Ok(txn.open_table(OUTBOX)?.len()?))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The subject line of a mail about `row`.
pub fn subject(row: &Outgoing) -> String {
    let path = &row.path;
    match row.kind {
        NoticeKind::Reserved => format!("Latch: {path} is yours to check out"),
        NoticeKind::Nudged => format!("Latch: {} asks you to release {path}", row.actor),
        NoticeKind::Overridden => format!("Latch: {} broke your check-out of {path}", row.actor),
        NoticeKind::Watched => format!("Latch: {path} changed"),
        NoticeKind::Expiring => format!("Latch: your check-out of {path} ends soon"),
    }
}

/// The plain-text body: the notification's sentence, the file, a link.
pub fn body(row: &Outgoing, public_url: Option<&str>) -> String {
    let query = serde_urlencoded::to_string([("q", row.path.as_str())]).unwrap_or_default();
    let link = format!("/?{query}#file-{}", row.file_id);
    let (open, account) = match public_url {
        Some(base) => (format!("{base}{link}"), format!("{base}/account")),
        None => (
            format!("{link} on your Latch server"),
            "your account page".to_string(),
        ),
    };
    format!(
        // Short lines: a mail client shows them as they are, and the mail
        // stays 7-bit unless a path or a message needs more.
        "{}\n\nFile: {}\nOpen: {open}\n\n-- \nLatch sends this because your address is on your account.\nChoose which notifications come by mail on\n{account}\n",
        row.text, row.path
    )
}

/// What the mailer needs: the transport, the sender, the retry plan.
struct Mailer {
    store: Store,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    retry: Vec<Duration>,
    public_url: Option<String>,
    /// Shown in logs instead of the URL: never the password.
    server: String,
}

fn transport(config: &MailConfig) -> AppResult<AsyncSmtpTransport<Tokio1Executor>> {
    let smtp = &config.smtp;
    let tls_params = || {
        TlsParameters::new(smtp.host.clone())
            .map_err(|e| AppError::internal("setting up TLS for mail", e))
    };
    let tls = match smtp.tls {
        SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
        SmtpTls::StartTls if smtp.credentials.is_some() => Tls::Required(tls_params()?),
        SmtpTls::StartTls => Tls::Opportunistic(tls_params()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)))
        .hello_name(ClientId::Domain(config.from.email.domain().to_string()));
    if let Some((user, pass)) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    Ok(builder.build())
}

/// Drains the outbox until `stop` completes: at start, whenever `wake` is
/// told a mail was queued, and when the next retry is due.
pub async fn run(
    store: Store,
    config: MailConfig,
    public_url: Option<String>,
    wake: Arc<Notify>,
    stop: impl Future<Output = ()>,
) {
    let transport = match transport(&config) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "mail is off: the SMTP transport could not be set up");
            return;
        }
    };
    let mailer = Mailer {
        store,
        transport,
        from: config.from.clone(),
        retry: config.retry.clone(),
        public_url,
        server: config.smtp.to_string(),
    };
    tracing::info!(server = %mailer.server, "sending mail for notifications");
    if mailer.public_url.is_none() {
        tracing::warn!("mail links are relative: give --public-url so they open Latch");
    }
    tokio::pin!(stop);
    // A start tries every waiting mail at once, whatever its next time:
    // a restart is how a fixed --smtp-url takes effect.
    let mut first = true;
    loop {
        let cutoff = if first { i64::MAX } else { now_ms() };
        first = false;
        let due = mailer.store.blocking(move |s| due(s, cutoff)).await;
        let (rows, next_at) = match due {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "reading the mail outbox failed");
                (Vec::new(), Some(now_ms() + 1000))
            }
        };
        let sent_any = !rows.is_empty();
        for (id, row) in rows {
            let result = tokio::select! {
                _ = &mut stop => return,
                r = mailer.send(id, &row) => r,
            };
            if let Err(e) = mailer.settle(id, row, result).await {
                tracing::error!(error = %e, "updating the mail outbox failed");
            }
        }
        if sent_any {
            continue;
        }
        let sleep = async {
            match next_at {
                Some(at) => {
                    let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = wake.notified() => {}
            _ = sleep => {}
        }
    }
}

/// Rows of the outbox with their ids.
type Rows = Vec<(u64, Outgoing)>;

/// The rows due at `now` (oldest first, a batch at most) and when the
/// next of the others is.
fn due(store: &Store, now: i64) -> AppResult<(Rows, Option<i64>)> {
    const BATCH: usize = 32;
    store.read(|txn| {
        let outbox = txn.open_table(OUTBOX)?;
        let mut rows = Vec::new();
        let mut next = None::<i64>;
        for row in outbox.iter()? {
            let (k, v) = row?;
            let out: Outgoing = decode(v.value())?;
            if out.next_at <= now && rows.len() < BATCH {
                rows.push((k.value(), out));
            } else {
                next = Some(next.map_or(out.next_at, |n| n.min(out.next_at)));
            }
        }
        Ok((rows, next))
    })
}

/// Why a send failed, and whether trying again could help.
struct Failure {
    message: String,
    permanent: bool,
}

impl Mailer {
    async fn send(&self, id: u64, row: &Outgoing) -> Result<(), Failure> {
        let failure = |message: String| Failure {
            message,
            permanent: true,
        };
        let to: Mailbox = row
            .to
            .as_str()
            .parse()
            .map_err(|e| failure(format!("the stored address is not one lettre takes: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject(row))
            .message_id(Some(format!(
                "<latch.{id}.{}@{}>",
                row.queued_at,
                self.from.email.domain()
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(body(row, self.public_url.as_deref()))
            .map_err(|e| failure(format!("the mail could not be built: {e}")))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| Failure {
                message: e.to_string(),
                permanent: e.is_permanent(),
            })
    }

    /// Deletes a sent row; for a failed one, sets its next attempt or
    /// gives it up.
    async fn settle(
        &self,
        id: u64,
        mut row: Outgoing,
        result: Result<(), Failure>,
    ) -> AppResult<()> {
        let update = match result {
            Ok(()) => {
                tracing::info!(user = %row.username, kind = row.kind.as_str(), "mail sent");
                None
            }
            Err(f) => {
                let wait = self.retry.get(row.attempts as usize).copied();
                row.attempts += 1;
                match wait {
                    Some(wait) if !f.permanent => {
                        tracing::warn!(
                            user = %row.username,
                            server = %self.server,
                            attempt = row.attempts,
                            retry_in_secs = wait.as_secs_f64(),
                            error = %f.message,
                            "sending mail failed; will try again"
                        );
                        row.next_at = now_ms().saturating_add(wait.as_millis() as i64);
                        Some(row)
                    }
                    _ => {
                        tracing::error!(
                            user = %row.username,
                            server = %self.server,
                            attempts = row.attempts,
                            subject = %subject(&row),
                            error = %f.message,
                            "gave up sending mail"
                        );
                        None
                    }
                }
            }
        };
        self.store
            .blocking(move |s| {
                s.write(|tx| {
                    let mut outbox = tx.txn.open_table(OUTBOX)?;
                    match &update {
                        Some(row) => outbox.insert(id, encode(row)?.as_slice())?,
                        None => outbox.remove(id)?,
                    };
                    Ok(())
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: NoticeKind) -> Outgoing {
        Outgoing {
            username: "bob".into(),
            to: EmailAddress::from_stored("bob@example.com"),
            kind,
            file_id: 7,
            path: RepoPath::from_stored("parts/bracket v2.mcam"),
            actor: "alice".into(),
            text: "parts/bracket v2.mcam is yours to check out until 14:05 UTC.".into(),
            queued_at: 1_700_000_000,
            attempts: 0,
            next_at: 0,
        }
    }

    #[test]
    fn a_stored_user_record_reads_and_writes_back_byte_for_byte() {
        let old = r#"{"username":"bob","display_name":"Bob","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA","role":"user","disabled":false,"created_at":1700000000}"#;
        let with_mail = r#"{"username":"bob","display_name":"Bob","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA","role":"user","disabled":false,"created_at":1700000000,"email":"bob@example.com","mail":{"reserved":true,"nudged":false,"overridden":true,"watched":true,"expiring":true}}"#;
        for stored in [old, with_mail] {
            let rec: crate::store::UserRecord = decode(stored.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(encode(&rec).unwrap()).unwrap(), stored);
        }
    }

    #[test]
    fn a_mail_names_the_file_and_links_to_it() {
        let r = row(NoticeKind::Reserved);
        assert_eq!(
            subject(&r),
            "Latch: parts/bracket v2.mcam is yours to check out"
        );
        let b = body(&r, Some("https://latch.example.com"));
        assert!(b.starts_with(&r.text), "{b}");
        assert!(
            b.contains("https://latch.example.com/?q=parts%2Fbracket+v2.mcam#file-7"),
            "{b}"
        );
        assert!(body(&r, None).contains("/?q=parts%2Fbracket+v2.mcam#file-7"));
    }

    #[test]
    fn choices_default_to_all_but_watched_and_store_as_nothing() {
        let c = Choices::default();
        for kind in NoticeKind::ALL {
            assert_eq!(c.wants(kind), kind != NoticeKind::Watched, "{kind:?}");
        }
        // A record with only some kinds reads the rest as their defaults.
        let partial: Choices = serde_json::from_str(r#"{"reserved":false}"#).unwrap();
        assert!(!partial.reserved && partial.nudged && !partial.watched);
    }
}
