//! Microsoft Entra ID behind MCP authorization, with the OpenID provider fake as the issuer and
//! the Graph fake as Microsoft Graph and the Entra token endpoint:
//! - a groups overage (`_claim_names`/`_claim_sources` instead of `groups`) is resolved through
//!   Graph's `getMemberObjects` with the application credential of `[oauth.groups_overage]`
//!   (kept per person for `cache_ttl`), so a record of one of the person's groups becomes
//!   visible; without the section the person gets no group identities and the log says why;
//! - an `oauth2-obo` grant trades the signed-in person's own access token for their Graph token
//!   (on-behalf-of): a live search carries that person's token (the fake answers only what they
//!   may open), another person's token differs, an assertion for another audience, an expired one
//!   and a revoked person's one are refused with clear messages; no token reaches a log line.

use std::collections::BTreeSet;

use airlock_tests::*;
use fake_saas::{MsGraph, MsGraphOptions, Oidc, RunningFake, spawn_msgraph, spawn_oidc};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

const RESOURCE: &str = "https://airlock.test/mcp";
/// A group (Entra object id) among the hundreds a person is in.
const GROUP: &str = "0f6a7b8c-1d2e-4f30-9a4b-5c6d7e8f9a0b";
const QUERY: &str = "airlock rollout";

