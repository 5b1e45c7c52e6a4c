//! Tests of the Atera fake: auth, paging with absolute links, `lastmodified`, comment reads and
//! writes with their body rules, the date-time parser and the 429 knob.

use serde_json::Value;

use super::*;
use crate::common::{now_ms, parse_date_time, rfc3339_secs, utc_ms};
use crate::testutil::http_with;

const KEY: &str = "demo-atera-key";

async fn fake() -> RunningFake<Atera> {
    let opts = AteraOptions {
        tickets: 73,
        ..AteraOptions::default()
    };
    spawn_atera(SocketAddr::from(([127, 0, 0, 1], 0)), opts)
        .await
        .expect("fake starts")
}

async fn get_json(f: &RunningFake<Atera>, path: &str) -> Value {
    let r = http_with(f.addr, "GET", path, &[("X-API-KEY", KEY)], None)
        .await
        .expect("request");
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

/// Follows nextLink from `first`; returns every item.
async fn all(f: &RunningFake<Atera>, first: &str) -> Vec<Value> {
    let (mut out, mut path) = (Vec::new(), first.to_owned());
    loop {
        let v = get_json(f, &path).await;
        out.extend(v["items"].as_array().expect("items").iter().cloned());
        let next = v["nextLink"].as_str().expect("nextLink is a string");
        if next.is_empty() {
            return out;
        }
        path = next.strip_prefix(&f.base_url).expect("absolute").to_owned();
    }
}

#[tokio::test]
async fn auth_paging_lastmodified_and_comments() {
    let f = fake().await;
    let bearer = format!("Bearer {KEY}");
    for (headers, status) in [
        (vec![], 401),
        (vec![("X-API-KEY", "nope")], 401),
        (vec![("Authorization", bearer.as_str())], 200),
        (vec![("X-API-KEY", KEY)], 200),
    ] {
        let r = http_with(f.addr, "GET", "/api/v3/tickets", &headers, None)
            .await
            .unwrap();
        assert_eq!(r.status, status, "{headers:?}");
        if status == 401 {
            assert_eq!(r.json()["status"], 401);
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
        }
        assert!(r.header("date").is_some(), "hyper sends Date");
    }
    let v = get_json(&f, "/api/v3/tickets?page=1&itemsInPage=500").await;
    assert_eq!(
        (v["itemsInPage"].as_u64(), v["totalPages"].as_u64()),
        (Some(50), Some(2))
    );
    assert_eq!(v["prevLink"], "");
    let items = all(&f, "/api/v3/tickets?page=1&itemsInPage=10").await;
    assert_eq!(items.len(), 73);
    let t = &items[5];
    for k in [
        "TicketID",
        "TicketNumber",
        "TicketTitle",
        "TicketStatus",
        "TicketPriority",
        "TicketType",
        "TicketCreatedDate",
        "TicketResolvedDate",
        "CustomerID",
        "CustomerName",
        "EndUserID",
        "EndUserEmail",
        "EndUserFirstName",
        "EndUserLastName",
        "TechnicianEmail",
        "FirstComment",
        "LastEndUserComment",
        "LastTechnicianComment",
    ] {
        assert!(t.get(k).is_some(), "{k}");
    }
    let m = f.mutate(AteraMutation {
        update: 3,
        comment: 2,
        create: 1,
    });
    let since = rfc3339_secs(now_ms() / 1000 - 5);
    let changed = all(
        &f,
        &format!("/api/v3/tickets/lastmodified?date={since}&itemsInPage=2"),
    )
    .await;
    let mut ids: Vec<u64> = changed
        .iter()
        .filter_map(|t| t["TicketID"].as_u64())
        .collect();
    ids.sort_unstable();
    let mut want: Vec<u64> = m
        .updated
        .iter()
        .chain(&m.commented)
        .chain(&m.created)
        .copied()
        .collect();
    want.sort_unstable();
    want.dedup();
    assert_eq!(ids, want);
    let id = m.created[0];
    assert_eq!(
        get_json(&f, &format!("/api/v3/tickets/{id}")).await["TicketID"],
        id
    );
    let r = http_with(
        f.addr,
        "GET",
        "/api/v3/tickets/99",
        &[("X-API-KEY", KEY)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);
    let path = format!("/api/v3/tickets/{id}/comments");
    // Bodies Atera refuses: no author, an author without identity, an unknown technician,
    // both kinds of author, the text under another name.
    for refused in [
        r#"{"CommentText":"done"}"#,
        r#"{"CommentText":"done","TechnicianCommentDetails":{"IsInternal":true}}"#,
        r#"{"CommentText":"done","TechnicianCommentDetails":{"TechnicianEmail":"who@else.example"}}"#,
        r#"{"CommentText":"done","TechnicianCommentDetails":{"TechnicianId":1},"EnduserCommentDetails":{"EnduserId":4}}"#,
        r#"{"Comment":"done","TechnicianCommentDetails":{"TechnicianId":1}}"#,
        r#"{"CommentText":" ","TechnicianCommentDetails":{"TechnicianId":1}}"#,
    ] {
        let r = http_with(f.addr, "POST", &path, &[("X-API-KEY", KEY)], Some(refused))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{refused}: {}", r.body);
        assert_eq!(r.json()["status"], 400, "ProblemDetails: {}", r.body);
    }
    assert!(f.truth().writes.is_empty());
    let body = r#"{"CommentText":"done","TechnicianCommentDetails":{"TechnicianEmail":"api.technician@msp.example","IsInternal":true}}"#;
    let r = http_with(f.addr, "POST", &path, &[("X-API-KEY", KEY)], Some(body))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let comments = all(&f, &format!("{path}?itemsInPage=1")).await;
    assert_eq!(comments.len(), 2);
    assert_eq!(
        (
            comments[1]["Comment"].as_str(),
            comments[1]["IsInternal"].as_bool()
        ),
        (Some("done"), Some(true))
    );
    let truth = f.truth();
    assert_eq!(
        truth.writes,
        vec![AteraWrite {
            ticket_id: id,
            comment: "done".into(),
            is_internal: true
        }]
    );
    assert_eq!(
        truth.tickets.last().unwrap().last_technician_comment,
        "done"
    );
    assert_eq!(
        parse_date_time("2025-01-02T03:04:05.5+01:00"),
        Some(utc_ms(2025, 1, 2, 2, 4) + 5500)
    );
    f.set_rate_limit_every(Some(1));
    let r = http_with(
        f.addr,
        "GET",
        "/api/v3/tickets",
        &[("X-API-KEY", KEY)],
        None,
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
}
