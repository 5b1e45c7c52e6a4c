//! The Atera connector synced by the host against the fake: the `tickets` and `comments` streams
//! equal the ground truth (full run, then an incremental run through `/tickets/lastmodified`),
//! `get` works, `add-comment` lands upstream only with a grant that allows POST, and both the
//! `X-API-KEY` and the Bearer grant are accepted.

use std::collections::BTreeMap;

use airlock::runtime::connector::{InvokeError, Op};
use airlock::runtime::context::{self, CallContext};
use airlock::store::documents;
use airlock::sync::RunEnd;
use airlock_tests::*;
use fake_saas::{Atera, AteraMutation, AteraOptions, AteraTruthTicket, RunningFake, spawn_atera};

const KEY_GRANT: &str = r#"{ type = "header", name = "X-API-KEY", value = "secret:atera_key" }"#;
const BEARER_GRANT: &str = r#"{ type = "bearer", token = "secret:atera_key" }"#;

async fn fake(tickets: usize) -> RunningFake<Atera> {
    let opts = AteraOptions {
        tickets,
        ..AteraOptions::default()
    };
    spawn_atera("127.0.0.1:0".parse().expect("addr"), opts)
        .await
        .expect("fake")
}

/// The technician the connector's comments are written as (one the fake knows).
const TECHNICIAN: &str = fake_saas::atera::API_TECHNICIAN_EMAIL;

fn env_for(base_url: &str, auth: &str, methods: &str) -> Env {
    env_with_settings(
        base_url,
        auth,
        methods,
        &format!("technician_email = \"{TECHNICIAN}\""),
    )
}

/// [`env_for`] with `settings` (TOML lines) after `base_url`.
fn env_with_settings(base_url: &str, auth: &str, methods: &str, settings: &str) -> Env {
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "atera"
component = "{}"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base_url}"
{settings}

[[grant]]
connector = "atera"
url = "{base_url}/api/v3/"
methods = {methods}
allow_private = true
writes = {writes}
allow_insecure = true
auth = {auth}
"#,
        component("atera").display(),
        writes = methods.contains("POST"),
    ));
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    env
}

/// What the connector must make of a ticket: body and updated-at.
fn expected(t: &AteraTruthTicket) -> (String, String) {
    let mut parts: Vec<&str> = Vec::new();
    for c in [
        &t.first_comment,
        &t.last_end_user_comment,
        &t.last_technician_comment,
    ] {
        if !c.is_empty() && !parts.contains(&c.as_str()) {
            parts.push(c);
        }
    }
    let dates = [
        Some(&t.created),
        t.resolved.as_ref(),
        t.last_end_user_comment_timestamp.as_ref(),
        t.last_technician_comment_timestamp.as_ref(),
    ];
    // All dates are `...Z` with whole seconds, so string order is time order.
    let updated = dates
        .into_iter()
        .flatten()
        .max()
        .cloned()
        .unwrap_or_default();
    (parts.join("\n\n"), updated)
}

fn assert_tickets_equal_truth(env: &Env, f: &RunningFake<Atera>) {
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let docs = documents::all(&conn, "atera", Some("ticket")).expect("docs");
    let stored: BTreeMap<String, _> = docs.iter().map(|d| (d.id.clone(), d)).collect();
    let truth = f.truth();
    assert_eq!(stored.len(), truth.tickets.len(), "ticket count");
    for t in &truth.tickets {
        let d = stored
            .get(&t.id.to_string())
            .unwrap_or_else(|| panic!("ticket {} missing", t.id));
        let (body, updated) = expected(t);
        assert_eq!(
            (&d.title, &d.body, &d.updated_at),
            (&t.title, &body, &updated),
            "ticket {}",
            t.id
        );
        assert_eq!(
            d.metadata,
            serde_json::json!({"status": t.status, "priority": t.priority,
                "customer": t.customer_name, "technician": t.technician_email,
                "ticket_number": t.number, "ticket_type": t.ticket_type,
                "customer_id": t.customer_id, "end_user_id": t.end_user_id,
                "end_user_email": t.end_user_email,
                "end_user_name": format!("{} {}", t.end_user_first_name, t.end_user_last_name),
                "created_at": t.created, "modified_at": updated}),
            "ticket {}",
            t.id
        );
    }
}

