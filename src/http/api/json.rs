//! The JSON shapes of the API: what each operation reads and answers, as
//! poem-openapi types, so the served document and the answers agree.

use poem_openapi::payload::{Binary, Json};
use poem_openapi::registry::Registry;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Enum, Multipart, Object};

use std::collections::BTreeMap;

use poem::Body;

use super::wire::{
    Chars, DISPLAY, LINE, MESSAGE, NAME, Nullable, PATH, REVISION, Rule, Shape, TEXT, Text,
    USERNAME,
};
use crate::domain::{LockComment, NudgeMessage, Role};
use crate::files::Watches;
use crate::http::views::iso_time;
use crate::inbox::{NoticeKind, Notification};
use crate::presence::Snapshot;
use crate::store::{Event, EventKind, FileRecord, UserRecord, now};

/// `available`, `locked`, or `reserved` (held for the first in line after a check-out ended).
#[derive(Enum)]
#[oai(rename_all = "lowercase")]
pub(super) enum FileState {
    Available,
    Locked,
    /// Held for the first in line after a lock ended (`reserved_for`).
    Reserved,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename = "Role", rename_all = "lowercase")]
pub(super) enum RoleJson {
    Admin,
    User,
}

impl From<Role> for RoleJson {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => RoleJson::Admin,
            Role::User => RoleJson::User,
        }
    }
}

/// How a check-in numbers the new version: `minor` (1.2 → 1.3, the
/// default) or `major` (1.2 → 2.0).
#[derive(Enum)]
#[oai(rename_all = "lowercase")]
pub(super) enum Bump {
    Minor,
    Major,
}

#[derive(Enum)]
#[oai(rename = "EventKind", rename_all = "snake_case")]
pub(super) enum EventKindJson {
    Created,
    Locked,
    Unlocked,
    CheckedIn,
    Overridden,
    Deleted,
    Queued,
    Dequeued,
    Reserved,
    Released,
    Expired,
    Moved,
    Edited,
}

impl From<EventKind> for EventKindJson {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Created => EventKindJson::Created,
            EventKind::Locked => EventKindJson::Locked,
            EventKind::Unlocked => EventKindJson::Unlocked,
            EventKind::CheckedIn => EventKindJson::CheckedIn,
            EventKind::Overridden => EventKindJson::Overridden,
            EventKind::Deleted => EventKindJson::Deleted,
            EventKind::Queued => EventKindJson::Queued,
            EventKind::Dequeued => EventKindJson::Dequeued,
            EventKind::Reserved => EventKindJson::Reserved,
            EventKind::Released => EventKindJson::Released,
            EventKind::Expired => EventKindJson::Expired,
            EventKind::Moved => EventKindJson::Moved,
            EventKind::Edited => EventKindJson::Edited,
        }
    }
}

