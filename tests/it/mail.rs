//! Mail for notifications, delivered to a real SMTP server (aiosmtpd):
//! the hand-off and an ask to release are mailed, choices and a missing
//! address are honoured, a server that is down or a restart loses
//! nothing, and the settings are checked at the edge (API and plain form).

use std::time::{Duration, Instant};

use latch::Config;
use latch::config::{MailConfig, SmtpUrl, parse_mail_from};
use serde_json::json;

use crate::common::smtp::{QUIET, SmtpSink, python};
use crate::common::{self, Client, TestApp, USER_PASSWORD, expect_error, json_of};

const PUBLIC: &str = "http://latch.test";

/// Mail through `smtp_url`, retried every `retry` (for ever, as far as a
/// test is concerned).
fn with_mail(config: &mut Config, smtp_url: &str, retry: Duration) {
    config.mail = Some(MailConfig {
        smtp: SmtpUrl::parse(smtp_url).expect("smtp url"),
        from: parse_mail_from("Latch <latch@example.com>").expect("from"),
        retry: vec![retry; 1000],
    });
    config.public_url = Some(PUBLIC.into());
}

async fn mail_app(sink: &SmtpSink) -> TestApp {
    let url = sink.url();
    TestApp::spawn_with(|c| with_mail(c, &url, Duration::from_millis(200))).await
}

async fn set_email(c: &Client, address: &str) {
    let me = json_of(
        c.patch_json("/api/me", &json!({ "email": address })).await,
        200,
    )
    .await;
    assert_eq!(me["email"], address);
}

/// Alice holds a new file at `path` and `waiter` waits in line for it.
async fn held_with_waiter(alice: &Client, waiter: &Client, path: &str) -> u64 {
    let id = alice.upload_ok(path, b"x").await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let resp = waiter.post_empty(&format!("/api/files/{id}/queue")).await;
    assert_eq!(resp.status(), 200, "{path}: waiting in line");
    id
}

