//! Tests of the Jira fake: JQL search and paging, JSM envelopes, comments, auth and control routes.

use serde_json::json;

use super::*;
use crate::testutil::http;

const AUTH: Option<(&str, &str)> = Some(("demo@example.com", "demo-jira-token"));

async fn fake() -> RunningFake<Jira> {
    spawn_jira("127.0.0.1:0".parse().unwrap(), JiraOptions::default())
        .await
        .unwrap()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn jql_paging_covers_every_issue_once_in_update_order() {
    let f = fake().await;
    let jql = enc("updated >= \"1970/01/01 00:00\" ORDER BY updated ASC");
    let (mut keys, mut token, mut last) = (Vec::new(), String::new(), 0);
    loop {
        let path = format!(
            "/rest/api/3/search/jql?jql={jql}&maxResults=37&fields=updated&nextPageToken={token}"
        );
        let r = http(f.addr, "GET", &path, AUTH, None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        for i in v["issues"].as_array().unwrap() {
            let u = i["fields"]["updated"].as_str().unwrap().to_owned();
            assert!(u.ends_with("+0000"));
            keys.push(i["key"].as_str().unwrap().to_owned());
            last += 1;
        }
        if v["isLast"] == true {
            assert!(v.get("nextPageToken").is_none());
            break;
        }
        token = v["nextPageToken"].as_str().unwrap().to_owned();
    }
    assert_eq!(last, 200);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 200);
    // Only `id` by default; unbounded JQL, the old endpoint and bad auth are refused.
    let r = http(
        f.addr,
        "GET",
        &format!("/rest/api/3/search/jql?jql={}", enc("key = SD-4")),
        AUTH,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.json()["issues"][0]["fields"], json!({}));
    let r = http(
        f.addr,
        "GET",
        &format!("/rest/api/3/search/jql?jql={}", enc("ORDER BY updated ASC")),
        AUTH,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Unbounded JQL"));
    let r = http(
        f.addr,
        "GET",
        "/rest/api/3/search?jql=project%3DSD",
        AUTH,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 410);
    let r = http(
        f.addr,
        "GET",
        "/rest/api/3/myself",
        Some(("demo@example.com", "x")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
    let r = http(
        f.addr,
        "GET",
        &format!(
            "/rest/api/3/search/jql?jql={}&fields=summary",
            enc(&format!("text ~ \"{PLANTED_PHRASE}\""))
        ),
        AUTH,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.json()["issues"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn jsm_requests_comments_and_articles() {
    let f = fake().await;
    let r = http(
        f.addr,
        "GET",
        "/rest/servicedeskapi/request?start=190&limit=50",
        AUTH,
        None,
    )
    .await
    .unwrap();
    let v = r.json();
    assert_eq!(
        (v["size"].as_u64(), v["isLastPage"].as_bool()),
        (Some(10), Some(true))
    );
    assert_eq!(v["values"][0]["issueKey"], "SD-191");
    let r = http(
        f.addr,
        "POST",
        "/rest/servicedeskapi/request/SD-5/comment",
        AUTH,
        Some(r#"{"body":"hello there","public":false}"#),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let t = f.truth();
    let c = t.requests[4].comments.last().unwrap();
    assert_eq!((c.body.as_str(), c.public), ("hello there", false));
    let r = http(
        f.addr,
        "GET",
        "/rest/servicedeskapi/request/SD-5/comment?public=false",
        AUTH,
        None,
    )
    .await
    .unwrap();
    assert!(
        r.json()["values"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["public"] == false)
    );
    let r = http(
        f.addr,
        "GET",
        "/rest/servicedeskapi/request/SD-999/comment",
        AUTH,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);
    assert!(r.json()["errorMessage"].is_string());
    let r = http(
        f.addr,
        "GET",
        "/rest/servicedeskapi/knowledgebase/article",
        AUTH,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    let r = http(
        f.addr,
        "GET",
        "/rest/servicedeskapi/knowledgebase/article?query=a&limit=100",
        AUTH,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.json()["size"], 30);
    f.set_rate_limit_every(Some(1));
    let r = http(f.addr, "GET", "/rest/api/3/myself", AUTH, None)
        .await
        .unwrap();
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
}
