//! Upstream identities resolved through a connector's `resolve-identity` action, end to end with
//! the real daemon, the Graph connector and the Graph fake: a person known only by their user
//! principal name (no `[connector.users]`) who is in a group a SharePoint item grants reads it
//! through REST live search, `get` and MCP; removed from the group upstream, they stop reading
//! it once `identity_ttl` has passed; when Graph fails to list their groups, they keep only
//! their static identities (fail closed). `whoami` shows what was resolved, and every lookup is
//! an audited call under the person.

use std::collections::BTreeSet;
use std::time::Duration;

use airlock_tests::*;
use fake_saas::{FaultKind, FaultPlan, MsGraphOptions, spawn_msgraph};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

/// How long resolved identities are kept in this test's config.
const TTL: Duration = Duration::from_secs(2);

/// The ids of the live hits of a REST search.
async fn live_hits(d: &Daemon, token: &str, query: &str) -> BTreeSet<String> {
    let body = json!({"query": query, "connector": "msgraph", "limit": 50, "live": true});
    let url = format!("{}/v1/search", d.base);
    let (status, v) = http_auth("POST", &url, Some(token), Some(body.to_string())).await;
    assert_eq!(status, 200, "{v}");
    ids(&v["hits"])
}

fn ids(hits: &Value) -> BTreeSet<String> {
    let hits = hits.as_array().map(Vec::as_slice).unwrap_or_default();
    hits.iter()
        .filter_map(|h| h["id"].as_str().map(str::to_owned))
        .collect()
}

/// The ids of an MCP `search` with live results.
async fn mcp_hits(d: &Daemon, token: &str, query: &str) -> BTreeSet<String> {
    let c = mcp_http_client(d, token).await.expect("mcp session");
    let args = json!({"query": query, "connector": "msgraph", "limit": 50, "live": true});
    let params = CallToolRequestParams::new("search")
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let r = c.call_tool(params).await.expect("tools/call");
    let text: String = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    let v = r
        .structured_content
        .unwrap_or_else(|| serde_json::from_str(&text).unwrap_or(Value::Null));
    c.cancel().await.expect("close");
    ids(&v["hits"])
}

/// Whether `get` through invoke returns the document.
async fn gets(d: &Daemon, token: &str, id: &str) -> bool {
    let url = format!("{}/v1/connectors/msgraph/invoke", d.base);
    let body = json!({"op": "get", "input": {"id": id}}).to_string();
    let (status, v) = http_auth("POST", &url, Some(token), Some(body)).await;
    assert!(matches!(status, 200 | 404), "{status} {v}");
    status == 200
}

/// What the person reads of the item: (REST live search, get, MCP).
async fn sight(d: &Daemon, token: &str, query: &str, id: &str) -> (bool, bool, bool) {
    (
        live_hits(d, token, query).await.contains(id),
        gets(d, token, id).await,
        mcp_hits(d, token, query).await.contains(id),
    )
}

