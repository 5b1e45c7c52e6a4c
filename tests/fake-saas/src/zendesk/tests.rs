//! Tests of the Zendesk fake: the incremental exports and their limits, tickets and comments,
//! articles, search with its ceiling, access, webhooks, mutations and control routes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::Value;

use super::params::{
    decode_comment_cursor, decode_export_cursor, encode_comment_cursor, encode_export_cursor,
    time_page,
};
use super::*;
use crate::common::parse_date_minute;
use crate::testutil::{Reply, http, http_with};

const USER: &str = "agent@example.com/token";
const TOKEN: &str = "demo-zendesk-token";
const AUTH: Option<(&str, &str)> = Some((USER, TOKEN));

async fn fake_with(opts: ZendeskOptions) -> RunningFake<Zendesk> {
    spawn_zendesk(SocketAddr::from(([127, 0, 0, 1], 0)), opts)
        .await
        .expect("fake starts")
}

/// Defaults, but nothing is held back as "recent" so mutations show up at once.
fn opts() -> ZendeskOptions {
    ZendeskOptions {
        recent_exclusion_secs: 0,
        ..ZendeskOptions::default()
    }
}

async fn get(f: &RunningFake<Zendesk>, path: &str) -> Reply {
    http(f.addr, "GET", path, AUTH, None)
        .await
        .expect("request")
}

async fn get_ok(f: &RunningFake<Zendesk>, path: &str) -> Value {
    let r = get(f, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

/// An absolute link from a reply, as a path the test client can request.
fn rel(f: &RunningFake<Zendesk>, url: &Value) -> String {
    let url = url.as_str().expect("link is a string");
    url.strip_prefix(&f.base_url)
        .unwrap_or_else(|| panic!("{url} is not on {}", f.base_url))
        .to_owned()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

struct Export {
    tickets: Vec<Value>,
    after_cursor: String,
    pages: usize,
}

/// Follows `after_url` from `first` until `end_of_stream`.
async fn export(f: &RunningFake<Zendesk>, first: &str) -> Export {
    let (mut tickets, mut path, mut pages) = (Vec::new(), first.to_owned(), 0);
    loop {
        let v = get_ok(f, &path).await;
        pages += 1;
        let page = v["tickets"].as_array().expect("tickets");
        tickets.extend(page.iter().cloned());
        let cursor = v["after_cursor"].as_str().expect("after_cursor").to_owned();
        assert!(v["before_cursor"].is_string() && v["before_url"].is_string());
        let after_url = rel(f, &v["after_url"]);
        assert!(after_url.contains(&format!("cursor={}", enc(&cursor))));
        if v["end_of_stream"] == true {
            return Export {
                tickets,
                after_cursor: cursor,
                pages,
            };
        }
        assert!(!page.is_empty(), "a page before the end is never empty");
        path = after_url;
    }
}

async fn resume(f: &RunningFake<Zendesk>, cursor: &str) -> Export {
    export(
        f,
        &format!(
            "/api/v2/incremental/tickets/cursor.json?cursor={}",
            enc(cursor)
        ),
    )
    .await
}

fn assert_ticket_matches(got: &Value, want: &TruthTicket) {
    assert_eq!(got["id"], want.id);
    assert_eq!(got["subject"], want.subject.as_str());
    assert_eq!(got["raw_subject"], want.subject.as_str());
    assert_eq!(got["description"], want.description.as_str());
    assert_eq!(got["status"], want.status.as_str());
    assert_eq!(got["priority"], json!(want.priority));
    assert_eq!(got["type"], json!(want.ticket_type));
    assert_eq!(got["requester_id"], want.requester_id);
    assert_eq!(got["assignee_id"], json!(want.assignee_id));
    assert_eq!(got["organization_id"], json!(want.organization_id));
    assert_eq!(got["tags"], json!(want.tags));
    assert_eq!(got["created_at"], want.created_at.as_str());
    assert_eq!(got["updated_at"], want.updated_at.as_str());
    assert!(
        got["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/api/v2/tickets/{}.json", want.id)))
    );
}

#[tokio::test]
async fn auth_accepts_basic_token_and_oauth_bearer_only() {
    let f = fake_with(opts()).await;
    let path = "/api/v2/tickets/1.json";
    assert_eq!(get(&f, path).await.status, 200);
    // The API token is Basic-only: as a Bearer token Zendesk refuses it.
    let api_token_as_bearer = format!("Bearer {TOKEN}");
    let r = http_with(
        f.addr,
        "GET",
        path,
        &[("Authorization", &api_token_as_bearer)],
        None,
    )
    .await
    .expect("request");
    assert_eq!(r.status, 401, "{}", r.body);
    let bearer = format!("Bearer {}", ZendeskOptions::default().oauth_access_token);
    let r = http_with(f.addr, "GET", path, &[("Authorization", &bearer)], None)
        .await
        .expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-rate-limit"), Some("700"));
    assert!(r.header("x-rate-limit-remaining").is_some());
    assert!(r.header("ratelimit-reset").is_some());
    for auth in [
        None,
        Some((USER, "wrong")),
        Some(("agent@example.com", TOKEN)),
        Some(("other@example.com/token", TOKEN)),
    ] {
        let r = http(f.addr, "GET", path, auth, None)
            .await
            .expect("request");
        assert_eq!(r.status, 401);
        assert_eq!(r.json(), json!({"error": "Couldn't authenticate you"}));
    }
    let wrong_bearer = http_with(
        f.addr,
        "GET",
        path,
        &[("Authorization", "Bearer nope")],
        None,
    )
    .await
    .expect("request");
    assert_eq!(wrong_bearer.status, 401);
    let truth = http(f.addr, "GET", "/_fake/truth", None, None)
        .await
        .expect("truth");
    assert_eq!(truth.status, 200);
    assert_eq!(truth.json()["tickets"].as_array().map(Vec::len), Some(500));
    assert_eq!(f.requests_to(path), 8);
    let me = get_ok(&f, "/api/v2/users/me.json").await;
    assert_eq!(me["user"]["email"], "agent@example.com");
    let missing = get(&f, "/api/v2/nope.json").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "InvalidEndpoint");
}

