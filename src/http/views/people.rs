//! The pages about people: sign-in, the one-time set-up, the admin's
//! users page and one's own account with its API tokens.

use maud::{Markup, html};

use super::{Viewer, csrf_field, time_ago};
use crate::domain::Role;
use crate::inbox::NoticeKind;
use crate::store::{TokenRecord, UserRecord};

/// Where a sign-in goes on to, and why it was asked for.
#[derive(Debug, Default, Clone)]
pub struct SignInReturn {
    /// A page on this server to go back to (already checked as local).
    pub next: Option<String>,
    /// The person's session ended (signed out elsewhere, timed out, their
    /// password changed): say so, rather than a bare sign-in form.
    pub ended: bool,
}

pub fn login_page(
    error: Option<&str>,
    username: &str,
    allow_signup: bool,
    back: &SignInReturn,
) -> Markup {
    html! {
        section.auth-card {
            h1 { "Sign in to Latch" }
            @if back.ended && error.is_none() {
                p.notice role="status" {
                    "Your session ended (it timed out, or you were signed out elsewhere): nothing you did after that was made. Sign in again"
                    @if back.next.is_some() { " and you will be taken back to where you were" }
                    "."
                }
            }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/login" {
                @if let Some(next) = &back.next { input type="hidden" name="next" value=(next); }
                label { "Username" input type="text" name="username" value=(username) autocomplete="username" required autofocus; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                button.btn.primary type="submit" { "Sign in" }
            }
            @if allow_signup {
                details {
                    summary { "New here? Create an account" }
                    form.stack method="post" action="/signup" {
                        label { "Username" input type="text" name="username" autocomplete="username" required; }
                        label { "Display name" input type="text" name="display_name"; }
                        label { "Password" input type="password" name="password" autocomplete="new-password" minlength="8" required; }
                        button.btn type="submit" { "Create account" }
                    }
                }
            }
        }
    }
}

pub fn setup_page(token: &str, error: Option<&str>) -> Markup {
    html! {
        section.auth-card {
            h1 { "Welcome to Latch" }
            p { "Create the first admin account. Everyone else can be added from the Users page." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/setup" {
                input type="hidden" name="token" value=(token);
                // Not pre-filled: a name typed after a value there became `adminmaria`.
                label { "Username" input type="text" name="username" autocomplete="username" autofocus required; }
                label { "Display name" input type="text" name="display_name"; }
                label { "Password" input type="password" name="password" autocomplete="new-password" minlength="8" required; }
                button.btn.primary type="submit" { "Create admin" }
            }
        }
    }
}

/// The Add-user form as it was sent, when it was refused: shown again
/// with the sentence, every field but the password kept.
#[derive(Debug, Default)]
pub struct UserDraft {
    pub username: String,
    pub display_name: String,
    pub admin: bool,
    pub error: String,
}

pub fn users_page(users: &[UserRecord], viewer: &Viewer, draft: Option<&UserDraft>) -> Markup {
    let empty = UserDraft::default();
    let d = draft.unwrap_or(&empty);
    html! {
        section {
            h1 { "Users" }
            table.table.users {
                thead { tr { th { "Username" } th { "Name" } th { "Role" } th { "Status" } th { "Change" } } }
                tbody {
                    @for u in users {
                        // data-label: a phone shows each row as a block of labelled lines.
                        tr {
                            td data-label="Username" { code { (u.username) } }
                            td data-label="Name" { (u.display_name) }
                            td data-label="Role" { (u.role.as_str()) }
                            td data-label="Status" { @if u.disabled { span.badge.state.locked { "disabled" } } @else { span.badge.state.available { "active" } } }
                            td data-label="Change" {
                                form.inline method="post" action=(format!("/admin/users/{}", u.username)) {
                                    (csrf_field(viewer))
                                    select name="role" aria-label="Role" {
                                        option value="user" selected[u.role == Role::User] { "user" }
                                        option value="admin" selected[u.role == Role::Admin] { "admin" }
                                    }
                                    select name="disabled" aria-label="Status" {
                                        option value="false" selected[!u.disabled] { "active" }
                                        option value="true" selected[u.disabled] { "disabled" }
                                    }
                                    input type="password" name="password" placeholder="New password (optional)" autocomplete="new-password";
                                    button.btn type="submit" { "Save" }
                                }
                            }
                        }
                    }
                }
            }
            h2 #add-user { "Add a user" }
            @if draft.is_some() { p.error role="alert" { (d.error) } }
            form.stack.narrow method="post" action="/admin/users" {
                (csrf_field(viewer))
                label { "Username" input type="text" name="username" value=(d.username) required pattern="[a-z0-9._\\-]{3,32}"
                    title="3 to 32 characters: lower-case letters, digits, dot, dash or underscore" autofocus[draft.is_some()]; }
                label { "Display name" input type="text" name="display_name" value=(d.display_name); }
                label { "Password" input type="password" name="password" minlength="8" required autocomplete="new-password"; }
                label { "Role" select name="role" { option value="user" selected[!d.admin] { "user" } option value="admin" selected[d.admin] { "admin" } } }
                button.btn.primary type="submit" { "Add user" }
            }
        }
    }
}