async fn whoami(d: &Daemon, token: &str) -> Value {
    let (status, v) = http_auth("GET", &format!("{}/v1/whoami", d.base), Some(token), None).await;
    assert_eq!(status, 200, "{v}");
    v["connectors"]["msgraph"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_grant_reaches_the_groups_members_until_they_leave_and_fails_closed() {
    let opts = MsGraphOptions::default();
    let fake = spawn_msgraph("127.0.0.1:0".parse().expect("addr"), opts.clone())
        .await
        .expect("fake");
    let t = fake.truth();
    // A SharePoint item that grants a group, and a query that finds it alone.
    let item = t
        .drive_items
        .iter()
        .find(|i| {
            let perms = i["permissions"].as_array().expect("permissions");
            perms
                .iter()
                .any(|p| p["grantedToV2"]["group"]["id"].is_string())
        })
        .expect("an item granted to a group");
    let perms = item["permissions"].as_array().expect("permissions");
    let group = perms
        .iter()
        .find_map(|p| p["grantedToV2"]["group"]["id"].as_str())
        .expect("group id")
        .to_owned();
    let name = item["name"].as_str().expect("name");
    let query = name.split('.').next().unwrap_or(name).to_owned();
    assert_eq!(
        fake_saas::msgraph::search_matches(&t.drive_items, &query).len(),
        1,
        "the query finds only the item"
    );
    let drive = item["parentReference"]["driveId"].as_str().expect("drive");
    let doc_id = format!("drive-item:{drive}/{}", item["id"].as_str().expect("id"));
    // Two people the item's permissions do not name: one is put in the group upstream.
    let named = |u: &Value| {
        perms
            .iter()
            .any(|p| p["grantedToV2"]["user"]["id"] == u["id"])
    };
    let mut people = t.users.iter().filter(|u| !named(u));
    let (member, outsider) = (
        people.next().expect("a person"),
        people.next().expect("another"),
    );
    let upn = |u: &Value| u["userPrincipalName"].as_str().expect("upn").to_owned();
    let member_id = member["id"].as_str().expect("id").to_owned();
    fake.set_member_objects(&member_id, &[group.as_str()]);

    let config = msgraph_config(&fake, &opts.client_id).replacen(
        "permissions = \"tenant\"\n",
        &format!(
            "identity_ttl = \"{}s\"\npermission_check_ttl = \"0s\"\n",
            TTL.as_secs()
        ),
        1,
    );
    let env = Env::new(&config);
    env.set_secret("graph_secret", &opts.client_secret);
    let d = env.serve();
    let member_token = env.create_token(&upn(member), "default", &[], false);
    let outsider_token = env.create_token(&upn(outsider), "default", &[], false);

    // Resolved: the member's object id and the group, shown by whoami.
    let me = whoami(&d, &member_token).await;
    assert_eq!(me["upstream"]["status"], "resolved", "{me}");
    assert_eq!(me["upstream"]["user"], member_id.as_str(), "{me}");
    assert_eq!(me["upstream"]["groups"], json!([group]), "{me}");
    assert_eq!(me["upstream"]["ttl_secs"], TTL.as_secs(), "{me}");
    assert_eq!(me["upstream_user"], member_id.as_str(), "{me}");
    let identities = me["identities"].as_array().expect("identities");
    assert!(
        identities.contains(&json!(format!("group:{group}"))),
        "{me}"
    );
    let other = whoami(&d, &outsider_token).await;
    assert_eq!(other["upstream"]["groups"], json!([]), "{other}");

    assert_eq!(
        sight(&d, &member_token, &query, &doc_id).await,
        (true, true, true),
        "the group's member"
    );
    assert_eq!(
        sight(&d, &outsider_token, &query, &doc_id).await,
        (false, false, false),
        "not in the group"
    );

    // Removed from the group upstream: once the TTL has passed, the item is gone everywhere.
    fake.set_member_objects(&member_id, &[]);
    tokio::time::sleep(TTL + Duration::from_millis(300)).await;
    assert_eq!(
        sight(&d, &member_token, &query, &doc_id).await,
        (false, false, false),
        "removed from the group"
    );
    assert_eq!(
        whoami(&d, &member_token).await["upstream"]["groups"],
        json!([])
    );

    // Back in the group, but Graph fails to list the groups: fail closed.
    fake.set_member_objects(&member_id, &[group.as_str()]);
    fake.set_faults(FaultPlan {
        rate: 1.0,
        kinds: vec![FaultKind::BadGateway],
        paths: vec![format!("/v1.0/users/{member_id}/transitiveMemberOf")],
        ..FaultPlan::default()
    });
    tokio::time::sleep(TTL + Duration::from_millis(300)).await;
    let me = whoami(&d, &member_token).await;
    assert_eq!(me["upstream"]["status"], "failed", "{me}");
    assert_eq!(me["upstream"]["groups"], json!([]), "{me}");
    assert!(
        !me["identities"]
            .as_array()
            .expect("identities")
            .iter()
            .any(|i| i
                .as_str()
                .is_some_and(|s| s.starts_with("user:") || s.starts_with("group:"))),
        "only static identities: {me}"
    );
    assert_eq!(
        sight(&d, &member_token, &query, &doc_id).await,
        (false, false, false),
        "groups unknown"
    );
    assert!(fake.faults_injected().total > 0, "the fault was hit");
    assert!(
        d.log().contains("resolve-identity failed"),
        "the failure is logged"
    );

    // Every lookup was an audited call of the action under the person asking.
    d.stop();
    let rows = audit_rows(&env);
    let label = format!("token:{}", upn(member));
    let lookups = rows.iter().filter(|r| {
        r.event.connector == "msgraph"
            && r.event.principal.as_deref() == Some(label.as_str())
            && r.event
                .path
                .as_deref()
                .is_some_and(|p| p.ends_with("/transitiveMemberOf"))
    });
    assert!(lookups.count() >= 2, "the group lookups are audited");
}