async fn idp() -> RunningFake<Oidc> {
    spawn_oidc("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("oidc fake")
}

async fn graph() -> RunningFake<MsGraph> {
    spawn_msgraph(
        "127.0.0.1:0".parse().expect("addr"),
        MsGraphOptions::default(),
    )
    .await
    .expect("graph fake")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An Entra v2 access token's claims for the Graph user `user` (its `id` is the `oid`), for
/// this resource, with the scopes given and no `groups` claim.
fn entra_claims(issuer: &str, user: &Value, scp: &str) -> Value {
    json!({"iss": issuer, "aud": RESOURCE, "ver": "2.0",
        "sub": format!("pairwise-{}", user["id"].as_str().unwrap_or("")),
        "oid": user["id"], "tid": "8f1d2c3b-4a59-4e68-9d7c-0b1a2f3e4d5c",
        "preferred_username": user["userPrincipalName"], "name": user["displayName"],
        "scp": scp, "iat": now(), "nbf": now() - 5, "exp": now() + 600})
}

/// The same claims with Entra's overage marker: too many groups to fit.
fn with_overage(mut claims: Value) -> Value {
    let oid = claims["oid"].as_str().unwrap_or("").to_string();
    claims["_claim_names"] = json!({"groups": "src1"});
    claims["_claim_sources"] = json!({"src1": {"endpoint":
        format!("https://graph.windows.net/8f1d2c3b-4a59-4e68-9d7c-0b1a2f3e4d5c/users/{oid}/getMemberObjects")}});
    claims
}

fn oauth_section(issuer: &str) -> String {
    format!(
        "\n[oauth]\nissuer = \"{issuer}\"\nresource = \"{RESOURCE}\"\ntenant = \"acme\"\nallow_private = true\nallow_insecure = true\n"
    )
}

fn overage_section(g: &RunningFake<MsGraph>) -> String {
    let o = MsGraphOptions::default();
    format!(
        "[oauth.groups_overage]\ntoken_url = \"{}\"\ngraph_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"secret:graph_secret\"\ncache_ttl = \"10m\"\nallow_private = true\nallow_insecure = true\n",
        g.token_url(),
        g.base_url,
        o.client_id
    )
}

/// Record ids a search through MCP finds as `token`.
async fn mcp_search(d: &Daemon, token: &str, query: &str) -> Vec<String> {
    let c = mcp_http_client(d, token).await.expect("MCP session");
    let mut params = CallToolRequestParams::new("search".to_string());
    if let Value::Object(o) = json!({"query": query}) {
        params = params.with_arguments(o);
    }
    let r = c.call_tool(params).await.expect("tools/call");
    c.cancel().await.expect("close");
    let v = r.structured_content.unwrap_or_else(|| {
        let text: String = r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    });
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("hits: {v}"))
        .iter()
        .filter_map(|h| h["id"].as_str().map(str::to_string))
        .collect()
}

fn stock(env: &Env) {
    store_docs(
        env,
        "a1",
        &[
            doc("roadmap", "Zeppelin roadmap", "zeppelin plans", &[GROUP]),
            doc(
                "other",
                "Zeppelin other",
                "zeppelin elsewhere",
                &["someone-else"],
            ),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_overage_is_resolved_through_graph_and_without_it_the_person_gets_no_groups() {
    let (idp, g) = (idp().await, graph().await);
    let user = g.truth().users[7].clone();
    let oid = user["id"].as_str().expect("id").to_string();
    g.set_member_objects(&oid, &["11111111-2222-4333-8444-555555555555", GROUP]);
    let token = idp.mint(&with_overage(entra_claims(
        &idp.issuer(),
        &user,
        "search read",
    )));

    // With [oauth.groups_overage]: Graph lists the groups, the group's record is found.
    let env = Env::new(&format!(
        "{}{}{}",
        two_tenant_config(),
        oauth_section(&idp.issuer()),
        overage_section(&g)
    ));
    env.set_secret("graph_secret", &MsGraphOptions::default().client_secret);
    stock(&env);
    let d = env.serve();
    assert_eq!(mcp_search(&d, &token, "zeppelin").await, ["roadmap"]);
    // Kept per person: the second sign-in's request does not ask Graph again.
    assert_eq!(mcp_search(&d, &token, "zeppelin").await, ["roadmap"]);
    let path = format!("/v1.0/users/{oid}/getMemberObjects");
    assert_eq!(g.requests_to(&path), 1, "asked once, then kept");
    // whoami shows the groups resolved.
    let (status, who) =
        http_auth("GET", &format!("{}/v1/whoami", d.base), Some(&token), None).await;
    assert_eq!(status, 200, "{who}");
    assert!(who.to_string().contains(GROUP), "{who}");
    let log = d.stop();
    assert!(!log.contains(&token), "the access token in the log");
    for t in g.issued_tokens() {
        assert!(!log.contains(&t), "the app's Graph token in the log");
    }

    // Without it: fail closed — no group identities, a warning naming the overage.
    let env = Env::new(&format!(
        "{}{}",
        two_tenant_config(),
        oauth_section(&idp.issuer())
    ));
    stock(&env);
    let d = env.serve();
    assert!(mcp_search(&d, &token, "zeppelin").await.is_empty());
    let log = d.stop();
    assert!(
        log.contains("groups overage") && log.contains("no group identities"),
        "the log says why: {log}"
    );
    assert_eq!(
        g.requests_to(&path),
        1,
        "Graph not asked without the section"
    );

    // A failing Graph (wrong application secret) fails closed too, with the reason logged.
    let env = Env::new(&format!(
        "{}{}{}",
        two_tenant_config(),
        oauth_section(&idp.issuer()),
        overage_section(&g).replace("cache_ttl = \"10m\"", "cache_ttl = \"1s\"")
    ));
    env.set_secret("graph_secret", "not-the-secret");
    stock(&env);
    // Another person, so nothing kept from above answers.
    let other = g.truth().users[8].clone();
    g.set_member_objects(other["id"].as_str().expect("id"), &[GROUP]);
    let t2 = idp.mint(&with_overage(entra_claims(&idp.issuer(), &other, "search")));
    let d = env.serve();
    assert!(mcp_search(&d, &t2, "zeppelin").await.is_empty());
    let log = d.stop();
    assert!(
        log.contains("could not list them") && log.contains("invalid_client"),
        "{log}"
    );
    assert!(!log.contains("not-the-secret"), "the secret in the log");
}

/// The Graph connector with an `oauth2-obo` grant, and `[oauth]` trusting the OIDC fake.
fn obo_env(g: &RunningFake<MsGraph>, idp: &RunningFake<Oidc>) -> Env {
    let o = MsGraphOptions::default();
    let app_only = msgraph_config(g, &o.client_id);
    // Identities are not resolved here (`identity_ttl = "0s"`): each lookup would be one more
    // exchange per person, and this test counts the exchanges of searches.
    let app_only = app_only.replacen(
        "permissions = \"tenant\"\n",
        "permissions = \"tenant\"\nidentity_ttl = \"0s\"\n",
        1,
    );
    let start = app_only.find("auth = {").expect("auth line");
    let end = start + app_only[start..].find('\n').expect("line end");
    let obo = format!(
        r#"auth = {{ type = "oauth2-obo", token_url = "{}", client_id = "{}", client_secret = "secret:graph_secret", scopes = ["https://graph.microsoft.com/.default"] }}"#,
        g.token_url(),
        o.client_id
    );
    let config = format!(
        "{}{}{}{}",
        &app_only[..start],
        obo,
        &app_only[end..],
        oauth_section(&idp.issuer()).replace("tenant = \"acme\"\n", "")
    );
    let env = Env::new(&config);
    env.set_secret("graph_secret", &o.client_secret);
    env
}

/// A live search of the Graph connector as `token`: (status, answer).
async fn live_search(d: &Daemon, token: &str) -> (u16, Value) {
    let body = json!({ "op": "search", "input": { "query": QUERY } }).to_string();
    let url = format!("{}/v1/connectors/msgraph/invoke", d.base);
    http_auth("POST", &url, Some(token), Some(body)).await
}

fn hit_items(v: &Value, truth_ids: &[String]) -> BTreeSet<String> {
    let hits = v["result"]["hits"].as_array().cloned().unwrap_or_default();
    hits.iter()
        .filter_map(|h| h["id"].as_str())
        .map(|id| {
            truth_ids
                .iter()
                .find(|t| id.ends_with(t.as_str()))
                .cloned()
                .unwrap_or_else(|| format!("unexpected:{id}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_behalf_of_grant_calls_graph_with_each_signed_in_persons_own_token() {
    let (idp, g) = (idp().await, graph().await);
    let users = g.truth().users;
    let item_ids: Vec<String> = g
        .truth()
        .drive_items
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    // The items matching QUERY are authored by users 4, 13, 22, 31 and shared with the next.
    let (a, b, c) = (&users[4], &users[13], &users[50]);
    let upn = |u: &Value| u["userPrincipalName"].as_str().expect("upn").to_lowercase();
    let scp = "search read actions";
    let ta = idp.mint(&entra_claims(&idp.issuer(), a, scp));
    let tb = idp.mint(&entra_claims(&idp.issuer(), b, scp));
    let env = obo_env(&g, &idp);
    let d = env.serve();
    let mut answers = String::new();

    // The identity provider must accept assertions minted for Airlock: one for another
    // audience (an app registration that does not match) is refused, clearly.
    g.accept_obo_assertions(&idp.issuer(), "api://another-app");
    let (status, v) = live_search(&d, &ta).await;
    answers.push_str(&v.to_string());
    assert_ne!(status, 200, "{v}");
    assert!(
        v.to_string().contains("refused to exchange")
            && v.to_string().contains("audience does not match"),
        "{v}"
    );
    g.accept_obo_assertions(&idp.issuer(), RESOURCE);

    // Each person's live search runs with their own Graph token: the fake trims it to them.
    let (status, va) = live_search(&d, &ta).await;
    answers.push_str(&va.to_string());
    assert_eq!(status, 200, "{va}");
    let (status, vb) = live_search(&d, &tb).await;
    answers.push_str(&vb.to_string());
    assert_eq!(status, 200, "{vb}");
    let want = |u: &Value| -> BTreeSet<String> {
        g.delegated_search_truth(&upn(u), QUERY)
            .into_iter()
            .collect()
    };
    assert!(
        !want(a).is_empty() && want(a) != want(b),
        "the fixture tells them apart"
    );
    assert_eq!(hit_items(&va, &item_ids), want(a));
    assert_eq!(hit_items(&vb, &item_ids), want(b));
    // Two exchanges, two different tokens, each the fake's token of that person.
    let counts = g.delegated_counts();
    assert_eq!(counts.obo_exchanges, 2, "{counts:?}");
    let people: BTreeSet<String> = g
        .issued_user_tokens()
        .iter()
        .filter_map(|t| g.user_of_token(t))
        .collect();
    assert_eq!(people, BTreeSet::from([upn(a), upn(b)]));

    // Kept per (grant, person) until it expires: Ada's second search trades nothing.
    let (status, v) = live_search(&d, &ta).await;
    answers.push_str(&v.to_string());
    assert_eq!(status, 200, "{v}");
    assert_eq!(g.delegated_counts().obo_exchanges, 2);

    // A revoked person's assertion is refused by the identity provider, and said so.
    g.revoke_sign_ins(&upn(c));
    let tc = idp.mint(&entra_claims(&idp.issuer(), c, scp));
    let (status, v) = live_search(&d, &tc).await;
    answers.push_str(&v.to_string());
    assert_ne!(status, 200, "{v}");
    assert!(v.to_string().contains("revoked"), "{v}");
    // An access token past its expiry (still inside the resource server's clock leeway) is
    // never sent: sign in again.
    let mut late = entra_claims(&idp.issuer(), &users[22], scp);
    late["exp"] = json!(now() - 5);
    let (status, v) = live_search(&d, &idp.mint(&late)).await;
    answers.push_str(&v.to_string());
    assert_ne!(status, 200, "{v}");
    assert!(v.to_string().contains("has expired: sign in again"), "{v}");
    assert_eq!(
        g.delegated_counts().refused_obo,
        2,
        "the audience and the revoked one"
    );

    // An API token has nothing to trade.
    let api = env.create_token(&upn(a), "default", &[], false);
    let (status, v) = live_search(&d, &api).await;
    answers.push_str(&v.to_string());
    assert_ne!(status, 200, "{v}");
    assert!(
        v.to_string()
            .contains("did not sign in with an access token"),
        "{v}"
    );

    // The audit rows name the person; no token anywhere.
    let log = d.stop();
    let rows = audit_rows(&env);
    assert!(
        rows.iter().any(|r| r.event.connector == "msgraph"
            && r.event.event == "oauth-token"
            && r.event.principal.as_deref() == Some(&format!("oauth:{}", upn(a)))),
        "the exchange is audited under the person"
    );
    let rows = serde_json::to_string(&rows).expect("rows");
    let mut secrets = g.issued_user_tokens();
    secrets.extend([ta, tb, tc]);
    for t in &secrets {
        assert!(!log.contains(t.as_str()), "a token in the log");
        assert!(!rows.contains(t.as_str()), "a token in an audit row");
        assert!(!answers.contains(t.as_str()), "a token in an answer");
    }
}
