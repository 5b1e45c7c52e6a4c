//! The permission matrix through MCP sign-ins: people who reach `/mcp` with an access token of
//! the company's identity provider (the OpenID provider fake) get through MCP `search` exactly
//! what their upstream identity may open — for Confluence (a page readable by one account and
//! by a group, restricted through its parent) and Microsoft Graph (a mailbox's message, its owner
//! only) — as REST search does, and never anything of someone else.

use std::collections::BTreeSet;

use airlock_tests::*;
use fake_saas::confluence::PLANTED_PHRASE;
use fake_saas::{
    ACCOUNT_IDS, ConfluenceOptions, MsGraphOptions, TruthPage, USER_EMAILS, spawn_confluence,
    spawn_msgraph, spawn_oidc,
};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

const RESOURCE: &str = "https://airlock.test/mcp";

fn ids_of(hits: &Value) -> BTreeSet<String> {
    hits.as_array()
        .unwrap_or_else(|| panic!("hits: {hits}"))
        .iter()
        .filter_map(|h| h["id"].as_str().map(str::to_owned))
        .collect()
}

async fn mcp_search(d: &Daemon, token: &str, connector: &str, query: &str) -> BTreeSet<String> {
    let c = mcp_http_client(d, token).await.expect("MCP session");
    let args = json!({"query": query, "connector": connector, "limit": 50});
    let params = CallToolRequestParams::new("search")
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let r = c.call_tool(params).await.expect("tools/call");
    c.cancel().await.expect("close");
    let v = r.structured_content.unwrap_or_else(|| {
        let text: String = r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("search: {text}"))
    });
    ids_of(&v["hits"])
}

async fn rest_search(d: &Daemon, token: &str, connector: &str, query: &str) -> BTreeSet<String> {
    let body = json!({"query": query, "connector": connector, "limit": 50});
    let url = format!("{}/v1/search", d.base);
    let (status, v) = http_auth("POST", &url, Some(token), Some(body.to_string())).await;
    assert_eq!(status, 200, "{v}");
    ids_of(&v["hits"])
}

fn sync(env: &Env, connector: &str, stream: &str) {
    let out = env.airlock(&["sync", connector, "--stream", stream], None);
    assert!(
        out.status.success(),
        "{connector} {stream}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_signed_in_through_oauth_find_through_mcp_exactly_what_their_upstream_lets_them_open()
 {
    let idp = spawn_oidc("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("oidc fake");
    let cf = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("confluence fake");
    let opts = MsGraphOptions::default();
    let graph = spawn_msgraph("127.0.0.1:0".parse().expect("addr"), opts.clone())
        .await
        .expect("graph fake");

    // Confluence: a planted page under a parent restricted to Di and the `engineering` group.
    let page: TruthPage = cf
        .truth()
        .pages
        .iter()
        .find(|p| {
            p.body_text.contains(PLANTED_PHRASE) && p.parent_id.is_some() && p.readers.len() == 6
        })
        .cloned()
        .expect("an open planted page with a parent");
    let parent = page.parent_id.clone().expect("parent");
    cf.set_space_read(&page.space_key, &[], &["confluence-users", "engineering"]);
    cf.restrict_page(&parent, &[ACCOUNT_IDS[3]], &["engineering"]);

    // Graph: the first mailbox's message, readable by its owner only.
    let t = graph.truth();
    let mailbox = t.mailboxes[0].clone();
    let owner_id = t
        .users
        .iter()
        .find(|u| u["userPrincipalName"] == mailbox.as_str())
        .and_then(|u| u["id"].as_str())
        .expect("mailbox user")
        .to_owned();
    let message = &t.messages[&mailbox][0];
    let message_id = format!("message:{mailbox}/{}", message["id"].as_str().expect("id"));
    let subject = message["subject"].as_str().expect("subject").to_owned();

    let graph_config =
        msgraph_config(&graph, &opts.client_id).replacen("permissions = \"tenant\"\n", "", 1);
    let config = format!(
        "{}{graph_config}[connector.users]\n\"owner@people.example\" = \"{owner_id}\"\n\
         \n[oauth]\nissuer = \"{}\"\nresource = \"{RESOURCE}\"\nallow_private = true\nallow_insecure = true\n",
        confluence_permissions_config(&cf.base_url),
        idp.issuer()
    );
    let env = Env::new(&config);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    env.set_secret("graph_secret", &opts.client_secret);
    sync(&env, "confluence", "pages");
    sync(&env, "msgraph", "messages");
    let d = env.serve();

    // Each person's token, as the identity provider would issue it for this server.
    let now = chrono::Utc::now().timestamp();
    let token = |name: &str, groups: &[&str]| {
        idp.mint(
            &json!({"iss": idp.issuer(), "aud": RESOURCE, "sub": format!("sub-{name}"),
            "preferred_username": name, "groups": groups, "scp": "search read",
            "iat": now, "nbf": now - 5, "exp": now + 600}),
        )
    };
    let di = token(USER_EMAILS[3], &[]);
    let bo = token("bo@contoso.com", &["engineering"]);
    let fay = token(USER_EMAILS[5], &[]);
    let owner = token("owner@people.example", &[]);

    for (who, tok, page_seen, message_seen) in [
        ("Di (by account)", &di, true, false),
        ("Bo (by group)", &bo, true, false),
        ("Fay (neither)", &fay, false, false),
        ("the mailbox owner", &owner, false, true),
    ] {
        for (connector, query, id, seen) in [
            ("confluence", PLANTED_PHRASE, page.id.as_str(), page_seen),
            (
                "msgraph",
                subject.as_str(),
                message_id.as_str(),
                message_seen,
            ),
        ] {
            let mcp = mcp_search(&d, tok, connector, query).await;
            let rest = rest_search(&d, tok, connector, query).await;
            assert_eq!(
                mcp.contains(id),
                seen,
                "{who}, {connector} through MCP: {mcp:?}"
            );
            assert_eq!(mcp, rest, "{who}, {connector}: MCP and REST agree");
        }
    }
    let log = d.stop();
    for t in [&di, &bo, &fay, &owner] {
        assert!(!log.contains(t.as_str()), "an access token in the log");
    }
}