#[tokio::test]
async fn cursor_export_returns_every_ticket_once_matching_truth() {
    let f = fake_with(ZendeskOptions {
        tickets: 2_500,
        ..opts()
    })
    .await;
    let truth = f.truth();
    assert_eq!(truth.tickets.len(), 2_500);
    assert!(truth.deleted_ticket_ids.is_empty());
    let all = export(&f, "/api/v2/incremental/tickets/cursor.json?start_time=0").await;
    assert_eq!(all.pages, 3);
    assert_eq!(all.tickets.len(), truth.tickets.len());
    let by_id: BTreeMap<u64, &Value> = all
        .tickets
        .iter()
        .map(|t| (t["id"].as_u64().expect("id"), t))
        .collect();
    assert_eq!(by_id.len(), truth.tickets.len(), "no ticket twice");
    for want in &truth.tickets {
        assert_ticket_matches(by_id[&want.id], want);
    }
    // Export order is (updated_at, id).
    let keys: Vec<(String, u64)> = all
        .tickets
        .iter()
        .map(|t| {
            (
                t["updated_at"].as_str().unwrap_or("").to_owned(),
                t["id"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    // Smaller pages give the same stream; start_time filters by updated_at.
    let small = export(
        &f,
        "/api/v2/incremental/tickets/cursor.json?start_time=0&per_page=700",
    )
    .await;
    assert_eq!(small.pages, 4);
    assert_eq!(small.tickets, all.tickets);
    let mid = keys[1_000].0.as_str();
    let since = truth
        .tickets
        .iter()
        .filter(|t| t.updated_at.as_str() >= mid)
        .count();
    let t0 = all.tickets[1_000]["generated_timestamp"]
        .as_i64()
        .expect("generated_timestamp");
    let later = export(
        &f,
        &format!("/api/v2/incremental/tickets/cursor.json?start_time={t0}"),
    )
    .await;
    assert_eq!(later.tickets.len(), since);
    // Resuming at the end gives nothing new, and the same cursor back.
    let again = resume(&f, &all.after_cursor).await;
    assert!(again.tickets.is_empty());
    assert_eq!(again.after_cursor, all.after_cursor);
    // Errors.
    for bad in [
        "/api/v2/incremental/tickets/cursor.json",
        "/api/v2/incremental/tickets/cursor.json?start_time=yesterday",
        "/api/v2/incremental/tickets/cursor.json?cursor=%%%",
        "/api/v2/incremental/tickets/cursor.json?cursor=bm9wZQ",
        "/api/v2/incremental/tickets/cursor.json?start_time=0&per_page=0",
    ] {
        let r = get(&f, bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"], "InvalidValue", "{bad}");
    }
}

#[tokio::test]
async fn changes_after_a_cursor_show_up_when_resuming() {
    let f = fake_with(opts()).await;
    let first = export(&f, "/api/v2/incremental/tickets/cursor.json?start_time=0").await;
    assert_eq!(first.tickets.len(), 500);
    let report = f.mutate(ZendeskMutation {
        update: 3,
        delete: 2,
        create: 2,
        comment: 2,
    });
    assert_eq!(
        (
            report.updated.len(),
            report.deleted.len(),
            report.created.len(),
            report.commented.len()
        ),
        (3, 2, 2, 2)
    );
    assert_eq!(report.created, vec![501, 502]);
    let truth = f.truth();
    assert_eq!(truth.tickets.len(), 500);
    assert_eq!(truth.deleted_ticket_ids, report.deleted);
    let planted: Vec<u64> = truth
        .tickets
        .iter()
        .filter(|t| t.description.contains(PLANTED_PHRASE))
        .map(|t| t.id)
        .collect();
    assert_eq!(planted.len(), 3);
    assert!(report.deleted.iter().all(|id| !planted.contains(id)));

    let next = resume(&f, &first.after_cursor).await;
    let mut touched: BTreeSet<u64> = report
        .updated
        .iter()
        .chain(&report.deleted)
        .copied()
        .collect();
    touched.extend(report.created.iter().chain(&report.commented));
    let got: Vec<u64> = next
        .tickets
        .iter()
        .filter_map(|t| t["id"].as_u64())
        .collect();
    assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), touched);
    assert_eq!(got.len(), touched.len(), "each changed ticket once");
    for t in &next.tickets {
        let id = t["id"].as_u64().unwrap_or(0);
        if report.deleted.contains(&id) {
            assert_eq!(t["status"], "deleted");
        } else {
            let want = truth
                .tickets
                .iter()
                .find(|w| w.id == id)
                .expect("live ticket");
            assert_ticket_matches(t, want);
            assert!(
                want.updated_at.as_str() > first.tickets[499]["updated_at"].as_str().unwrap_or("")
            );
        }
    }
    for id in &report.updated {
        let want = truth.tickets.iter().find(|w| w.id == *id).expect("updated");
        assert!(want.subject.ends_with("(rev 1)"), "{}", want.subject);
    }
    for (tid, cid) in report.commented.iter().zip(&report.comment_ids) {
        let want = truth
            .tickets
            .iter()
            .find(|w| w.id == *tid)
            .expect("commented");
        assert_eq!(want.comments.last().map(|c| c.id), Some(*cid));
        assert_eq!(
            want.comments.last().map(|c| c.created_at.as_str()),
            Some(want.updated_at.as_str())
        );
    }
    // Deleted tickets are gone from the single-ticket routes, but stay in a full export.
    let gone = get(&f, &format!("/api/v2/tickets/{}.json", report.deleted[0])).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.json(),
        json!({"error": "RecordNotFound", "description": "Not found"})
    );
    let gone = get(
        &f,
        &format!("/api/v2/tickets/{}/comments.json", report.deleted[0]),
    )
    .await;
    assert_eq!(gone.status, 404);
    let full = export(&f, "/api/v2/incremental/tickets/cursor.json?start_time=0").await;
    assert_eq!(full.tickets.len(), 502);
    assert_eq!(
        full.tickets
            .iter()
            .filter(|t| t["status"] == "deleted")
            .count(),
        2
    );
    let live = export(
        &f,
        "/api/v2/incremental/tickets/cursor.json?start_time=0&exclude_deleted=true",
    )
    .await;
    assert_eq!(live.tickets.len(), 500);
    // A second change to the same ticket shows it once more, after the stored cursor.
    let again = f.mutate(ZendeskMutation {
        update: 1,
        ..ZendeskMutation::default()
    });
    let third = resume(&f, &next.after_cursor).await;
    let ids: Vec<u64> = third
        .tickets
        .iter()
        .filter_map(|t| t["id"].as_u64())
        .collect();
    assert_eq!(ids, again.updated);
    // Control route.
    let r = http(
        f.addr,
        "POST",
        "/_fake/mutate",
        None,
        Some(r#"{"create":1,"update_articles":1}"#),
    )
    .await
    .expect("mutate");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["created"], json!([503]));
    assert_eq!(
        r.json()["articles_updated"].as_array().map(Vec::len),
        Some(1)
    );
    let bad = http(
        f.addr,
        "POST",
        "/_fake/mutate",
        None,
        Some(r#"{"create":"x"}"#),
    )
    .await
    .expect("mutate");
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn recent_changes_are_held_back() {
    let f = fake_with(ZendeskOptions::default()).await;
    let first = export(&f, "/api/v2/incremental/tickets/cursor.json?start_time=0").await;
    assert_eq!(first.tickets.len(), 500, "seeded data is old enough");
    let updated = f.update_tickets(2);
    let commented = f.comment_tickets(1);
    let held = resume(&f, &first.after_cursor).await;
    assert!(
        held.tickets.is_empty(),
        "changes younger than 60 s are excluded"
    );
    assert_eq!(held.after_cursor, first.after_cursor);
    let ev_path = |t: i64| {
        format!("/api/v2/incremental/ticket_events.json?start_time={t}&include=comment_events")
    };
    let now = now_us() / US;
    let ev = get_ok(&f, &ev_path(now - 5)).await;
    assert_eq!(ev["count"], 0);

    let r = http(
        f.addr,
        "POST",
        "/_fake/config",
        None,
        Some(r#"{"recent_exclusion_secs":0}"#),
    )
    .await
    .expect("config");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["recent_exclusion_secs"], 0);
    let shown = resume(&f, &first.after_cursor).await;
    let mut want: Vec<u64> = updated.iter().chain(&commented).copied().collect();
    want.sort_unstable();
    want.dedup();
    let mut got: Vec<u64> = shown
        .tickets
        .iter()
        .filter_map(|t| t["id"].as_u64())
        .collect();
    got.sort_unstable();
    assert_eq!(got, want);
    let ev = get_ok(&f, &ev_path(now - 5)).await;
    assert_eq!(ev["count"], 1);
    assert_eq!(ev["ticket_events"][0]["ticket_id"], commented[0]);
    for bad in [
        r#"{"recent_exclusion_secs":null}"#,
        r#"{"nope":1}"#,
        "[]",
        r#"{"incremental_limit_per_minute":-1}"#,
    ] {
        let r = http(f.addr, "POST", "/_fake/config", None, Some(bad))
            .await
            .expect("config");
        assert_eq!(r.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn ticket_events_carry_every_comment() {
    let f = fake_with(ZendeskOptions {
        tickets: 1_200,
        ..opts()
    })
    .await;
    let truth = f.truth();
    let want: BTreeMap<u64, (u64, &TruthComment)> = truth
        .tickets
        .iter()
        .flat_map(|t| t.comments.iter().map(move |c| (c.id, (t.id, c))))
        .collect();
    assert!(want.len() > 2_000, "{} comments", want.len());
    let mut got: BTreeMap<u64, Value> = BTreeMap::new();
    let (mut path, mut pages, mut last_end) = (
        "/api/v2/incremental/ticket_events.json?start_time=0&include=comment_events".to_owned(),
        0,
        0,
    );
    loop {
        let v = get_ok(&f, &path).await;
        pages += 1;
        let events = v["ticket_events"].as_array().expect("ticket_events");
        assert!(events.len() <= 1_000);
        assert_eq!(v["count"], events.len());
        for e in events {
            assert_eq!(e["event_type"], "Update");
            let child = &e["child_events"][0];
            assert_eq!(child["event_type"], "Comment");
            assert_eq!(e["timestamp"].as_i64(), Some(secs_of(&child["created_at"])));
            let id = child["id"].as_u64().expect("comment id");
            let mut c = child.clone();
            c["ticket_id"] = e["ticket_id"].clone();
            got.insert(id, c);
        }
        let end = v["end_time"].as_i64().expect("end_time");
        assert!(end >= last_end);
        last_end = end;
        if v["end_of_stream"] == true {
            assert!(v["next_page"].is_null());
            break;
        }
        let next = rel(&f, &v["next_page"]);
        assert!(next.contains(&format!("start_time={end}")));
        path = next;
    }
    assert!(pages >= 3);
    assert_eq!(got.len(), want.len());
    for (id, (ticket_id, c)) in &want {
        let g = &got[id];
        assert_eq!(g["ticket_id"], *ticket_id);
        assert_eq!(g["body"], c.body.as_str());
        assert_eq!(g["plain_body"], c.body.as_str());
        assert_eq!(g["public"], c.public);
        assert_eq!(g["author_id"], c.author_id);
        assert_eq!(g["created_at"], c.created_at.as_str());
        assert!(
            g["html_body"]
                .as_str()
                .is_some_and(|h| h.starts_with("<div class=\"zd-comment\""))
        );
    }
    // Without include=comment_events the events carry no comment.
    let bare = get_ok(&f, "/api/v2/incremental/ticket_events.json?start_time=0").await;
    assert_eq!(bare["ticket_events"][0]["child_events"], json!([]));
    assert_eq!(
        get(&f, "/api/v2/incremental/ticket_events.json")
            .await
            .status,
        400
    );
    // New comments appear when resuming from the last end_time.
    let report = f.mutate(ZendeskMutation {
        comment: 2,
        ..ZendeskMutation::default()
    });
    let v = get_ok(
        &f,
        &format!(
            "/api/v2/incremental/ticket_events.json?start_time={last_end}&include=comment_events"
        ),
    )
    .await;
    let fresh: Vec<u64> = v["ticket_events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["child_events"][0]["id"].as_u64())
        .filter(|id| !got.contains_key(id))
        .collect();
    assert_eq!(fresh, report.comment_ids);
}

fn secs_of(rfc: &Value) -> i64 {
    let s = rfc.as_str().expect("timestamp");
    let ms = parse_date_minute(&s[..16].replace('T', " ")).expect("date") / 1000;
    ms + s[17..19].parse::<i64>().expect("seconds")
}

#[tokio::test]
async fn comments_endpoint_pages_by_cursor_and_offset() {
    let f = fake_with(opts()).await;
    let truth = f.truth();
    let t = truth
        .tickets
        .iter()
        .max_by_key(|t| t.comments.len())
        .expect("tickets");
    assert!(t.comments.len() >= 3);
    let (mut path, mut got) = (
        format!("/api/v2/tickets/{}/comments.json?page[size]=1", t.id),
        Vec::new(),
    );
    loop {
        let v = get_ok(&f, &path).await;
        got.extend(v["comments"].as_array().expect("comments").iter().cloned());
        if v["meta"]["has_more"] != true {
            break;
        }
        path = rel(&f, &v["links"]["next"]);
    }
    assert_eq!(got.len(), t.comments.len());
    for (g, w) in got.iter().zip(&t.comments) {
        assert_eq!(g["id"], w.id);
        assert_eq!(g["type"], "Comment");
        assert_eq!(g["body"], w.body.as_str());
        assert_eq!(g["public"], w.public);
        assert_eq!(g["author_id"], w.author_id);
        assert_eq!(g["created_at"], w.created_at.as_str());
    }
    assert_eq!(got[0]["body"], t.description.as_str());
    let offset = get_ok(&f, &format!("/api/v2/tickets/{}/comments.json", t.id)).await;
    assert_eq!(offset["count"], t.comments.len());
    assert_eq!(
        offset["comments"].as_array().map(Vec::len),
        Some(t.comments.len())
    );
    assert!(offset["next_page"].is_null());
    let one = get_ok(&f, &format!("/api/v2/tickets/{}.json", t.id)).await;
    assert_ticket_matches(&one["ticket"], t);
    for bad in [
        "/api/v2/tickets/999999.json",
        "/api/v2/tickets/abc.json",
        "/api/v2/tickets/0/comments.json",
    ] {
        assert_eq!(get(&f, bad).await.status, 404, "{bad}");
    }
    let bad_cursor = get(
        &f,
        &format!("/api/v2/tickets/{}/comments.json?page[after]=zzz", t.id),
    )
    .await;
    assert_eq!(bad_cursor.status, 400);
}

#[tokio::test]
async fn help_center_lists_and_exports_articles() {
    let f = fake_with(ZendeskOptions {
        articles: 230,
        ..opts()
    })
    .await;
    let truth = f.truth();
    assert_eq!(truth.articles.len(), 230);
    let (mut path, mut listed, mut pages) = (
        "/api/v2/help_center/articles.json".to_owned(),
        Vec::new(),
        0,
    );
    loop {
        let v = get_ok(&f, &path).await;
        pages += 1;
        assert_eq!(v["count"], 230);
        listed.extend(v["articles"].as_array().expect("articles").iter().cloned());
        if v["next_page"].is_null() {
            break;
        }
        path = rel(&f, &v["next_page"]);
    }
    assert_eq!(pages, 8, "30 per page");
    assert_eq!(listed.len(), 230);
    for (g, w) in listed.iter().zip(&truth.articles) {
        assert_eq!(g["id"], w.id);
        assert_eq!(g["title"], w.title.as_str());
        assert_eq!(g["body"], w.body_html.as_str());
        assert_eq!(g["html_url"], w.html_url.as_str());
        assert_eq!(g["updated_at"], w.updated_at.as_str());
        assert_eq!(g["locale"], "en-us");
        assert_eq!(g["draft"], false);
    }
    let text = &truth.articles[0].body_text;
    assert!(
        !text.contains("<p>") && text.contains("<admin only>") && text.contains(" & "),
        "{text}"
    );
    let one = get_ok(
        &f,
        &format!("/api/v2/help_center/articles/{}.json", truth.articles[3].id),
    )
    .await;
    assert_eq!(one["article"]["title"], truth.articles[3].title.as_str());
    assert_eq!(
        get(&f, "/api/v2/help_center/articles/1.json").await.status,
        404
    );

    let (mut path, mut seen, mut pages) = (
        "/api/v2/help_center/incremental/articles.json?start_time=0".to_owned(),
        BTreeSet::new(),
        0,
    );
    let end = loop {
        let v = get_ok(&f, &path).await;
        pages += 1;
        let arts = v["articles"].as_array().expect("articles");
        assert!(arts.len() <= 100);
        assert_eq!(v["count"], arts.len());
        seen.extend(arts.iter().filter_map(|a| a["id"].as_u64()));
        if v["next_page"].is_null() {
            break v["end_time"].as_i64().expect("end_time");
        }
        path = rel(&f, &v["next_page"]);
    };
    assert_eq!(pages, 3);
    assert_eq!(seen, truth.articles.iter().map(|a| a.id).collect());
    let changed = f.update_articles(2);
    let v = get_ok(
        &f,
        &format!("/api/v2/help_center/incremental/articles.json?start_time={end}"),
    )
    .await;
    let ids: BTreeSet<u64> = v["articles"]
        .as_array()
        .expect("articles")
        .iter()
        .filter_map(|a| a["id"].as_u64())
        .collect();
    assert!(
        changed.iter().all(|id| ids.contains(id)),
        "{ids:?} {changed:?}"
    );
    assert_eq!(
        get(&f, "/api/v2/help_center/incremental/articles.json")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn search_finds_the_planted_phrase_in_tickets_and_articles() {
    let f = fake_with(opts()).await;
    let truth = f.truth();
    let v = get_ok(
        &f,
        &format!("/api/v2/search.json?query={}", enc(PLANTED_PHRASE)),
    )
    .await;
    assert_eq!(v["count"], 5);
    let results = v["results"].as_array().expect("results");
    let tickets: BTreeSet<u64> = results
        .iter()
        .filter(|r| r["result_type"] == "ticket")
        .filter_map(|r| r["id"].as_u64())
        .collect();
    let articles: BTreeSet<u64> = results
        .iter()
        .filter(|r| r["result_type"] == "article")
        .filter_map(|r| r["id"].as_u64())
        .collect();
    let want_t: BTreeSet<u64> = truth
        .tickets
        .iter()
        .filter(|t| t.description.contains(PLANTED_PHRASE))
        .map(|t| t.id)
        .collect();
    let want_a: BTreeSet<u64> = truth
        .articles
        .iter()
        .filter(|a| a.body_text.contains(PLANTED_PHRASE))
        .map(|a| a.id)
        .collect();
    assert_eq!((tickets.len(), articles.len()), (3, 2));
    assert_eq!((tickets, articles), (want_t, want_a));
    assert!(v["next_page"].is_null());
    let only = |q: &str| format!("/api/v2/search.json?query={}", enc(q));
    assert_eq!(
        get_ok(&f, &only(&format!("type:ticket {PLANTED_PHRASE}"))).await["count"],
        3
    );
    assert_eq!(
        get_ok(
            &f,
            &only(&format!(
                "type:article \"{}\"",
                PLANTED_PHRASE.to_uppercase()
            ))
        )
        .await["count"],
        2
    );
    assert_eq!(get_ok(&f, &only("CANARY planted")).await["count"], 5);
    let open = truth.tickets.iter().filter(|t| t.status == "open").count();
    let v = get_ok(&f, &only("type:ticket status:open")).await;
    assert_eq!(v["count"], open);
    assert!(
        v["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["status"] == "open")
    );
    assert_eq!(get(&f, "/api/v2/search.json").await.status, 400);
    assert_eq!(get(&f, &only("status:bogus")).await.status, 400);
    // Deleted tickets drop out of search.
    let gone = f.delete_tickets(10);
    let v = get_ok(&f, &only("type:ticket")).await;
    assert_eq!(v["count"], 500 - gone.len());
}

#[tokio::test]
async fn search_stops_at_one_thousand_results() {
    let f = fake_with(ZendeskOptions {
        tickets: 1_500,
        ..opts()
    })
    .await;
    let q = "/api/v2/search.json?query=type%3Aticket";
    let page10 = get_ok(&f, &format!("{q}&page=10&per_page=100")).await;
    assert_eq!(page10["count"], 1_500, "count is the true total");
    assert_eq!(page10["results"].as_array().map(Vec::len), Some(100));
    let next = rel(&f, &page10["next_page"]);
    let r = get(&f, &next).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid");
    assert!(r.json()["description"].is_string());
    assert_eq!(
        get(&f, &format!("{q}&page=20&per_page=50")).await.status,
        200
    );
    assert_eq!(
        get(&f, &format!("{q}&page=21&per_page=50")).await.status,
        422
    );
    // per_page above 100 is clamped.
    let v = get_ok(&f, &format!("{q}&per_page=500")).await;
    assert_eq!(v["results"].as_array().map(Vec::len), Some(100));
    // Paging with the default page size reaches exactly 1000 distinct tickets before the 422.
    let (mut path, mut seen) = (q.to_owned(), BTreeSet::new());
    loop {
        let r = get(&f, &path).await;
        if r.status == 422 {
            break;
        }
        let v = r.json();
        seen.extend(
            v["results"]
                .as_array()
                .expect("results")
                .iter()
                .filter_map(|x| x["id"].as_u64()),
        );
        path = rel(&f, &v["next_page"]);
    }
    assert_eq!(seen.len(), 1_000);
}

#[tokio::test]
async fn incremental_endpoints_share_a_per_minute_limit() {
    let f = fake_with(ZendeskOptions {
        incremental_limit_per_minute: Some(3),
        ..opts()
    })
    .await;
    let paths = [
        "/api/v2/incremental/tickets/cursor.json?start_time=0&per_page=10",
        "/api/v2/incremental/ticket_events.json?start_time=0",
        "/api/v2/help_center/incremental/articles.json?start_time=0",
    ];
    for (i, p) in paths.iter().enumerate() {
        let r = get(&f, p).await;
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(r.header("x-rate-limit"), Some("3"));
        assert_eq!(
            r.header("x-rate-limit-remaining"),
            Some((2 - i).to_string().as_str())
        );
    }
    let r = get(&f, paths[0]).await;
    assert_eq!(r.status, 429);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("x-rate-limit"), Some("3"));
    assert_eq!(r.header("x-rate-limit-remaining"), Some("0"));
    assert_eq!(r.json()["error"], "APIRateLimitExceeded");
    // Other endpoints are not limited.
    assert_eq!(get(&f, "/api/v2/tickets/1.json").await.status, 200);
    f.set_incremental_limit(None);
    assert_eq!(get(&f, paths[0]).await.status, 200);
    let r = http(
        f.addr,
        "POST",
        "/_fake/config",
        None,
        Some(r#"{"incremental_limit_per_minute":1}"#),
    )
    .await
    .expect("config");
    assert_eq!(r.json()["incremental_limit_per_minute"], 1);
    assert_eq!(get(&f, paths[1]).await.status, 200);
    assert_eq!(get(&f, paths[2]).await.status, 429);
    let r = http(
        f.addr,
        "POST",
        "/_fake/config",
        None,
        Some(r#"{"incremental_limit_per_minute":null,"rate_limit_every":2}"#),
    )
    .await
    .expect("config");
    assert_eq!(r.status, 200);
    assert_eq!(get(&f, paths[0]).await.status, 200);
    let injected = get(&f, paths[0]).await;
    assert_eq!(injected.status, 429);
    assert_eq!(injected.header("retry-after"), Some("1"));
    f.set_rate_limit_every(None);
    assert_eq!(get(&f, paths[0]).await.status, 200);
    let r = http(f.addr, "POST", "/_fake/shutdown", None, None)
        .await
        .expect("shutdown");
    assert_eq!(r.status, 202);
    f.shutdown().await;
    assert!(http(f.addr, "GET", paths[0], AUTH, None).await.is_err());
}

#[tokio::test]
async fn hundred_thousand_tickets_export_quickly() {
    let started = Instant::now();
    let f = fake_with(ZendeskOptions {
        tickets: 100_000,
        ..opts()
    })
    .await;
    let generated = started.elapsed();
    let one = Instant::now();
    let page = get_ok(&f, "/api/v2/incremental/tickets/cursor.json?start_time=0").await;
    let one_page = one.elapsed();
    assert_eq!(page["tickets"].as_array().map(Vec::len), Some(1_000));
    let t = Instant::now();
    let all = export(&f, "/api/v2/incremental/tickets/cursor.json?start_time=0").await;
    let exported = t.elapsed();
    assert_eq!(all.pages, 100);
    assert_eq!(all.tickets.len(), 100_000);
    let ids: BTreeSet<u64> = all
        .tickets
        .iter()
        .filter_map(|t| t["id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 100_000);
    assert_eq!(ids.first().copied(), Some(1));
    assert_eq!(ids.last().copied(), Some(100_000));
    let s = Instant::now();
    let v = get_ok(
        &f,
        &format!("/api/v2/search.json?query={}", enc(PLANTED_PHRASE)),
    )
    .await;
    let searched = s.elapsed();
    assert_eq!(v["count"], 5);
    eprintln!(
        "100k tickets: generated in {generated:?}; first 1000-ticket page {one_page:?} (incl. client parse); \
         full export (100 pages) {exported:?}; search {searched:?}"
    );
}

#[test]
fn same_seed_same_data() {
    let a = generate(&ZendeskOptions::default());
    let b = generate(&ZendeskOptions::default());
    let c = generate(&ZendeskOptions {
        seed: 12,
        ..ZendeskOptions::default()
    });
    let key = |d: &Data| {
        d.tickets
            .iter()
            .map(|t| (t.subject.clone(), t.description().to_owned(), t.updated_us))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&a), key(&b));
    assert_ne!(key(&a), key(&c));
    assert_eq!(
        a.events.len(),
        a.tickets.iter().map(|t| t.comments.len()).sum::<usize>()
    );
    let planted = a
        .tickets
        .iter()
        .filter(|t| t.description().contains(PLANTED_PHRASE))
        .count();
    assert_eq!(planted, 3);
    assert!(a.last_us < now_us(), "seeded data is in the past");
}

#[test]
fn cursors_round_trip_and_time_pages_advance() {
    let pos = (1_700_000_000_123_456, 42);
    assert_eq!(decode_export_cursor(&encode_export_cursor(pos)), Some(pos));
    let spaced = encode_export_cursor(pos).replace('+', " ");
    assert_eq!(decode_export_cursor(&spaced), Some(pos));
    assert_eq!(decode_export_cursor("garbage"), None);
    assert_eq!(decode_comment_cursor(&encode_comment_cursor(7)), Some(7));
    // A full page inside one second moves past that second; otherwise end_time is the last second.
    let same: Vec<(i64, u32)> = (0..5)
        .map(|i| (10 * US + i, i as u32))
        .chain([(11 * US, 9)])
        .collect();
    let (page, end, eos) = time_page(same.iter().copied(), 0, 3);
    assert_eq!((page.len(), end, eos), (5, 11, false));
    let spread: Vec<(i64, u32)> = (0..6).map(|i| (i * US, i as u32)).collect();
    let (page, end, eos) = time_page(spread.iter().copied(), 0, 4);
    assert_eq!((page, end, eos), (vec![0, 1, 2, 3], 3, false));
    let (page, end, eos) = time_page(std::iter::empty::<(i64, u32)>(), 77, 4);
    assert_eq!((page.len(), end, eos), (0, 77, true));
}
