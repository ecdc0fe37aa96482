//! A live client for tests: follows `/events` (Server-Sent Events) with a
//! session cookie, keeps the last card state it was sent for every file, and
//! resumes from its last event id after a reconnect — what a browser does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

/// What a card says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub state: String,
    pub locked_by: Option<String>,
    pub revision: String,
}

/// A live client's picture of the files, built only from what it was sent.
#[derive(Debug, Default, Clone)]
pub struct View {
    pub cards: BTreeMap<u64, Card>,
    /// The id of the last event received whole; `None` before the first connect.
    pub last_id: Option<u64>,
    pub events: u64,
    pub resyncs: u64,
    /// The unread count on the viewer's bell, as last sent (`inbox` messages).
    pub bell: Option<u64>,
}

impl View {
    /// Applies one event's HTML the way htmx's out-of-band swaps would.
    pub fn apply(&mut self, kind: &str, data: &str) {
        if kind == "resync" {
            self.resyncs += 1;
            self.cards.clear();
        }
        if let Some(unread) = bell_in(data) {
            self.bell = Some(unread);
        }
        for (id, card) in cards_in(data) {
            match card {
                Some(card) => {
                    self.cards.insert(id, card);
                }
                None => {
                    self.cards.remove(&id);
                }
            }
        }
        self.events += 1;
    }
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!(" {name}=\"");
    let start = tag.find(&pattern)? + pattern.len();
    let end = tag[start..].find('"')? + start;
    Some(&tag[start..end])
}

/// The unread count of the last bell (`<a id="bell" … data-unread="N">`) in a fragment.
pub fn bell_in(html: &str) -> Option<u64> {
    let at = html.rfind("<a id=\"bell\"")?;
    let tag = &html[at..];
    let tag = &tag[..tag.find('>')?];
    attr(tag, "data-unread")?.parse().ok()
}

/// Every `<article id="file-N">` in a fragment: its card, or `None` when the
/// fragment deletes it.
pub fn cards_in(html: &str) -> Vec<(u64, Option<Card>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<article") {
        rest = &rest[at..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        let id = attr(tag, "id")
            .and_then(|v| v.strip_prefix("file-"))
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(id) = id {
            if attr(tag, "hx-swap-oob") == Some("delete") {
                out.push((id, None));
            } else {
                let marker = "title=\"Revision\">rev ";
                let revision = rest
                    .find(marker)
                    .map(|i| &rest[i + marker.len()..])
                    .and_then(|r| r.find('<').map(|j| r[..j].to_string()))
                    .unwrap_or_default();
                out.push((
                    id,
                    Some(Card {
                        state: attr(tag, "data-state").unwrap_or_default().to_string(),
                        locked_by: attr(tag, "data-locked-by").map(str::to_string),
                        revision,
                    }),
                ));
            }
        }
        rest = &rest[end..];
    }
    out
}

/// The cards `GET /api/files` implies.
pub fn expected(files: &[Value]) -> BTreeMap<u64, Card> {
    files
        .iter()
        .map(|f| {
            (
                f["id"].as_u64().unwrap_or_default(),
                Card {
                    state: f["state"].as_str().unwrap_or_default().to_string(),
                    locked_by: f["lock"]["owner"].as_str().map(str::to_string),
                    revision: f["revision"].as_str().unwrap_or_default().to_string(),
                },
            )
        })
        .collect()
}

/// Follows `/events` until the stream ends or fails, applying each whole
/// event to `view`. Connects with `Last-Event-ID` when the view has one.
pub async fn follow(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    view: Arc<Mutex<View>>,
) -> Result<(), String> {
    let last = view.lock().unwrap().last_id;
    let mut req = http
        .get(format!("{base}/events"))
        .header("Cookie", cookie)
        .header("Accept", "text/event-stream");
    if let Some(last) = last {
        req = req.header("Last-Event-ID", last.to_string());
    }
    let resp = req.send().await.map_err(|e| format!("connect: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("/events answered {}", resp.status()));
    }
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let (mut id, mut kind, mut data) = (None::<u64>, String::new(), Vec::<String>::new());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("stream: {e}"))?;
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if line.is_empty() {
                if !data.is_empty() || !kind.is_empty() {
                    let mut v = view.lock().unwrap();
                    v.apply(&kind, &data.join("\n"));
                    if let Some(id) = id {
                        v.last_id = Some(id);
                    }
                }
                id = None;
                kind.clear();
                data.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = value.parse().ok(),
                "event" => kind = value.to_string(),
                "data" => data.push(value.to_string()),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Waits until `view` shows exactly what `files` says, or gives up after
/// `within` and returns the difference.
pub async fn converge(
    view: &Arc<Mutex<View>>,
    files: &[Value],
    within: Duration,
) -> Result<(), String> {
    let want = expected(files);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let have = view.lock().unwrap().cards.clone();
        if have == want {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let mut diff = Vec::new();
            for (id, card) in &want {
                if have.get(id) != Some(card) {
                    diff.push(format!("file {id}: live {:?}, true {card:?}", have.get(id)));
                }
            }
            for id in have.keys().filter(|id| !want.contains_key(id)) {
                diff.push(format!("file {id}: live shows it, but it does not exist"));
            }
            return Err(diff.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