/// A string documented as the enum `$json` but parsed by the domain's own
/// parser, so its refusal is the domain's sentence (422), not a schema error.
macro_rules! enum_shape {
    ($(#[$doc:meta])* $name:ident, $json:ty) => {
        $(#[$doc])*
        pub(super) struct $name;
        impl Shape for $name {
            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                <$json as poem_openapi::types::Type>::schema_ref()
            }
            fn register(registry: &mut Registry) {
                <$json as poem_openapi::types::Type>::register(registry);
            }
        }
    };
}

enum_shape!(
    /// Strings sent as a role: parsed by `Role::parse`.
    RoleShape,
    RoleJson
);
enum_shape!(
    /// Strings sent as a bump: parsed by `Bump::parse`.
    BumpShape,
    Bump
);

#[derive(Object)]
pub(super) struct LockJson {
    pub(super) owner: String,
    pub(super) locked_at: String,
    pub(super) comment: Nullable<String>,
    /// Held longer than the server's `--stale-after`.
    pub(super) stale: bool,
}

/// A file as the API shows it.
#[derive(Object)]
pub(super) struct FileJson {
    #[oai(validator(minimum(value = "1")))]
    pub(super) id: u64,
    pub(super) path: String,
    pub(super) size: u64,
    pub(super) description: String,
    pub(super) revision: String,
    pub(super) state: FileState,
    pub(super) lock: Nullable<LockJson>,
    /// Who waits for the file, first in line first.
    pub(super) queue: Vec<String>,
    /// For whom the file is held after a lock ended, and until when.
    pub(super) reserved_for: Nullable<ReservedJson>,
    /// The commit that wrote the current version.
    pub(super) head: String,
    pub(super) modified_at: String,
    pub(super) modified_by: String,
    pub(super) created_by: String,
    /// Whether the caller watches the file (or a folder it is in); left
    /// out where the answer is about the file, not the caller.
    #[oai(skip_serializing_if_is_none)]
    pub(super) watching: Option<bool>,
}

#[derive(Object)]
pub(super) struct ReservedJson {
    pub(super) username: String,
    /// When the reservation passes to the next in line (or ends).
    pub(super) until: String,
}

impl FileJson {
    /// `f` as the API shows it; a lock older than `stale_after` is stale.
    pub(super) fn of(f: &FileRecord, stale_after: std::time::Duration) -> Self {
        let at = now();
        let reserved = f.reserved_for(at);
        FileJson {
            id: f.id,
            path: f.path.to_string(),
            size: f.size,
            description: f.description.clone(),
            revision: f.revision.to_string(),
            state: match (&f.lock, reserved) {
                (Some(_), _) => FileState::Locked,
                (None, Some(_)) => FileState::Reserved,
                (None, None) => FileState::Available,
            },
            lock: Nullable(f.lock.as_ref().map(|l| LockJson {
                owner: l.owner.clone(),
                locked_at: iso_time(l.locked_at),
                comment: Nullable(l.comment.clone()),
                stale: l.is_stale(stale_after, at),
            })),
            queue: f.queue.clone(),
            reserved_for: Nullable(reserved.map(|r| ReservedJson {
                username: r.username.clone(),
                until: iso_time(r.until),
            })),
            head: f.head.to_string(),
            modified_at: iso_time(f.modified_at),
            modified_by: f.modified_by.clone(),
            created_by: f.created_by.clone(),
            watching: None,
        }
    }
}

#[derive(Object)]
pub(super) struct FileList {
    pub(super) files: Vec<FileJson>,
}

#[derive(Object)]
pub(super) struct VersionJson {
    pub(super) commit: String,
    /// What the commit did: `create`, `checkin` or `move` (the content of
    /// a move is the revision before it, under a new path).
    pub(super) action: String,
    pub(super) revision: String,
    pub(super) author: String,
    pub(super) username: String,
    pub(super) at: String,
    pub(super) message: String,
}

#[derive(Object)]
pub(super) struct History {
    pub(super) versions: Vec<VersionJson>,
}

#[derive(Object)]
pub(super) struct LoginRequest {
    pub(super) username: Text<Chars<0, 1024>>,
    pub(super) password: Text<Chars<0, 1024>>,
}

#[derive(Object)]
pub(super) struct LoginResponse {
    pub(super) username: String,
    pub(super) role: RoleJson,
    pub(super) csrf_token: String,
}

#[derive(Object)]
pub(super) struct TokenRequest {
    pub(super) name: Text<Rule<NAME, 1, 64>>,
}

#[derive(Object)]
pub(super) struct NewToken {
    pub(super) id: u64,
    pub(super) name: String,
    /// Shown once; only its hash is kept.
    pub(super) token: String,
}

#[derive(Object)]
pub(super) struct TokenJson {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) created_at: String,
}

#[derive(Object)]
pub(super) struct TokenList {
    pub(super) tokens: Vec<TokenJson>,
}

#[derive(Object)]
pub(super) struct EventJson {
    pub(super) seq: u64,
    pub(super) kind: EventKindJson,
    pub(super) at: String,
    pub(super) actor: String,
    pub(super) file_id: u64,
    pub(super) path: String,
    pub(super) note: Nullable<String>,
    pub(super) revision: Nullable<String>,
    pub(super) previous_holder: Nullable<String>,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> Self {
        EventJson {
            seq: e.seq,
            kind: e.kind.into(),
            at: iso_time(e.at),
            actor: e.actor.clone(),
            file_id: e.file_id,
            path: e.path.to_string(),
            note: Nullable(e.note.clone()),
            revision: Nullable(e.revision.map(|r| r.to_string())),
            previous_holder: Nullable(e.previous_holder.clone()),
        }
    }
}