fn code(r: &Result<serde_json::Value, InvokeError>) -> String {
    match r {
        Err(InvokeError::Connector(c)) => c.code.clone(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_equal_truth_incrementally_with_the_api_key_grant() {
    let f = fake(130).await;
    let env = env_for(&f.base_url, KEY_GRANT, r#"["GET"]"#);
    let a = start_in_process(&env).await;
    let r = a
        .sync_stream("atera", "tickets", false, |_| {})
        .await
        .expect("tickets");
    assert_eq!((r.end, r.upserts, r.pages), (RunEnd::Done, 130, 3));
    assert_tickets_equal_truth(&env, &f);

    // Incremental: only the changed tickets come back, from /tickets/lastmodified.
    let m = f.mutate(AteraMutation {
        update: 6,
        comment: 4,
        create: 3,
    });
    let mut changed: Vec<u64> = [&m.updated, &m.commented, &m.created]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    changed.sort_unstable();
    changed.dedup();
    f.reset_requests();
    let r = a
        .sync_stream("atera", "tickets", false, |_| {})
        .await
        .expect("incremental");
    assert_eq!(r.end, RunEnd::Done);
    assert_eq!(r.upserts, changed.len() as u64);
    assert_eq!(f.requests_to("/api/v3/tickets/lastmodified"), 1);
    assert_eq!(f.requests_to("/api/v3/tickets"), 0);
    assert_tickets_equal_truth(&env, &f);

    let r = a
        .sync_stream("atera", "comments", false, |_| {})
        .await
        .expect("comments");
    assert_eq!(r.end, RunEnd::Done);
    let truth = f.truth();
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let comments = documents::all(&conn, "atera", Some("comment")).expect("comments");
    let expected: usize = truth.tickets.iter().map(|t| t.comments.len()).sum();
    assert_eq!(comments.len(), expected);
    for t in truth.tickets.iter().step_by(7) {
        for (i, c) in t.comments.iter().enumerate() {
            let id = format!("{}-{}", t.id, i + 1);
            let d = comments
                .iter()
                .find(|d| d.id == id)
                .expect("comment stored");
            assert_eq!((&d.body, &d.updated_at), (&c.comment, &c.date), "{id}");
            assert_eq!(d.metadata["is_internal"], c.is_internal, "{id}");
        }
    }

    let t = &truth.tickets[9];
    let d = a
        .invoke(
            "atera",
            Op::Get {
                id: t.id.to_string(),
            },
        )
        .await
        .expect("get");
    assert_eq!(
        (d["title"].as_str(), d["kind"].as_str()),
        (Some(t.title.as_str()), Some("ticket"))
    );
    assert_eq!(d["body"].as_str(), Some(expected_body(t).as_str()));
    let missing = a
        .invoke(
            "atera",
            Op::Get {
                id: "999999".into(),
            },
        )
        .await;
    assert_eq!(code(&missing), "not-found");
    let bad = a.invoke("atera", Op::Get { id: "../1".into() }).await;
    assert_eq!(code(&bad), "invalid-input");

    // The grant allows only GET: the write is refused and nothing lands upstream.
    let input = serde_json::json!({"ticket_id": t.id, "comment": "not allowed"});
    let denied = a
        .invoke(
            "atera",
            Op::Action {
                name: "add-comment".into(),
                input,
            },
        )
        .await;
    assert_eq!(code(&denied), "forbidden");
    assert!(f.truth().writes.is_empty());
}

fn expected_body(t: &AteraTruthTicket) -> String {
    expected(t).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_grant_syncs_and_add_comment_lands_with_post_allowed() {
    let f = fake(40).await;
    let env = env_for(&f.base_url, BEARER_GRANT, r#"["GET", "POST"]"#);
    let a = start_in_process(&env).await;
    let r = a
        .sync_stream("atera", "tickets", false, |_| {})
        .await
        .expect("tickets");
    assert_eq!((r.end, r.upserts), (RunEnd::Done, 40));
    assert_tickets_equal_truth(&env, &f);

    let id = f.truth().tickets[2].id;
    let input =
        serde_json::json!({"ticket_id": id, "comment": "Rebooted the router", "is_internal": true});
    // In-process calls need a context to write (none fails closed).
    let out = context::with(
        CallContext::trusted(),
        a.invoke(
            "atera",
            Op::Action {
                name: "add-comment".into(),
                input,
            },
        ),
    )
    .await
    .expect("add-comment");
    assert_eq!(out["added"], true, "{out}");
    let truth = f.truth();
    assert_eq!(truth.writes.len(), 1);
    let w = &truth.writes[0];
    assert_eq!(
        (w.ticket_id, w.comment.as_str(), w.is_internal),
        (id, "Rebooted the router", true)
    );
    let t = truth.tickets.iter().find(|t| t.id == id).expect("ticket");
    assert_eq!(
        t.comments
            .last()
            .map(|c| (c.comment.as_str(), c.email.as_str(), c.by_technician)),
        Some(("Rebooted the router", TECHNICIAN, true)),
        "written as the configured technician"
    );

    // The next incremental run picks the commented ticket up.
    let r = a
        .sync_stream("atera", "tickets", false, |_| {})
        .await
        .expect("incremental");
    assert_eq!((r.end, r.upserts), (RunEnd::Done, 1));
    assert_tickets_equal_truth(&env, &f);

    let bad = a
        .invoke(
            "atera",
            Op::Action {
                name: "add-comment".into(),
                input: serde_json::json!({"ticket_id": id}),
            },
        )
        .await;
    assert_eq!(code(&bad), "invalid-input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_unauthorized() {
    let f = fake(5).await;
    let env = env_for(&f.base_url, KEY_GRANT, r#"["GET"]"#);
    env.set_secret("atera_key", "wrong-atera-key");
    let (ok, _, err) = env.invoke("atera", "health", "{}");
    assert!(!ok, "{err}");
    assert!(err.contains("unauthorized"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_action_without_a_writes_grant_is_refused_before_any_approval_is_queued() {
    let f = fake(5).await;
    let env = env_for(&f.base_url, KEY_GRANT, r#"["GET"]"#);
    let id = f.truth().tickets[0].id.to_string();
    let input = format!(r#"{{"ticket_id": {id}, "comment": "no writes grant"}}"#);
    let (ok, out, err) = env.invoke("atera", "add-comment", &input);
    assert!(!ok, "refused: {out} {err}");
    assert!(err.contains("forbidden"), "{err}");
    assert!(err.contains("no grant of `atera` allows writes"), "{err}");
    let list = env.airlock(&["approvals", "list", "--json"], None);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(!text.contains("add-comment"), "nothing queued: {text}");
    let rows = audit_rows(&env);
    assert!(
        rows.iter()
            .any(|r| r.event.event == "approval" && r.event.decision == "deny"),
        "the refusal is audited"
    );
    assert!(f.truth().writes.is_empty());
}

/// Atera refuses a technician comment that names no technician, so without the
/// `technician_email` setting `add-comment` fails before anything is sent upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_comment_without_a_technician_setting_is_refused_before_any_request() {
    let f = fake(5).await;
    let env = env_with_settings(&f.base_url, KEY_GRANT, r#"["GET", "POST"]"#, "");
    let a = start_in_process(&env).await;
    let id = f.truth().tickets[0].id;
    f.reset_requests();
    let r = a
        .invoke(
            "atera",
            Op::Action {
                name: "add-comment".into(),
                input: serde_json::json!({"ticket_id": id, "comment": "hello"}),
            },
        )
        .await;
    assert_eq!(code(&r), "invalid-input");
    let message = format!("{:?}", r.err());
    assert!(message.contains("technician_email"), "{message}");
    assert_eq!(f.requests().total, 0, "nothing sent upstream");
    assert!(f.truth().writes.is_empty());
}
