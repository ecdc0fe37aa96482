//! Presence on the page: who is online (in the header) and who has a file's
//! history open (a line on its card). The live update is one fragment for
//! everyone, rendered once per change (`crate::presence`).

use maud::{Markup, html};

use crate::presence::Snapshot;

/// How many names the header spells out; the rest are counted.
const NAMED_ONLINE: usize = 3;
/// How many its title names: every connection gets each update, so it
/// stays small however many are online.
const TITLED_ONLINE: usize = 50;
/// How many viewers a card names; the rest are counted.
const NAMED_VIEWERS: usize = 2;

/// The header's "N online: Alice, Bob" (names in full in the title).
/// `data-viewed` lists every file someone views, so a page that missed
/// updates while disconnected can clear the lines that went stale
/// (`live.js`).
pub fn presence_header(s: &Snapshot, oob: bool) -> Markup {
    let names: Vec<&str> = s.online.iter().map(|o| o.display_name.as_str()).collect();
    let viewed: Vec<String> = s.viewing.keys().map(u64::to_string).collect();
    let shown = names.len().min(NAMED_ONLINE);
    let mut title = names[..names.len().min(TITLED_ONLINE)].join(", ");
    if names.len() > TITLED_ONLINE {
        title.push_str(&format!(" and {} more", names.len() - TITLED_ONLINE));
    }
    html! {
        span #presence .presence data-viewed=(viewed.join(" ")) title=(title)
            hx-swap-oob=[oob.then_some("true")] {
            b { (names.len()) } " online"
            @if !names.is_empty() {
                span.presence-names {
                    ": " (names[..shown].join(", "))
                    @if names.len() > shown { " and " (names.len() - shown) " more" }
                }
            }
        }
    }
}

/// `usernames` as the header names them: everyone viewing is online.
fn display_names(s: &Snapshot, usernames: &[String]) -> Vec<String> {
    usernames
        .iter()
        .map(|u| {
            s.online
                .iter()
                .find(|o| &o.username == u)
                .map_or_else(|| u.clone(), |o| o.display_name.clone())
        })
        .collect()
}

/// "carol is viewing", "carol and dave are viewing", "carol, dave and 3
/// others are viewing".
fn viewing_text(who: &[String]) -> String {
    match who {
        [] => String::new(),
        [one] => format!("{one} is viewing"),
        [a, b] => format!("{a} and {b} are viewing"),
        _ => format!(
            "{} and {} others are viewing",
            who[..NAMED_VIEWERS].join(", "),
            who.len() - NAMED_VIEWERS
        ),
    }
}

/// The line on file `id`'s card. Inside a card it is `hx-preserve`d, so a
/// card re-rendered by an event keeps the line presence put there; the
/// live update (`oob`) replaces it.
pub fn viewing_line(id: u64, who: &[String], oob: bool) -> Markup {
    html! {
        p.viewing id=(format!("viewing-{id}")) data-file=(id) hidden[who.is_empty()]
            hx-preserve=[(!oob).then_some("true")] hx-swap-oob=[oob.then_some("true")] {
            (viewing_text(who))
        }
    }
}

/// The live presence update: the header, and the line of each of `files`.
pub fn presence_fragment(s: &Snapshot, files: &[u64]) -> String {
    html! {
        (presence_header(s, true))
        @for id in files { (viewing_line(*id, &display_names(s, s.viewers(*id)), true)) }
    }
    .into_string()
}