#[derive(Object)]
pub(super) struct Activity {
    pub(super) events: Vec<EventJson>,
    pub(super) last_seq: u64,
}

#[derive(Object)]
pub(super) struct UserJson {
    pub(super) username: String,
    pub(super) display_name: String,
    pub(super) role: RoleJson,
    pub(super) disabled: bool,
    pub(super) created_at: String,
}

impl From<&UserRecord> for UserJson {
    fn from(u: &UserRecord) -> Self {
        UserJson {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.into(),
            disabled: u.disabled,
            created_at: iso_time(u.created_at),
        }
    }
}

#[derive(Object)]
pub(super) struct UserList {
    pub(super) users: Vec<UserJson>,
}

#[derive(Object)]
pub(super) struct NewUserRequest {
    pub(super) username: Text<Rule<USERNAME, 3, 32>>,
    /// 8 characters at least, 1024 bytes at most.
    pub(super) password: Text<Chars<8, 1024>>,
    /// `user` when left out.
    #[oai(nullable)]
    pub(super) role: Option<Text<RoleShape>>,
    #[oai(nullable)]
    pub(super) display_name: Option<Text<Rule<DISPLAY, 0, 64>>>,
}

#[derive(Object)]
pub(super) struct UserPatchRequest {
    #[oai(nullable)]
    pub(super) role: Option<Text<RoleShape>>,
    #[oai(nullable)]
    pub(super) disabled: Option<bool>,
    /// 8 characters at least, 1024 bytes at most.
    #[oai(nullable)]
    pub(super) password: Option<Text<Chars<8, 1024>>>,
    #[oai(nullable)]
    pub(super) display_name: Option<Text<Rule<DISPLAY, 0, 64>>>,
}

#[derive(Object)]
pub(super) struct CheckoutRequest {
    /// A note for others on why it is checked out.
    #[oai(nullable)]
    pub(super) comment: Option<Text<Rule<LINE, 0, { LockComment::MAX_CHARS }>>>,
}

/// `POST /files`: the new file and what to record about it.
#[derive(Multipart)]
#[allow(dead_code)] // describes the body; forms::read_upload streams it
pub(super) struct UploadForm {
    /// Where the file goes, `/`-separated, at most 255 bytes in UTF-8; the
    /// uploaded file's name when left out or empty.
    pub(super) path: Option<Text<Rule<PATH, 0, 255>>>,
    pub(super) description: Option<Text<Rule<TEXT, 0, 2000>>>,
    /// `MAJOR.MINOR`, each part 0 to 999999; `1.0` when left out.
    pub(super) revision: Option<Text<Rule<REVISION, 3, 13>>>,
    pub(super) file: Upload,
}

/// `POST /files/{id}/checkin`: the new content and what changed.
#[derive(Multipart)]
#[allow(dead_code)] // describes the body; forms::read_upload streams it
pub(super) struct CheckinForm {
    /// Required; becomes the Git commit message. No line may start with `Latch-`.
    pub(super) message: Text<Rule<MESSAGE, 1, 5000>>,
    /// `minor` when left out.
    pub(super) bump: Option<Text<BumpShape>>,
    /// `true`: keep the file checked out after this version (no hand-off).
    pub(super) keep: Option<bool>,
    pub(super) file: Upload,
}

