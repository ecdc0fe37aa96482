//! The OpenAPI document is the API: this walks the live `/api/openapi.json`
//! and, for every documented operation, sends a valid request as the right
//! user and invalid ones (no credentials, wrong types, missing fields,
//! unknown or malformed ids, oversized fields, another content type), and
//! checks that each answer's status is documented for that operation and
//! its JSON body validates against the documented schema.
//!
//! Guards issue 9: undocumented error answers, nullable fields not marked,
//! numbers accepted where strings are declared, 405 without `Allow`. A new
//! operation fails here until it has a valid request in `valid_requests`.

use std::collections::{BTreeSet, HashMap};

use crate::common::{ADMIN_PASSWORD, Client, TestApp, USER_PASSWORD};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

// ------------------------------------------------------------ the validator

/// Checks `v` against the JSON-schema subset the document uses; anything
/// else in a schema is an error, so the subset cannot silently shrink.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    const KNOWN: &[&str] = &[
        "$ref",
        "type",
        "format",
        "title",
        "description",
        "properties",
        "required",
        "nullable",
        "enum",
        "items",
        "minimum",
        "maxLength",
        "minLength",
        "pattern",
        "allOf",
        "additionalProperties",
    ];
    let Some(obj) = schema.as_object() else {
        errs.push(format!("{at}: the schema is not an object"));
        return;
    };
    for key in obj.keys() {
        if !KNOWN.contains(&key.as_str()) {
            errs.push(format!("{at}: the test's validator does not know `{key}`"));
        }
    }
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            errs.push(format!("{at}: unresolved $ref {r}"));
        } else {
            validate(doc, target, v, at, errs);
        }
        return;
    }
    if v.is_null() {
        if obj.get("nullable") != Some(&Value::Bool(true)) {
            errs.push(format!("{at}: null, but the schema is not nullable"));
        }
        return;
    }
    for sub in obj
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        validate(doc, sub, v, at, errs);
    }
    if let Some(choices) = obj.get("enum").and_then(Value::as_array)
        && !choices.contains(v)
    {
        errs.push(format!("{at}: {v} is not one of {choices:?}"));
    }
    let number = |key: &str| obj.get(key).and_then(Value::as_f64);
    match obj.get("type").and_then(Value::as_str) {
        None => {}
        Some("string") => {
            let Some(s) = v.as_str() else {
                errs.push(format!("{at}: {v} is not a string"));
                return;
            };
            let n = s.chars().count() as f64;
            if number("maxLength").is_some_and(|m| n > m) {
                errs.push(format!("{at}: longer than maxLength"));
            }
            if number("minLength").is_some_and(|m| n < m) {
                errs.push(format!("{at}: shorter than minLength"));
            }
        }
        Some("integer") | Some("number") => {
            let Some(n) = v.as_f64() else {
                errs.push(format!("{at}: {v} is not a number"));
                return;
            };
            if obj.get("type") == Some(&json!("integer")) && !(v.is_u64() || v.is_i64()) {
                errs.push(format!("{at}: {v} is not an integer"));
            }
            if number("minimum").is_some_and(|m| n < m) {
                errs.push(format!("{at}: {v} is below the minimum"));
            }
        }
        Some("boolean") if !v.is_boolean() => errs.push(format!("{at}: {v} is not a boolean")),
        Some("boolean") => {}
        Some("array") => {
            let Some(items) = v.as_array() else {
                errs.push(format!("{at}: {v} is not an array"));
                return;
            };
            let item_schema = obj.get("items").cloned().unwrap_or(json!({}));
            for (i, item) in items.iter().enumerate() {
                validate(doc, &item_schema, item, &format!("{at}[{i}]"), errs);
            }
        }
        Some("object") => {
            let Some(fields) = v.as_object() else {
                errs.push(format!("{at}: {v} is not an object"));
                return;
            };
            for name in obj
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    errs.push(format!("{at}: the required field `{name}` is missing"));
                }
            }
            let props = obj.get("properties").and_then(Value::as_object);
            // A map (file id → names): any key, each value of this schema.
            let map = obj.get("additionalProperties").filter(|a| a.is_object());
            for (name, value) in fields {
                match props.and_then(|p| p.get(name)).or(map) {
                    Some(s) => validate(doc, s, value, &format!("{at}.{name}"), errs),
                    None => errs.push(format!("{at}: `{name}` is not documented")),
                }
            }
        }
        Some(other) => errs.push(format!("{at}: unknown type {other}")),
    }
}

