//! The Microsoft Graph connector under the host's OAuth2 client-credentials grant against the
//! Graph fake: every stream equals the fake's ground truth after a full run and again after an
//! incremental run over mutations (deletes through `@removed` in delta rounds, by difference for
//! full listings, soft deletes for Teams); `search`, `get` and `user-context` return the right
//! records; a 429 ends a run cleanly and the next run resumes; the Graph token is fetched once,
//! reused, refreshed after expiry, and neither it nor the client secret reaches anything the
//! connector or an operator sees.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use airlock::runtime::connector::{InvokeError, Op};
use airlock::runtime::model::Document;
use airlock::store::documents;
use airlock::sync::RunEnd;
use airlock_tests::*;
use fake_saas::common::{now_ms, rfc3339_ms};
use fake_saas::msgraph::search_matches;
use fake_saas::{
    Change, MsGraph, MsGraphMutation, MsGraphOptions, MsGraphTruth, RunningFake, spawn_msgraph,
};
use serde_json::{Value, json};

const STREAMS: [&str; 6] = [
    "users",
    "devices",
    "messages",
    "events",
    "chat-messages",
    "channel-messages",
];
const DAY_MS: i64 = 86_400_000;
const PAST_DAYS: i64 = 30;
const FUTURE_DAYS: i64 = 30;

async fn fake(opts: MsGraphOptions) -> RunningFake<MsGraph> {
    spawn_msgraph("127.0.0.1:0".parse().expect("addr"), opts)
        .await
        .expect("fake")
}

/// Config with every mailbox, chat and channel of the fake configured.
fn env_for(f: &RunningFake<MsGraph>, opts: &MsGraphOptions) -> Env {
    env_with_grant_extra(f, opts, "")
}

/// [`env_for`] with extra lines on the Graph grant.
fn env_with_grant_extra(f: &RunningFake<MsGraph>, opts: &MsGraphOptions, extra: &str) -> Env {
    let t = f.truth();
    let list = |items: Vec<&String>| {
        let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "msgraph"
component = "{component}"
# Tenant-wide, like the demo (records carry their readers all the same; tests/all/permissions.rs).
permissions = "tenant"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base}"
mailboxes = {mailboxes}
chats = {chats}
channels = {channels}
events_past_days = {PAST_DAYS}
events_future_days = {FUTURE_DAYS}
page_size = 40

[[grant]]
connector = "msgraph"
url = "{base}/v1.0/"
methods = ["GET", "POST"]
exact_paths = ["/v1.0/search/query"]
allow_private = true
allow_insecure = true
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "{client}", client_secret = "secret:graph_secret", scope = "https://graph.microsoft.com/.default" }}
{extra}
"#,
        component = component("msgraph").display(),
        base = f.base_url,
        mailboxes = list(t.mailboxes.iter().collect()),
        chats = list(t.chats.keys().collect()),
        channels = list(t.channels.keys().collect()),
        token_url = f.token_url(),
        client = opts.client_id,
    ));
    env.set_secret("graph_secret", &opts.client_secret);
    env
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn id_of(v: &Value) -> String {
    s(v, "id")
}

/// `<p>text</p>`-style Graph HTML bodies as the plain text the connector must index.
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    norm(&out)
}

fn stored(env: &Env, kind: &str) -> BTreeMap<String, Document> {
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    documents::all(&conn, "msgraph", Some(kind))
        .expect("docs")
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect()
}

fn assert_ids(kind: &str, got: &BTreeMap<String, Document>, want: &BTreeSet<String>) {
    let got: BTreeSet<String> = got.keys().cloned().collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{kind}: {} stored, {} in truth; missing {missing:?}; extra {extra:?}",
        got.len(),
        want.len()
    );
}

/// The `[start, end)` of the events window as Graph local date-times (`YYYY-MM-DDTHH:MM:SS`).
fn window() -> (String, String) {
    let today = now_ms().div_euclid(DAY_MS) * DAY_MS;
    let start = rfc3339_ms(today - PAST_DAYS * DAY_MS);
    let end = rfc3339_ms(today + DAY_MS + FUTURE_DAYS * DAY_MS);
    (start[..19].to_owned(), end[..19].to_owned())
}