#[derive(ApiResponse)]
pub(super) enum LoginResult {
    /// Signed in; the session cookie is set.
    #[oai(status = 200)]
    Ok(Json<LoginResponse>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
pub(super) enum CreatedFile {
    #[oai(status = 201)]
    Created(Json<FileJson>),
}

#[derive(ApiResponse)]
pub(super) enum CreatedToken {
    #[oai(status = 201)]
    Created(Json<NewToken>),
}

#[derive(ApiResponse)]
pub(super) enum CreatedUser {
    #[oai(status = 201)]
    Created(Json<UserJson>),
}

#[derive(ApiResponse)]
pub(super) enum NoContent {
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
pub(super) enum Content {
    /// The file's bytes, as an attachment.
    #[oai(status = 200)]
    Ok(
        Binary<Body>,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "X-Content-Type-Options")] String,
        #[oai(header = "Content-Security-Policy")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// `POST /files/{id}/nudge`: what to tell the holder.
#[derive(Object)]
pub(super) struct NudgeRequest {
    /// Why you need the file.
    #[oai(nullable)]
    pub(super) message: Option<Text<Rule<LINE, 0, { NudgeMessage::MAX_CHARS }>>>,
}

/// `POST|DELETE /watches`: a folder, as `parts/` (or `/` for the whole vault).
#[derive(Object)]
pub(super) struct FolderRequest {
    pub(super) folder: Text<Rule<LINE, 0, 256>>,
}

/// What the caller watches: file ids, and folders as `parts/` (`/` is the whole vault).
#[derive(Object)]
pub(super) struct WatchesJson {
    pub(super) files: Vec<u64>,
    pub(super) folders: Vec<String>,
}

impl From<&Watches> for WatchesJson {
    fn from(w: &Watches) -> Self {
        WatchesJson {
            files: w.files.clone(),
            folders: w
                .folders
                .iter()
                .map(|f| match f.as_str() {
                    "" => "/".to_string(),
                    dir => format!("{dir}/"),
                })
                .collect(),
        }
    }
}

#[derive(Enum)]
#[oai(rename = "NotificationKind", rename_all = "snake_case")]
pub(super) enum NoticeKindJson {
    /// A file you waited for is yours to check out now.
    Reserved,
    /// Someone asks you to release a file you hold.
    Nudged,
    /// An admin broke your check-out.
    Overridden,
    /// A change to a file or folder you watch.
    Watched,
    /// Your check-out will be released soon.
    Expiring,
}

#[derive(Object)]
#[oai(rename = "Notification")]
pub(super) struct NotificationJson {
    pub(super) id: u64,
    pub(super) kind: NoticeKindJson,
    pub(super) file_id: u64,
    pub(super) path: String,
    pub(super) actor: String,
    pub(super) at: String,
    pub(super) text: String,
    pub(super) read: bool,
}

impl From<&Notification> for NotificationJson {
    fn from(n: &Notification) -> Self {
        NotificationJson {
            id: n.id,
            kind: match n.kind {
                NoticeKind::Reserved => NoticeKindJson::Reserved,
                NoticeKind::Nudged => NoticeKindJson::Nudged,
                NoticeKind::Overridden => NoticeKindJson::Overridden,
                NoticeKind::Watched => NoticeKindJson::Watched,
                NoticeKind::Expiring => NoticeKindJson::Expiring,
            },
            file_id: n.file_id,
            path: n.path.to_string(),
            actor: n.actor.clone(),
            at: iso_time(n.at),
            text: n.text.clone(),
            read: n.read,
        }
    }
}

/// The caller's newest notifications (at most 200) and how many are unread.
#[derive(Object)]
pub(super) struct NotificationsJson {
    pub(super) notifications: Vec<NotificationJson>,
    pub(super) unread: u64,
}

/// `POST /notifications/read`: `{"ids":[…]}` or `{"all":true}`.
#[derive(Object)]
pub(super) struct MarkReadRequest {
    #[oai(validator(max_items = 1000))]
    pub(super) ids: Option<Vec<u64>>,
    pub(super) all: Option<bool>,
}

#[derive(Object)]
pub(super) struct OnlineJson {
    pub(super) username: String,
    pub(super) display_name: String,
    /// When their first open live connection began.
    pub(super) since: String,
}

#[derive(Object)]
pub(super) struct PresenceJson {
    /// Everyone with a live connection open, by display name.
    pub(super) online: Vec<OnlineJson>,
    /// File id (as a string) → the usernames with its history open.
    pub(super) viewing: BTreeMap<String, Vec<String>>,
}

impl From<&Snapshot> for PresenceJson {
    fn from(s: &Snapshot) -> Self {
        PresenceJson {
            online: s
                .online
                .iter()
                .map(|o| OnlineJson {
                    username: o.username.clone(),
                    display_name: o.display_name.clone(),
                    since: iso_time(o.since),
                })
                .collect(),
            viewing: s
                .viewing
                .iter()
                .map(|(id, who)| (id.to_string(), who.clone()))
                .collect(),
        }
    }
}