#[test]
fn the_validator_knows_null_types_lengths_and_refs() {
    let doc = json!({"components": {"schemas": {
        "L": {"type": "object", "required": ["o"], "properties": {"o": {"type": "string", "maxLength": 2}}}
    }}});
    let field = json!({"nullable": true, "allOf": [{"$ref": "#/components/schemas/L"}, {"nullable": true}]});
    let check = |schema: &Value, v: Value| {
        let mut errs = Vec::new();
        validate(&doc, schema, &v, "$", &mut errs);
        errs
    };
    assert!(check(&field, Value::Null).is_empty());
    assert!(check(&field, json!({"o": "ab"})).is_empty());
    assert!(!check(&field, json!({"o": "abc"})).is_empty(), "maxLength");
    assert!(!check(&field, json!({})).is_empty(), "required");
    assert!(!check(&field, json!({"o": 1})).is_empty(), "type");
    assert!(
        !check(&json!({"type": "string"}), Value::Null).is_empty(),
        "null"
    );
    assert!(!check(&json!({"type": "integer", "minimum": 1}), json!(0)).is_empty());
    assert!(!check(&json!({"enum": ["a"]}), json!("b")).is_empty());
    let map = json!({"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}});
    assert!(check(&map, json!({"7": ["carol"]})).is_empty());
    assert!(!check(&map, json!({"7": [1]})).is_empty(), "map values");
    assert!(
        !check(&json!({"oneOf": []}), json!("b")).is_empty(),
        "unknown keyword"
    );
}

// ------------------------------------------------------------ the requests

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Nobody,
    Admin,
    Alice,
    /// Alice's API token as Bearer.
    AliceToken,
    /// Admin with HTTP Basic and a password.
    AdminBasic,
}

#[derive(Clone, Debug)]
enum Body {
    None,
    Json(Value),
    /// Text fields, and the `file` part's name and bytes.
    Multipart(Vec<(&'static str, String)>, Option<(String, Vec<u8>)>),
    Raw(&'static str, Vec<u8>),
}

struct Ctx {
    app: TestApp,
    admin: Client,
    alice: Client,
    alice_token: String,
    spec: Value,
    /// Which statuses each operation was seen to answer.
    seen: HashMap<String, BTreeSet<u16>>,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Ctx {
    async fn send(&self, who: Who, method: &str, path: &str, body: &Body) -> Answer {
        let (http, csrf) = match who {
            Who::Admin => (self.admin.http.clone(), self.admin.csrf.clone()),
            Who::Alice => (self.alice.http.clone(), self.alice.csrf.clone()),
            _ => (reqwest::Client::new(), None),
        };
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut rb = http.request(method.clone(), self.app.url(&format!("/api{path}")));
        if method != reqwest::Method::GET
            && let Some(token) = csrf
        {
            rb = rb.header("X-CSRF-Token", token);
        }
        rb = match who {
            Who::AliceToken => rb.bearer_auth(&self.alice_token),
            Who::AdminBasic => rb.basic_auth("admin", Some(ADMIN_PASSWORD)),
            _ => rb,
        };
        rb = match body.clone() {
            Body::None => rb,
            Body::Json(v) => rb.json(&v),
            Body::Raw(ct, bytes) => rb.header("content-type", ct).body(bytes),
            Body::Multipart(fields, file) => {
                let mut form = Form::new();
                for (name, value) in fields {
                    form = form.text(name, value);
                }
                if let Some((name, bytes)) = file {
                    form = form.part("file", Part::bytes(bytes).file_name(name));
                }
                rb.multipart(form)
            }
        };
        let resp = rb.send().await.expect("request");
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body").to_vec(),
        }
    }

    /// Sends and checks the answer against the document; returns it.
    async fn call(&mut self, op_id: &str, who: Who, path: &str, body: Body, why: &str) -> Answer {
        let (method, _, op) = operation(&self.spec, op_id);
        let answer = self.send(who, &method, path, &body).await;
        let context = format!(
            "{op_id} ({why}): {} {path} as {who:?} answered {} {}",
            method.to_uppercase(),
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        assert!(answer.status < 500, "never a 5xx: {context}");
        let Some(documented) = op["responses"].get(answer.status.to_string()) else {
            let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            panic!("undocumented status; the document lists {statuses:?}: {context}");
        };
        self.seen
            .entry(op_id.to_string())
            .or_default()
            .insert(answer.status);
        match documented["content"].as_object() {
            None => assert!(answer.body.is_empty(), "no content documented: {context}"),
            Some(content) => {
                let ct = answer.headers[reqwest::header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .to_string();
                let (media, schema) = content.iter().next().expect("a media type");
                if media.starts_with("application/json") {
                    assert!(ct.starts_with("application/json"), "{context}");
                    let value: Value = serde_json::from_slice(&answer.body)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {context}"));
                    let mut errs = Vec::new();
                    validate(&self.spec, &schema["schema"], &value, "$", &mut errs);
                    assert!(errs.is_empty(), "{errs:#?}\n{context}");
                    if answer.status >= 400 {
                        let msg = value["error"].as_str().unwrap_or_default();
                        assert!(msg.trim().len() > 5, "a sentence: {context}");
                    }
                }
            }
        }
        for header in documented["headers"].as_object().into_iter().flatten() {
            if header.1["required"] == json!(true) {
                assert!(
                    answer.headers.contains_key(header.0.as_str()),
                    "header {} documented as required: {context}",
                    header.0
                );
            }
        }
        answer
    }
}

/// `(method, path template, operation)` for an operationId.
fn operation(spec: &Value, op_id: &str) -> (String, String, Value) {
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["operationId"] == json!(op_id) {
                return (method.clone(), path.clone(), op.clone());
            }
        }
    }
    panic!("no operation {op_id} in the document");
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).unwrap()
}

/// The request body schema of an operation, resolved, and its media type.
fn request_schema(spec: &Value, op: &Value) -> Option<(String, Value)> {
    let (media, content) = op["requestBody"]["content"].as_object()?.iter().next()?;
    let mut schema = content["schema"].clone();
    if let Some(r) = schema["$ref"].as_str() {
        schema =
            spec["components"]["schemas"][r.trim_start_matches("#/components/schemas/")].clone();
    }
    Some((media.clone(), schema))
}

fn upload(path: &str, bytes: &[u8]) -> Body {
    Body::Multipart(
        vec![
            ("path", path.to_string()),
            ("description", "a part".to_string()),
        ],
        Some(("x.bin".to_string(), bytes.to_vec())),
    )
}

fn checkin(bytes: &[u8]) -> Body {
    Body::Multipart(
        vec![
            ("message", "Changed".to_string()),
            ("bump", "minor".to_string()),
        ],
        Some(("x.bin".to_string(), bytes.to_vec())),
    )
}

/// A valid request for every operation, as the right user, run in order
/// (later ones rely on earlier ones). Returns the statuses seen, by id.
async fn valid_requests(cx: &mut Ctx) -> (u64, BTreeSet<String>) {
    let mut done = BTreeSet::new();
    let mut ok = async |cx: &mut Ctx, op: &str, who, path: &str, body, want: u16| {
        let answer = cx.call(op, who, path, body, "valid").await;
        assert_eq!(
            answer.status,
            want,
            "{op}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        done.insert(op.to_string());
        answer
    };
    let login = json!({"username": "alice", "password": USER_PASSWORD});
    ok(cx, "login", Who::Nobody, "/login", Body::Json(login), 200).await;
    ok(cx, "me", Who::AliceToken, "/me", Body::None, 200).await;
    let mail = json!({"email": "alice@example.com", "mail": {"watched": true}});
    ok(cx, "editMe", Who::AliceToken, "/me", Body::Json(mail), 200).await;
    ok(cx, "listTokens", Who::Alice, "/tokens", Body::None, 200).await;
    let made = ok(
        cx,
        "createToken",
        Who::Alice,
        "/tokens",
        Body::Json(json!({"name": "ci"})),
        201,
    )
    .await;
    let token_id = json_of(&made)["id"].as_u64().unwrap();
    ok(
        cx,
        "revokeToken",
        Who::Alice,
        &format!("/tokens/{token_id}"),
        Body::None,
        204,
    )
    .await;
    let keep = ok(
        cx,
        "uploadFile",
        Who::Alice,
        "/files",
        upload("keep/a.bin", b"keep"),
        201,
    )
    .await;
    let keep = json_of(&keep)["id"].as_u64().unwrap();
    let made = ok(
        cx,
        "uploadFile",
        Who::AliceToken,
        "/files",
        upload("work/b.bin", b"v1"),
        201,
    )
    .await;
    let id = json_of(&made)["id"].as_u64().unwrap();
    ok(cx, "listFiles", Who::Alice, "/files", Body::None, 200).await;
    ok(
        cx,
        "getFile",
        Who::AdminBasic,
        &format!("/files/{id}"),
        Body::None,
        200,
    )
    .await;
    // No body at all, as scripts send it.
    ok(
        cx,
        "checkOut",
        Who::Alice,
        &format!("/files/{id}/checkout"),
        Body::None,
        200,
    )
    .await;
    ok(
        cx,
        "checkIn",
        Who::Alice,
        &format!("/files/{id}/checkin"),
        checkin(b"v2"),
        200,
    )
    .await;
    let comment = Body::Json(json!({"comment": "editing"}));
    let held = ok(
        cx,
        "checkOut",
        Who::Alice,
        &format!("/files/{id}/checkout"),
        comment,
        200,
    )
    .await;
    assert_eq!(json_of(&held)["lock"]["comment"], "editing");
    // A held file's lock is an object and an available one's is null:
    // both validated above against the same nullable schema.
    ok(
        cx,
        "cancelCheckOut",
        Who::Alice,
        &format!("/files/{id}/cancel"),
        Body::None,
        200,
    )
    .await;
    let null_comment = Body::Json(json!({"comment": null}));
    ok(
        cx,
        "checkOut",
        Who::AliceToken,
        &format!("/files/{id}/checkout"),
        null_comment,
        200,
    )
    .await;
    // The admin waits in line, leaves, and waits again; the override then
    // hands the file to them (reserved), and they decline it.
    let path = format!("/files/{id}/queue");
    ok(cx, "joinQueue", Who::Admin, &path, Body::None, 200).await;
    ok(cx, "leaveQueue", Who::Admin, &path, Body::None, 200).await;
    let waiting = ok(cx, "joinQueue", Who::Admin, &path, Body::None, 200).await;
    assert_eq!(json_of(&waiting)["queue"], json!(["admin"]));
    let reserved = ok(
        cx,
        "overrideCheckOut",
        Who::Admin,
        &format!("/files/{id}/override"),
        Body::None,
        200,
    )
    .await;
    assert_eq!(json_of(&reserved)["state"], "reserved");
    assert_eq!(json_of(&reserved)["reserved_for"]["username"], "admin");
    let declined = ok(
        cx,
        "declineReservation",
        Who::Admin,
        &format!("/files/{id}/decline"),
        Body::None,
        200,
    )
    .await;
    assert_eq!(json_of(&declined)["state"], "available");
    // The admin watches the file and the whole vault, asks Alice to
    // release it once she holds it, reads what that told them, and stops.
    let watch = format!("/files/{id}/watch");
    let watched = ok(cx, "watchFile", Who::Admin, &watch, Body::None, 200).await;
    assert_eq!(json_of(&watched)["watching"], true);
    let folder = Body::Json(json!({"folder": "/"}));
    ok(cx, "watchFolder", Who::Admin, "/watches", folder, 200).await;
    let listed = ok(cx, "listWatches", Who::Admin, "/watches", Body::None, 200).await;
    assert_eq!(json_of(&listed), json!({"files": [id], "folders": ["/"]}));
    ok(
        cx,
        "checkOut",
        Who::Alice,
        &format!("/files/{id}/checkout"),
        Body::None,
        200,
    )
    .await;
    let ask = Body::Json(json!({"message": "need it for the fixture"}));
    ok(
        cx,
        "askToRelease",
        Who::Admin,
        &format!("/files/{id}/nudge"),
        ask,
        204,
    )
    .await;
    ok(
        cx,
        "askToRelease",
        Who::Admin,
        &format!("/files/{id}/nudge"),
        Body::None,
        429,
    )
    .await;
    let inbox = ok(
        cx,
        "listNotifications",
        Who::Admin,
        "/notifications?unread=true",
        Body::None,
        200,
    )
    .await;
    assert_eq!(json_of(&inbox)["notifications"][0]["kind"], "watched");
    let all = Body::Json(json!({"all": true}));
    ok(
        cx,
        "markNotificationsRead",
        Who::Admin,
        "/notifications/read",
        all,
        204,
    )
    .await;
    ok(cx, "unwatchFile", Who::Admin, &watch, Body::None, 200).await;
    let folder = Body::Json(json!({"folder": "/"}));
    ok(cx, "unwatchFolder", Who::Admin, "/watches", folder, 200).await;
    ok(
        cx,
        "cancelCheckOut",
        Who::Alice,
        &format!("/files/{id}/cancel"),
        Body::None,
        200,
    )
    .await;
    let history = ok(
        cx,
        "fileHistory",
        Who::Alice,
        &format!("/files/{id}/history"),
        Body::None,
        200,
    )
    .await;
    let first = json_of(&history)["versions"][1]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        cx,
        "fileContent",
        Who::Alice,
        &format!("/files/{id}/content"),
        Body::None,
        200,
    )
    .await;
    ok(
        cx,
        "fileContent",
        Who::Alice,
        &format!("/files/{id}/content?rev={first}"),
        Body::None,
        200,
    )
    .await;
    let head = json_of(&history)["versions"][0]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    let diff = format!("/files/{id}/diff?from={first}&to={head}");
    ok(cx, "fileDiff", Who::AliceToken, &diff, Body::None, 200).await;
    let preview = format!("/files/{id}/preview?rev={first}");
    ok(cx, "preview", Who::AdminBasic, &preview, Body::None, 200).await;
    let zip = "/folders/zip?path=work";
    ok(cx, "folderZip", Who::Alice, zip, Body::None, 200).await;
    // Several files at once, a move and a description.
    let bulk = Body::Multipart(
        vec![("folder", "bulk".to_string())],
        Some(("x.bin".to_string(), b"bulk".to_vec())),
    );
    let added = ok(cx, "uploadFiles", Who::Alice, "/files/bulk", bulk, 201).await;
    let set_id = json_of(&added)["files"][0]["id"].as_u64().unwrap();
    let ids = Body::Json(json!({"ids": [set_id], "comment": "set"}));
    ok(cx, "checkOutSet", Who::Alice, "/checkout", ids, 200).await;
    let described = Body::Json(json!({"description": "a set"}));
    let one = format!("/files/{set_id}");
    ok(cx, "editFile", Who::Alice, &one, described, 200).await;
    let moved = Body::Json(json!({"path": "bulk/y.bin"}));
    let move_path = format!("/files/{set_id}/move");
    ok(cx, "moveFile", Who::Alice, &move_path, moved, 200).await;
    // Named by its bare name: the one file of that name Alice holds.
    let set = Body::Multipart(
        vec![("message", "Set".to_string())],
        Some(("y.bin".to_string(), b"bulk v2".to_vec())),
    );
    ok(cx, "checkInSet", Who::Alice, "/checkin", set, 200).await;
    let ids = Body::Json(json!({"ids": [set_id]}));
    ok(cx, "checkOutSet", Who::Alice, "/checkout", ids, 200).await;
    let ids = Body::Json(json!({"ids": [set_id]}));
    ok(cx, "cancelSet", Who::Alice, "/cancel", ids, 200).await;
    ok(cx, "activity", Who::Alice, "/activity", Body::None, 200).await;
    ok(
        cx,
        "activity",
        Who::Alice,
        "/activity?since=2",
        Body::None,
        200,
    )
    .await;
    ok(cx, "presence", Who::Alice, "/presence", Body::None, 200).await;
    ok(cx, "listUsers", Who::Admin, "/users", Body::None, 200).await;
    let bob = json!({"username": "bob", "password": USER_PASSWORD, "role": "user", "display_name": "Bob"});
    ok(cx, "addUser", Who::Admin, "/users", Body::Json(bob), 201).await;
    let carol = json!({"username": "carol", "password": USER_PASSWORD, "role": null});
    ok(
        cx,
        "addUser",
        Who::AdminBasic,
        "/users",
        Body::Json(carol),
        201,
    )
    .await;
    let patch = json!({"display_name": "Robert", "role": "admin", "disabled": false});
    ok(
        cx,
        "editUser",
        Who::Admin,
        "/users/bob",
        Body::Json(patch),
        200,
    )
    .await;
    ok(
        cx,
        "deleteFile",
        Who::Admin,
        &format!("/files/{id}"),
        Body::None,
        204,
    )
    .await;
    let dir = cx.app.data_dir.parent().unwrap().join("backup");
    let backup = Body::Json(json!({"dir": dir.display().to_string()}));
    ok(cx, "backup", Who::Admin, "/admin/backup", backup, 200).await;
    // Last: it ends the session the other calls used.
    ok(cx, "logout", Who::Alice, "/logout", Body::None, 204).await;
    (keep, done)
}

/// Invalid requests derived from the document for one operation.
async fn invalid_requests(cx: &mut Ctx, op_id: &str, keep: u64) {
    let (_, template, op) = operation(&cx.spec, op_id);
    let path = template
        .replace("{id}", &keep.to_string())
        .replace("{username}", "bob");
    let secured = op.get("security").is_some();
    let who = if secured {
        Who::AdminBasic
    } else {
        Who::Nobody
    };
    let body = request_schema(&cx.spec, &op);
    let valid_body = match (op_id, &body) {
        ("login", _) => Body::Json(json!({"username": "admin", "password": ADMIN_PASSWORD})),
        (_, Some((media, _))) if media.starts_with("multipart") => upload("new/c.bin", b"c"),
        (_, Some(_)) => Body::Json(json!({})),
        _ => Body::None,
    };

    if secured {
        let a = cx
            .call(
                op_id,
                Who::Nobody,
                &path,
                valid_body.clone(),
                "no credentials",
            )
            .await;
        assert_eq!(a.status, 401, "{op_id} without credentials");
    }
    if template.contains("{id}") {
        for (bad, why, want) in [
            ("999999", "unknown id", 404),
            ("abc", "an id that is not a number", 400),
            ("0", "id 0", 400),
            ("-1", "a negative id", 400),
        ] {
            let p = template.replace("{id}", bad);
            let a = cx.call(op_id, who, &p, valid_body.clone(), why).await;
            // A body check may come first on a write; either way a 4xx.
            assert!(
                a.status == want || a.status == 400 || a.status == 422,
                "{op_id}: {why}: {}",
                a.status
            );
        }
    }
    if template.contains("{username}") {
        let p = template.replace("{username}", "nobody-here");
        let a = cx
            .call(op_id, who, &p, Body::Json(json!({})), "unknown user")
            .await;
        assert_eq!(a.status, 404);
    }
    let Some((media, schema)) = body else {
        return;
    };
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if media.starts_with("application/json") {
        let base = match &valid_body {
            Body::Json(v) => v.clone(),
            _ => json!({}),
        };
        // Every declared string, sent as a number and as a boolean.
        for (name, prop) in &props {
            if prop["type"] == json!("string") || prop.get("allOf").is_some() {
                for wrong in [json!(12), json!(true), json!([]), json!({})] {
                    let mut b = base.clone();
                    b[name] = wrong.clone();
                    let why = format!("`{name}` as {wrong}");
                    let a = cx.call(op_id, who, &path, Body::Json(b), &why).await;
                    assert_eq!(a.status, 400, "{op_id}: {why}");
                }
            }
            if prop["type"] == json!("boolean") {
                let mut b = base.clone();
                b[name] = json!("true");
                let a = cx
                    .call(op_id, who, &path, Body::Json(b), "a string for a boolean")
                    .await;
                assert_eq!(a.status, 400);
            }
            if let Some(max) = prop["maxLength"].as_u64() {
                let mut b = base.clone();
                b[name] = json!("x".repeat(max as usize + 1));
                let why = format!("`{name}` over maxLength");
                let a = cx.call(op_id, who, &path, Body::Json(b), &why).await;
                assert!(a.status >= 400, "{op_id}: {why}");
            }
        }
        if schema["required"].as_array().is_some_and(|r| !r.is_empty()) {
            let a = cx
                .call(op_id, who, &path, Body::Json(json!({})), "missing fields")
                .await;
            assert_eq!(a.status, 400, "{op_id}: missing fields");
        }
        for (raw, why) in [
            (&b"{\"comment\": "[..], "malformed JSON"),
            (b"[1, 2]", "an array"),
        ] {
            let a = cx
                .call(
                    op_id,
                    who,
                    &path,
                    Body::Raw("application/json", raw.to_vec()),
                    why,
                )
                .await;
            assert_eq!(a.status, 400, "{op_id}: {why}");
        }
        let text = Body::Raw("text/plain", b"{}".to_vec());
        let a = cx.call(op_id, who, &path, text, "text/plain").await;
        assert_eq!(a.status, 415, "{op_id}: another content type");
    } else {
        let why = "a JSON body where multipart is declared";
        let a = cx.call(op_id, who, &path, Body::Json(json!({})), why).await;
        assert_eq!(a.status, 415, "{op_id}: {why}");
        let no_file = Body::Multipart(vec![("path", "n/f.bin".into())], None);
        let a = cx.call(op_id, who, &path, no_file, "no file part").await;
        assert!(a.status >= 400);
        for (name, prop) in &props {
            if let Some(max) = prop["maxLength"].as_u64() {
                let mut fields = vec![("message", "m".to_string()), ("path", "o/v.bin".into())];
                fields.retain(|(n, _)| *n != name.as_str());
                let field: &'static str = match name.as_str() {
                    "path" => "path",
                    "description" => "description",
                    "message" => "message",
                    "revision" => "revision",
                    "folder" => "folder",
                    other => panic!("add the multipart field {other} here"),
                };
                fields.push((field, "é".repeat(max as usize + 1)));
                let body = Body::Multipart(fields, Some(("o.bin".into(), b"o".to_vec())));
                let why = format!("`{name}` over maxLength");
                let a = cx.call(op_id, who, &path, body, &why).await;
                assert!(a.status >= 400, "{op_id}: {why}");
            }
        }
    }
    // Any operation, with or without a body of its own, may be sent one
    // over the edge's limit: a documented 413, before the body is read.
    if !matches!(valid_body, Body::Multipart(..)) {
        let big = Body::Raw("application/json", vec![b' '; 100 * 1024]);
        let a = cx.call(op_id, who, &path, big, "a 100 KiB body").await;
        assert_eq!(a.status, 413, "{op_id}: a 100 KiB body");
    }
}

#[tokio::test]
async fn every_documented_operation_answers_only_what_the_document_says() {
    let app = TestApp::spawn().await;
    let spec: Value = app.anonymous().get_json("/api/openapi.json").await;
    app.create_user("alice", "user").await;
    let admin = app.admin().await;
    let alice = app.login("alice", USER_PASSWORD).await;
    let made = alice.post_json("/api/tokens", &json!({"name": "t"})).await;
    let alice_token = made.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut cx = Ctx {
        app,
        admin,
        alice,
        alice_token,
        spec: spec.clone(),
        seen: HashMap::new(),
    };

    // The document's own shape: operationIds, security, refusals, schemas.
    let mut documented = BTreeSet::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(documented.insert(id.to_string()), "operationId {id} twice");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{id}: a success"
            );
            if id != "login" {
                assert!(
                    op["security"].as_array().is_some_and(|s| s.len() == 3),
                    "{id}: security"
                );
                assert!(responses.contains_key("401"), "{id}: 401 documented");
            }
            if path.contains('{') {
                assert!(
                    responses.contains_key("400"),
                    "{id}: 400 for a malformed parameter"
                );
            }
            for (status, r) in responses {
                if !status.starts_with('2') {
                    let schema = &r["content"]["application/json; charset=utf-8"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{id} {status}"
                    );
                }
            }
        }
    }
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");

    let (keep, covered) = valid_requests(&mut cx).await;
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "operations without a valid request here: {missing:?}"
    );
    // Fresh sessions: the valid run logged Alice out.
    cx.alice = cx.app.login("alice", USER_PASSWORD).await;
    for id in &documented {
        invalid_requests(&mut cx, id, keep).await;
    }

    // Writes with a session need the CSRF header; it is documented so.
    let mut no_csrf = cx.alice.clone();
    no_csrf.csrf = None;
    let resp = no_csrf
        .post_empty(&format!("/api/files/{keep}/checkout"))
        .await;
    assert_eq!(resp.status(), 403);
    assert!(
        spec["paths"]["/files/{id}/checkout"]["post"]["security"]
            .as_array()
            .unwrap()
            .contains(&json!({"session": [], "csrf": []}))
    );
    eprintln!("statuses seen: {:?}", cx.seen);
}