/// What each kind of notification is called on the account page.
fn mail_kind_label(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Reserved => "a file is reserved for me",
        NoticeKind::Nudged => "someone asks me to release a file",
        NoticeKind::Overridden => "an admin breaks my check-out",
        NoticeKind::Watched => "something I watch changes",
        NoticeKind::Expiring => "my check-out is about to be released",
    }
}

/// The mail settings: an address and which notifications go to it. A
/// plain form: it works without JavaScript.
fn mail_settings(user: &UserRecord, viewer: &Viewer, mail_enabled: bool) -> Markup {
    html! {
        h2 id="mail" { "Notifications by mail" }
        @if !mail_enabled {
            p.muted { "This server does not send mail yet (an admin sets it up with " code { "--smtp-url" } "); what you choose here applies once it does." }
        }
        form.stack.narrow method="post" action="/account/mail" {
            (csrf_field(viewer))
            label {
                "E-mail for notifications"
                input type="email" name="email" value=(user.email.as_ref().map(|e| e.as_str()).unwrap_or_default())
                    autocomplete="email" maxlength="254" placeholder="name@example.com";
            }
            fieldset.choices {
                legend { "Mail me when" }
                @for kind in NoticeKind::ALL {
                    label {
                        input type="checkbox" name=(kind.as_str()) value="on" checked[user.mail.wants(kind)];
                        " " (mail_kind_label(kind))
                    }
                }
            }
            p.muted { "Leave the address empty to get no mail." }
            button.btn type="submit" { "Save mail settings" }
        }
    }
}

pub fn account_page(
    user: &UserRecord,
    tokens: &[TokenRecord],
    viewer: &Viewer,
    new_token: Option<&str>,
    mail_enabled: bool,
) -> Markup {
    html! {
        section {
            h1 { "Your account" }
            p { "Signed in as " code { (user.username) } " (" (user.role.as_str()) ")." }
            h2 { "API tokens" }
            p.muted { "For scripts, " code { "git lfs" } " and the network drive (" code { "/dav/" } "): send " code { "Authorization: Bearer TOKEN" } ", or use the token as the password with HTTP Basic (the drive takes only that)." }
            @if let Some(t) = new_token {
                p.notice { "Your new token — copy it now, it is shown only once: " br; code.token { (t) } }
            }
            @if !tokens.is_empty() {
                table.table {
                    thead { tr { th { "Name" } th { "Created" } th { span.sr-only { "Actions" } } } }
                    tbody {
                        @for t in tokens {
                            tr {
                                td { (t.name) }
                                td { (time_ago(t.created_at)) }
                                td {
                                    form.inline method="post" action=(format!("/account/tokens/{}/revoke", t.id)) {
                                        (csrf_field(viewer))
                                        button.btn.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.inline method="post" action="/account/tokens" {
                (csrf_field(viewer))
                input type="text" name="name" placeholder="Token name, e.g. laptop git-lfs" required maxlength="64";
                button.btn type="submit" { "Create token" }
            }
            (mail_settings(user, viewer, mail_enabled))
            h2 { "Change password" }
            form.stack.narrow method="post" action="/account/password" {
                (csrf_field(viewer))
                label { "Current password" input type="password" name="current" required autocomplete="current-password"; }
                label { "New password" input type="password" name="password" required minlength="8" autocomplete="new-password"; }
                button.btn type="submit" { "Change password" }
            }
        }
        (super::desktop_notifications_section())
    }
}