/// Every synced kind equals the truth: same ids, and the fields the connector maps.
fn assert_streams_equal_truth(env: &Env, t: &MsGraphTruth) {
    let users = stored(env, "user");
    let want: BTreeSet<String> = t
        .users
        .iter()
        .map(|u| format!("user:{}", id_of(u)))
        .collect();
    assert_ids("users", &users, &want);
    for u in &t.users {
        let d = &users[&format!("user:{}", id_of(u))];
        assert_eq!(d.title, s(u, "displayName"));
        for k in [
            "userPrincipalName",
            "mail",
            "jobTitle",
            "department",
            "officeLocation",
        ] {
            assert_eq!(d.metadata[k], u[k], "user {} {k}", id_of(u));
        }
        assert!(d.body.contains(&s(u, "jobTitle")), "{}", d.body);
        assert!(d.updated_at.ends_with('Z'), "{}", d.updated_at);
    }

    let devices = stored(env, "device");
    let want: BTreeSet<String> = t
        .devices
        .iter()
        .map(|v| format!("device:{}", id_of(v)))
        .collect();
    assert_ids("devices", &devices, &want);
    for v in &t.devices {
        let d = &devices[&format!("device:{}", id_of(v))];
        assert_eq!(d.title, s(v, "displayName"));
        for k in [
            "deviceId",
            "operatingSystem",
            "operatingSystemVersion",
            "isCompliant",
            "isManaged",
        ] {
            assert_eq!(d.metadata[k], v[k], "device {} {k}", id_of(v));
        }
        assert_eq!(d.updated_at, s(v, "approximateLastSignInDateTime"));
    }

    let messages = stored(env, "message");
    let mut want = BTreeSet::new();
    for (mailbox, list) in &t.messages {
        // Mail is read by its mailbox's owner, named by Entra object id.
        let owner = t
            .users
            .iter()
            .find(|u| u["userPrincipalName"] == mailbox.as_str());
        let owner = format!("user:{}", id_of(owner.expect("mailbox owner")));
        for m in list {
            let id = format!("message:{mailbox}/{}", id_of(m));
            want.insert(id.clone());
            let Some(d) = messages.get(&id) else { continue };
            assert_eq!(d.title, s(m, "subject"), "{id}");
            assert_eq!(norm(&d.body), norm(&s(m, "bodyPreview")), "{id}");
            assert_eq!(d.updated_at, s(m, "lastModifiedDateTime"), "{id}");
            assert_eq!(d.url.as_deref(), m["webLink"].as_str(), "{id}");
            assert_eq!(d.acl, vec![owner.clone()], "{id}");
            assert_eq!(d.metadata["isRead"], m["isRead"], "{id}");
            assert_eq!(
                d.metadata["from"], m["from"]["emailAddress"]["address"],
                "{id}"
            );
        }
    }
    assert_ids("messages", &messages, &want);

    let (start, end) = window();
    let events = stored(env, "event");
    let mut want = BTreeSet::new();
    let mut outside = 0;
    for (mailbox, list) in &t.events {
        for e in list {
            let (from, to) = (s(&e["start"], "dateTime"), s(&e["end"], "dateTime"));
            if !(from[..19] < *end && to[..19] > *start) {
                outside += 1;
                continue;
            }
            let id = format!("event:{mailbox}/{}", id_of(e));
            want.insert(id.clone());
            let Some(d) = events.get(&id) else { continue };
            assert_eq!(d.title, s(e, "subject"), "{id}");
            assert_eq!(d.metadata["start"], e["start"]["dateTime"], "{id}");
            assert_eq!(d.metadata["location"], e["location"]["displayName"], "{id}");
            assert!(
                norm(&d.body).starts_with(&norm(&s(e, "bodyPreview"))),
                "{id}: {}",
                d.body
            );
            assert_eq!(d.updated_at, s(e, "lastModifiedDateTime"), "{id}");
        }
    }
    assert!(outside > 0, "the fake seeds events outside the window");
    assert_ids("events", &events, &want);

    for (kind, groups) in [("chat-message", &t.chats), ("channel-message", &t.channels)] {
        let docs = stored(env, kind);
        let mut want = BTreeSet::new();
        for (scope, list) in groups {
            for m in list {
                let id = format!("{kind}:{scope}/{}", id_of(m));
                want.insert(id.clone());
                let Some(d) = docs.get(&id) else { continue };
                assert_eq!(norm(&d.body), html_text(&s(&m["body"], "content")), "{id}");
                assert_eq!(d.updated_at, s(m, "lastModifiedDateTime"), "{id}");
                assert_eq!(d.metadata["from"], m["from"]["user"]["displayName"], "{id}");
            }
        }
        assert_ids(kind, &docs, &want);
    }
}