#[tokio::test]
async fn a_hand_off_mails_the_next_in_line_naming_the_file() {
    let Some(py) = python() else { return };
    let sink = SmtpSink::start(&py).await;
    let app = mail_app(&sink).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    set_email(&bob, "bob@example.com").await;
    let id = held_with_waiter(&alice, &bob, "parts/bracket.mcam").await;
    assert_eq!(alice.cancel(id).await.status(), 200);
    let mails = sink.wait_for("bob@example.com", 1).await;
    let mail = &mails[0];
    assert!(
        mail.contains("Subject: Latch: parts/bracket.mcam is yours to check out"),
        "{mail}"
    );
    assert!(mail.contains("From: Latch <latch@example.com>"), "{mail}");
    assert!(
        mail.contains(&format!("{PUBLIC}/?q=parts%2Fbracket.mcam#file-{id}")),
        "the mail links to the file: {mail}"
    );
    assert!(mail.contains("File: parts/bracket.mcam"), "{mail}");
    // Alice has no address: her cancel mails nobody else.
    tokio::time::sleep(QUIET).await;
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn an_ask_to_release_mails_the_holder() {
    let Some(py) = python() else { return };
    let sink = SmtpSink::start(&py).await;
    let app = mail_app(&sink).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    set_email(&alice, "alice@example.com").await;
    let id = alice.upload_ok("parts/housing.step", b"x").await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let resp = bob
        .post_json(
            &format!("/api/files/{id}/nudge"),
            &json!({"message": "need it for the review"}),
        )
        .await;
    assert!(resp.status().is_success(), "nudge: {}", resp.status());
    let mails = sink.wait_for("alice@example.com", 1).await;
    assert!(
        mails[0].contains("Subject: Latch: bob asks you to release parts/housing.step"),
        "{}",
        mails[0]
    );
}

#[tokio::test]
async fn a_kind_turned_off_or_no_address_means_no_mail() {
    let Some(py) = python() else { return };
    let sink = SmtpSink::start(&py).await;
    let app = mail_app(&sink).await;
    let alice = app.user("alice").await;
    // Bob has an address but wants no mail for reservations.
    let bob = app.user("bob").await;
    let me = json_of(
        bob.patch_json(
            "/api/me",
            &json!({"email": "bob@example.com", "mail": {"reserved": false}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(me["mail"]["reserved"], false);
    assert_eq!(me["mail"]["nudged"], true);
    // Carol gave no address.
    let carol = app.user("carol").await;
    // Dave wants everything: his mail comes last and shows the mailer got
    // past the others.
    let dave = app.user("dave").await;
    set_email(&dave, "dave@example.com").await;
    let for_bob = held_with_waiter(&alice, &bob, "off/bob.bin").await;
    let for_carol = held_with_waiter(&alice, &carol, "off/carol.bin").await;
    let for_dave = held_with_waiter(&alice, &dave, "off/dave.bin").await;
    for id in [for_bob, for_carol, for_dave] {
        assert_eq!(alice.cancel(id).await.status(), 200);
    }
    sink.wait_for("dave@example.com", 1).await;
    tokio::time::sleep(QUIET).await;
    assert!(sink.to("bob@example.com").is_empty(), "bob turned it off");
    assert_eq!(sink.messages().len(), 1, "carol has no address");
    // They were still told in the page.
    for c in [&bob, &carol] {
        let inbox = c.get_json("/api/notifications").await;
        assert_eq!(inbox["notifications"][0]["kind"], "reserved", "{inbox}");
    }
}

#[tokio::test]
async fn a_mail_waits_for_an_smtp_server_that_is_down() {
    let Some(py) = python() else { return };
    let mut sink = SmtpSink::stopped(&py);
    let app = mail_app(&sink).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    set_email(&bob, "bob@example.com").await;
    let id = held_with_waiter(&alice, &bob, "down/x.bin").await;
    // The operation does not wait for the mail.
    assert_eq!(alice.cancel(id).await.status(), 200);
    // Some attempts fail against the closed port first.
    tokio::time::sleep(QUIET).await;
    sink.up().await;
    let mails = sink.wait_for("bob@example.com", 1).await;
    assert!(mails[0].contains("down/x.bin is yours"), "{}", mails[0]);
}

#[tokio::test]
async fn a_queued_mail_is_delivered_after_a_restart() {
    let Some(py) = python() else { return };
    let mut sink = SmtpSink::stopped(&py);
    let url = sink.url();
    // The first failure waits an hour: only the restart sends it.
    let mut app = TestApp::spawn_with(|c| with_mail(c, &url, Duration::from_secs(3600))).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    set_email(&bob, "bob@example.com").await;
    let id = held_with_waiter(&alice, &bob, "restart/x.bin").await;
    assert_eq!(alice.cancel(id).await.status(), 200);
    // The mail is queued in the notification's transaction.
    let inbox = bob.get_json("/api/notifications").await;
    assert_eq!(inbox["notifications"][0]["kind"], "reserved", "{inbox}");
    app.restart_with(|c| with_mail(c, &url, Duration::from_secs(3600)))
        .await;
    assert!(sink.messages().is_empty());
    sink.up().await;
    // Up now, but the row waits an hour: restart again.
    app.restart_with(|c| with_mail(c, &url, Duration::from_secs(3600)))
        .await;
    let mails = sink.wait_for("bob@example.com", 1).await;
    assert!(mails[0].contains("restart/x.bin is yours"), "{}", mails[0]);
    tokio::time::sleep(QUIET).await;
    assert_eq!(sink.messages().len(), 1, "sent once");
}

#[tokio::test]
async fn me_shows_and_changes_the_mail_settings_and_refuses_bad_addresses() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let me = bob.get_json("/api/me").await;
    assert_eq!(me["email"], serde_json::Value::Null);
    assert_eq!(me["mail_enabled"], false);
    assert_eq!(
        me["mail"],
        json!({"reserved": true, "nudged": true, "overridden": true, "watched": false, "expiring": true})
    );
    let long = format!("{}@example.com", "a".repeat(250));
    for (bad, why) in [
        ("", "empty"),
        ("bob", "no @"),
        ("bob@", "no domain"),
        ("bob smith@example.com", "a space"),
        ("bob@example.com\nBcc: eve@example.com", "a line break"),
        ("Bob <bob@example.com>", "a name"),
        (long.as_str(), "too long"),
    ] {
        let said = expect_error(bob.patch_json("/api/me", &json!({"email": bad})).await, 422).await;
        assert!(said.ends_with('.'), "{why}: {said}");
    }
    assert_eq!(
        bob.get_json("/api/me").await["email"],
        serde_json::Value::Null
    );
    set_email(&bob, "bob@example.com").await;
    // Only the kinds named change; the address stays.
    let me = json_of(
        bob.patch_json("/api/me", &json!({"mail": {"watched": true}}))
            .await,
        200,
    )
    .await;
    assert_eq!(me["email"], "bob@example.com");
    assert_eq!(me["mail"]["watched"], true);
    assert_eq!(me["mail"]["reserved"], true);
    let me = json_of(
        bob.patch_json("/api/me", &json!({"email": null})).await,
        200,
    )
    .await;
    assert_eq!(me["email"], serde_json::Value::Null);
    assert_eq!(me["mail"]["watched"], true);
}

#[tokio::test]
async fn the_account_page_sets_mail_without_javascript() {
    let app = TestApp::spawn().await;
    app.create_user("carol", "user").await;
    let http = Client::form_login(&app.base, "carol", USER_PASSWORD).await;
    let page = http.get(app.url("/account")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("E-mail for notifications"), "{page}");
    assert!(page.contains("does not send mail yet"), "{page}");
    let csrf = common::hidden_csrf(&page);
    let post = |fields: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = app.url("/account/mail");
        let page_url = app.url("/account");
        let csrf = csrf.clone();
        async move {
            let mut form = vec![("_csrf", csrf)];
            form.extend(fields);
            let resp = http.post(url).form(&form).send().await.unwrap();
            assert_eq!(resp.status(), 303, "a plain form redirects");
            assert_eq!(common::header(&resp, "location"), "/account");
            http.get(page_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    // Reserved unticked, watched ticked.
    let page = post(vec![
        ("email", "carol@example.com".into()),
        ("nudged", "on".into()),
        ("overridden", "on".into()),
        ("watched", "on".into()),
        ("expiring", "on".into()),
    ])
    .await;
    assert!(page.contains("Mail settings saved"), "{page}");
    assert!(page.contains(r#"value="carol@example.com""#), "{page}");
    let carol = app.login("carol", USER_PASSWORD).await;
    let me = carol.get_json("/api/me").await;
    assert_eq!(me["email"], "carol@example.com");
    assert_eq!(
        me["mail"],
        json!({"reserved": false, "nudged": true, "overridden": true, "watched": true, "expiring": true})
    );
    // A bad address comes back as a sentence on the page; nothing changes.
    let page = post(vec![("email", "carol at example".into())]).await;
    assert!(page.contains("An e-mail address has no spaces"), "{page}");
    assert_eq!(
        carol.get_json("/api/me").await["email"],
        "carol@example.com"
    );
    // An empty address removes it.
    post(vec![("email", String::new())]).await;
    assert_eq!(
        carol.get_json("/api/me").await["email"],
        serde_json::Value::Null
    );
}

/// Not a limit: prints the figure the README quotes.
#[tokio::test]
async fn median_time_from_hand_off_to_mail_in_the_sink() {
    let Some(py) = python() else { return };
    let sink = SmtpSink::start(&py).await;
    let app = mail_app(&sink).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    set_email(&bob, "bob@example.com").await;
    const ROUNDS: usize = 15;
    let mut took = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let id = held_with_waiter(&alice, &bob, &format!("timing/{round}.bin")).await;
        let started = Instant::now();
        assert_eq!(alice.cancel(id).await.status(), 200);
        let deadline = started + Duration::from_secs(30);
        while sink.to("bob@example.com").len() <= round {
            assert!(Instant::now() < deadline, "mail {round} arrives");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        took.push(started.elapsed());
    }
    took.sort();
    println!(
        "mail after a hand-off: median {:.0} ms (min {:.0}, max {:.0}) over {ROUNDS} hand-offs, cancel request to the message in aiosmtpd's Maildir",
        took[ROUNDS / 2].as_secs_f64() * 1000.0,
        took[0].as_secs_f64() * 1000.0,
        took[ROUNDS - 1].as_secs_f64() * 1000.0,
    );
}