#[tokio::test]
async fn a_known_path_with_another_method_answers_405_with_allow() {
    let app = TestApp::spawn().await;
    let anon = app.anonymous();
    let spec: Value = anon.get_json("/api/openapi.json").await;
    // Every documented /api path, with a method it does not take.
    for (path, ops) in spec["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "1").replace("{username}", "admin");
        let resp = anon
            .http
            .put(app.url(&format!("/api{concrete}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "PUT {path}");
        let allow = resp.headers()["allow"].to_str().unwrap().to_string();
        for method in ops.as_object().unwrap().keys() {
            assert!(allow.contains(&method.to_uppercase()), "{path}: {allow}");
        }
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("PUT"));
    }
    // HTML routes, the spec itself, assets and metrics.
    for (method, path, want) in [
        ("PUT", "/login", "GET, POST, HEAD"),
        ("PATCH", "/files/1", "GET, DELETE, HEAD"),
        ("GET", "/files/1/checkout", "POST"),
        ("DELETE", "/", "GET, HEAD"),
        ("POST", "/api/openapi.json", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
        ("POST", "/assets/app.css", "GET, HEAD"),
        ("PUT", "/vault.git/info/lfs/locks", "GET, POST, HEAD"),
        ("PATCH", "/vault.git/info/lfs/locks", "GET, POST, HEAD"),
        ("GET", "/vault.git/info/lfs/locks/verify", "POST"),
        ("GET", "/vault.git/git-upload-pack", "POST"),
        ("DELETE", "/vault.git/info/lfs/locks/1/unlock", "POST"),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = anon.http.request(m, app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], want, "{method} {path}");
    }
    // HEAD is taken wherever GET is: never a 405.
    for path in [
        "/",
        "/login",
        "/healthz",
        "/api/openapi.json",
        "/assets/live.js",
        "/assets/app.css",
    ] {
        let resp = anon.http.head(app.url(path)).send().await.unwrap();
        assert_ne!(resp.status(), 405, "HEAD {path}");
        assert!(
            resp.status().as_u16() < 400,
            "HEAD {path}: {}",
            resp.status()
        );
    }
}