fn code(r: &Result<Value, InvokeError>) -> String {
    match r {
        Err(InvokeError::Connector(c)) => c.code.clone(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_equals_truth_then_an_incremental_run_applies_changes_and_deletes() {
    let opts = MsGraphOptions::default();
    let f = fake(opts.clone()).await;
    let env = env_for(&f, &opts);
    let a = start_in_process(&env).await;
    let started = Instant::now();
    let mut reports = BTreeMap::new();
    for stream in STREAMS {
        let r = a
            .sync_stream("msgraph", stream, false, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{stream}: {e}"));
        assert_eq!(r.end, RunEnd::Done, "{stream}");
        reports.insert(stream, r);
    }
    let t = f.truth();
    // 140 users through the delta query's 100-record pages; 75 devices in pages of 40.
    assert_eq!((reports["users"].upserts, reports["users"].pages), (140, 2));
    assert_eq!(
        (reports["devices"].upserts, reports["devices"].pages),
        (75, 2)
    );
    assert_streams_equal_truth(&env, &t);
    assert_eq!(
        f.requests_to("/v1.0/users"),
        0,
        "users come from /users/delta"
    );
    eprintln!("full sync of 6 streams: {:?}", started.elapsed());

    let m = f.mutate(MsGraphMutation {
        users: Change {
            add: 3,
            update: 4,
            delete: 2,
        },
        devices: Change {
            add: 2,
            update: 2,
            delete: 3,
        },
        messages: Change {
            add: 4,
            update: 2,
            delete: 3,
        },
        events: Change {
            add: 2,
            update: 2,
            delete: 2,
        },
        chat_messages: Change {
            add: 3,
            update: 2,
            delete: 2,
        },
        channel_messages: Change {
            add: 2,
            update: 1,
            delete: 1,
        },
    });
    f.reset_requests();
    let mut reports = BTreeMap::new();
    for stream in STREAMS {
        let r = a
            .sync_stream("msgraph", stream, false, |_| {})
            .await
            .unwrap_or_else(|e| panic!("incremental {stream}: {e}"));
        assert_eq!(r.end, RunEnd::Done, "{stream}");
        reports.insert(stream, r);
    }
    // Delta rounds bring exactly the changes: an empty first page, then one page of them.
    let users = &reports["users"];
    assert_eq!((users.upserts, users.deletes, users.pages), (7, 2, 2));
    assert_eq!(f.requests_to("/v1.0/users/delta"), 2);
    let messages = &reports["messages"];
    assert_eq!((messages.upserts, messages.deletes), (6, 3));
    // Full listings find the 3 vanished devices by difference.
    assert_eq!(
        (reports["devices"].upserts, reports["devices"].deletes),
        (74, 3)
    );
    let t = f.truth();
    assert_streams_equal_truth(&env, &t);
    let gone = stored(&env, "user");
    for id in &m.users.deleted {
        assert!(
            !gone.contains_key(&format!("user:{id}")),
            "deleted user {id} still stored"
        );
    }
    let chats = stored(&env, "chat-message");
    for id in &m.chat_messages.deleted {
        assert!(
            !chats.contains_key(&format!("chat-message:{id}")),
            "soft-deleted {id} stored"
        );
    }
    assert_eq!(
        f.token_requests(),
        1,
        "one client-credentials token serves two runs of six streams"
    );
}

/// Graph may send an updated user in a delta round as only its changed properties (`id`,
/// `jobTitle`, `officeLocation` here): the connector reads the whole user instead of storing a
/// record with a blank name; new users arrive whole and are not read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_user_in_a_delta_round_is_read_whole_and_keeps_its_other_fields() {
    let opts = MsGraphOptions {
        users: 30,
        ..MsGraphOptions::default()
    };
    let f = fake(opts.clone()).await;
    let env = env_for(&f, &opts);
    let a = start_in_process(&env).await;
    let r = a
        .sync_stream("msgraph", "users", false, |_| {})
        .await
        .expect("full");
    assert_eq!((r.end, r.upserts), (RunEnd::Done, 30));
    let m = f.mutate(MsGraphMutation {
        users: Change {
            add: 1,
            update: 3,
            delete: 0,
        },
        ..MsGraphMutation::default()
    });
    f.reset_requests();
    let r = a
        .sync_stream("msgraph", "users", false, |_| {})
        .await
        .expect("incremental");
    assert_eq!((r.end, r.upserts, r.deletes), (RunEnd::Done, 4, 0));
    let t = f.truth();
    let users = stored(&env, "user");
    for id in &m.users.updated {
        let u = t.users.iter().find(|u| &id_of(u) == id).expect("in truth");
        let d = &users[&format!("user:{id}")];
        assert_eq!(d.title, s(u, "displayName"), "{id} kept its name");
        assert_eq!(d.metadata["jobTitle"], json!("Senior Program Manager"));
        assert_eq!(d.metadata["userPrincipalName"], u["userPrincipalName"]);
        assert_eq!(d.metadata["department"], u["department"]);
        assert_eq!(
            f.requests_to(&format!("/v1.0/users/{id}")),
            1,
            "updated user {id} read once"
        );
    }
    for id in &m.users.added {
        assert_eq!(
            f.requests_to(&format!("/v1.0/users/{id}")),
            0,
            "a new user arrives whole"
        );
    }
    assert_streams_equal_truth_users(&users, &t);
}

fn assert_streams_equal_truth_users(users: &BTreeMap<String, Document>, t: &MsGraphTruth) {
    assert_eq!(users.len(), t.users.len());
    for u in &t.users {
        let d = &users[&format!("user:{}", id_of(u))];
        assert_eq!(d.title, s(u, "displayName"));
        assert_eq!(d.metadata["officeLocation"], u["officeLocation"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_get_and_user_context_return_the_right_records() {
    let opts = MsGraphOptions::default();
    let f = fake(opts.clone()).await;
    let env = env_for(&f, &opts);
    let a = start_in_process(&env).await;
    let t = f.truth();

    // Search pages through every drive item holding both words, two at a time.
    let want: BTreeSet<String> = search_matches(&t.drive_items, "airlock rollout")
        .iter()
        .map(|i| {
            format!(
                "drive-item:{}/{}",
                s(&i["parentReference"], "driveId"),
                id_of(i)
            )
        })
        .collect();
    assert!(want.len() >= 3, "{want:?}");
    let (mut got, mut cursor, mut pages) = (BTreeSet::new(), None, 0);
    loop {
        let r = a
            .invoke(
                "msgraph",
                Op::Search {
                    query: "airlock rollout".into(),
                    limit: 2,
                    cursor: cursor.clone(),
                },
            )
            .await
            .expect("search");
        pages += 1;
        for h in r["hits"].as_array().expect("hits") {
            assert_eq!(h["kind"], "drive-item");
            assert!(
                h["body"].as_str().unwrap_or("").contains("airlock rollout"),
                "{h}"
            );
            got.insert(s(h, "id"));
        }
        cursor = r["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(got, want);
    assert_eq!(pages, want.len().div_ceil(2));
    let none = a
        .invoke(
            "msgraph",
            Op::Search {
                query: "zzzqqq".into(),
                limit: 5,
                cursor: None,
            },
        )
        .await
        .expect("empty search");
    assert_eq!(none["hits"].as_array().map(Vec::len), Some(0));

    // get by document ref, one of each kind.
    let mailbox = &t.mailboxes[1];
    let message = &t.messages[mailbox][5];
    let event = &t.events[mailbox][3];
    let (chat, chat_msgs) = t.chats.iter().next().expect("chat");
    let (channel, channel_msgs) = t.channels.iter().last().expect("channel");
    let item = &t.drive_items[7];
    let cases = [
        (
            format!("user:{}", id_of(&t.users[9])),
            s(&t.users[9], "displayName"),
        ),
        (
            format!("device:{}", id_of(&t.devices[4])),
            s(&t.devices[4], "displayName"),
        ),
        (
            format!("message:{mailbox}/{}", id_of(message)),
            s(message, "subject"),
        ),
        (
            format!("event:{mailbox}/{}", id_of(event)),
            s(event, "subject"),
        ),
        (
            format!("chat-message:{chat}/{}", id_of(&chat_msgs[2])),
            format!(
                "Message from {} in chat",
                s(&chat_msgs[2]["from"]["user"], "displayName")
            ),
        ),
        (
            format!("channel-message:{channel}/{}", id_of(&channel_msgs[0])),
            s(&channel_msgs[0], "subject"),
        ),
        (
            format!(
                "drive-item:{}/{}",
                s(&item["parentReference"], "driveId"),
                id_of(item)
            ),
            s(item, "name"),
        ),
    ];
    for (id, title) in &cases {
        let d = a
            .invoke("msgraph", Op::Get { id: id.clone() })
            .await
            .unwrap_or_else(|e| panic!("get {id}: {e:?}"));
        assert_eq!(
            (s(&d, "id"), s(&d, "title")),
            (id.clone(), title.clone()),
            "{d}"
        );
    }
    let missing = a
        .invoke(
            "msgraph",
            Op::Get {
                id: "user:00000000-0000-4000-8000-000000000000".into(),
            },
        )
        .await;
    assert_eq!(code(&missing), "not-found");
    let bad = a
        .invoke(
            "msgraph",
            Op::Get {
                id: "message:a/../b".into(),
            },
        )
        .await;
    assert_eq!(code(&bad), "invalid-input");

    // user-context: by UPN, then by a mail address that differs from the UPN.
    let user_context = |email: &str| Op::Action {
        name: "user-context".into(),
        input: json!({ "email": email }),
    };
    for user in [&t.users[0], &t.users[3]] {
        let email = if s(user, "mail") != s(user, "userPrincipalName") {
            s(user, "mail")
        } else {
            s(user, "userPrincipalName")
        };
        let out = a
            .invoke("msgraph", user_context(&email))
            .await
            .unwrap_or_else(|e| panic!("user-context {email}: {e:?}"));
        assert_eq!(out["user"]["id"], user["id"], "{out}");
        assert_eq!(out["user"]["displayName"], user["displayName"]);
        let want: Vec<&Value> = t
            .managed_devices
            .iter()
            .filter(|d| d["userId"] == user["id"])
            .collect();
        let got = out["managedDevices"].as_array().expect("devices");
        assert_eq!(got.len(), want.len(), "{out}");
        for (g, w) in got.iter().zip(&want) {
            for k in [
                "id",
                "deviceName",
                "complianceState",
                "operatingSystem",
                "lastSyncDateTime",
            ] {
                assert_eq!(g[k], w[k], "{k}");
            }
        }
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for w in &want {
            *counts.entry(s(w, "complianceState")).or_default() += 1;
        }
        assert_eq!(out["compliance"], json!(counts));
        let all = !want.is_empty() && want.iter().all(|w| w["complianceState"] == "compliant");
        assert_eq!(out["allCompliant"], all);
    }
    let first = a
        .invoke(
            "msgraph",
            user_context(&s(&t.users[0], "userPrincipalName")),
        )
        .await
        .expect("first user");
    assert_eq!(
        first["compliance"],
        json!({"compliant": 1, "noncompliant": 1})
    );
    assert_eq!(first["allCompliant"], false);
    assert_ne!(s(&t.users[3], "mail"), s(&t.users[3], "userPrincipalName"));
    let nobody = a
        .invoke("msgraph", user_context("nobody@contoso.com"))
        .await;
    assert_eq!(code(&nobody), "not-found");
    let invalid = a.invoke("msgraph", user_context("not an email")).await;
    assert_eq!(code(&invalid), "invalid-input");
    let schema = a.connector("msgraph").expect("connector").info.actions[0]
        .input_schema
        .clone();
    assert_eq!(schema["required"], json!(["email"]), "{schema}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_ends_the_run_with_retry_after_and_the_next_run_resumes_to_the_truth() {
    let opts = MsGraphOptions {
        users: 230,
        ..MsGraphOptions::default()
    };
    let f = fake(opts.clone()).await;
    // The gate would wait a short Retry-After out and retry (see tests/all/resilience.rs); without
    // retries the connector sees the 429, as it does for a wait past its deadline.
    let env = env_with_grant_extra(&f, &opts, "retry = { attempts = 1 }");
    let a = start_in_process(&env).await;
    // Fetch the token first, then make every second Graph call (the 2nd users page) a 429.
    let health = a.invoke("msgraph", Op::Health).await.expect("health");
    assert_eq!(health["ok"], true, "{health}");
    f.set_retry_after_secs(2);
    f.set_rate_limit_every(Some(2));
    let r = a
        .sync_stream("msgraph", "users", false, |_| {})
        .await
        .expect("run");
    assert_eq!(
        r.end,
        RunEnd::RateLimited {
            retry_after_secs: 2
        }
    );
    assert_eq!(
        (r.pages, r.upserts),
        (1, 100),
        "the first page was committed"
    );
    f.set_rate_limit_every(None);
    f.reset_requests();
    let r = a
        .sync_stream("msgraph", "users", false, |_| {})
        .await
        .expect("resume");
    assert_eq!(r.end, RunEnd::Done);
    assert_eq!((r.pages, r.upserts), (2, 130), "resumed at the second page");
    assert_eq!(f.requests_to("/v1.0/users/delta"), 2);
    let users = stored(&env, "user");
    assert_eq!(users.len(), 230);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_token_is_fetched_once_reused_refreshed_after_expiry_and_never_leaks() {
    const LIFETIME: u64 = 6;
    const CANARY_SECRET: &str = "canary-graph-secret-5d1e07";
    let opts = MsGraphOptions {
        client_secret: CANARY_SECRET.into(),
        token_lifetime_secs: LIFETIME,
        users: 30,
        ..MsGraphOptions::default()
    };
    let f = fake(opts.clone()).await;
    let env = env_for(&f, &opts);
    let d = env.serve();
    let t = f.truth();
    let mut outputs: Vec<(String, String)> = Vec::new();
    let user = s(&t.users[0], "userPrincipalName");
    let calls = [
        ("health", json!({})),
        ("sync", json!({"stream": "users"})),
        ("sync", json!({"stream": "devices"})),
        ("search", json!({"query": "airlock rollout"})),
        ("get", json!({"id": format!("user:{}", id_of(&t.users[1]))})),
        ("user-context", json!({"email": user})),
        ("sync", json!({"stream": "messages"})),
    ];
    let started = Instant::now();
    for (op, input) in &calls {
        let (status, v) = d.invoke("msgraph", op, input.clone()).await;
        assert_eq!(status, 200, "{op}: {v}");
        outputs.push((format!("{op} {input}"), v.to_string()));
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(LIFETIME - 2),
        "calls too slow for this test: {elapsed:?}"
    );
    assert_eq!(f.token_requests(), 1, "one token for {} calls", calls.len());
    let graph_calls = f.requests().total - f.token_requests();
    assert!(graph_calls > calls.len() as u64, "{graph_calls}");

    // Past expiry the fake refuses the old token; the host fetches a new one exactly once.
    tokio::time::sleep(Duration::from_secs(LIFETIME) + Duration::from_millis(300) - elapsed).await;
    for (op, input) in &calls[3..] {
        let (status, v) = d.invoke("msgraph", op, input.clone()).await;
        assert_eq!(status, 200, "after expiry {op}: {v}");
        outputs.push((format!("after expiry {op} {input}"), v.to_string()));
    }
    assert_eq!(f.token_requests(), 2, "refreshed once after expiry");

    let tokens = f.issued_tokens();
    assert_eq!(tokens.len(), 2);
    let audit = env.airlock(&["audit", "tail", "-n", "1000", "--json"], None);
    outputs.push((
        "audit tail".into(),
        String::from_utf8_lossy(&audit.stdout).to_string(),
    ));
    let log = d.stop();
    assert!(log.contains("msgraph"), "daemon log captured: {log}");
    outputs.push(("daemon log".into(), log));
    let rows = audit_rows(&env);
    assert!(rows.len() > 10, "{} audit rows", rows.len());
    for r in &rows {
        outputs.push((
            format!("audit row {}", r.seq),
            serde_json::to_string(r).unwrap_or_default(),
        ));
    }
    let mut canaries: Vec<String> = tokens.clone();
    canaries.push(CANARY_SECRET.into());
    canaries.extend(
        tokens
            .iter()
            .filter_map(|t| t.split('.').nth(1).map(str::to_owned)),
    );
    for c in &canaries {
        for (what, text) in &outputs {
            assert!(
                !text.contains(c.as_str()),
                "`{c}` leaked in {what}:\n{text}"
            );
        }
        for (path, bytes) in all_files(&env.data_dir()) {
            assert!(!contains(&bytes, c), "`{c}` found in {}", path.display());
        }
    }
}
