//! Tests of the Graph fake: token endpoint, auth, paging, delta rounds, mutations and control routes.

use super::*;
use crate::testutil::{Reply, http_with};

async fn fake() -> RunningFake<MsGraph> {
    spawn_msgraph(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        MsGraphOptions::default(),
    )
    .await
    .expect("fake starts")
}

async fn token(f: &RunningFake<MsGraph>, scope: &str) -> Reply {
    let o = MsGraphOptions::default();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={scope}",
        o.client_id, o.client_secret
    );
    let ct = [("Content-Type", "application/x-www-form-urlencoded")];
    http_with(
        f.addr,
        "POST",
        &format!("/{}/oauth2/v2.0/token", o.tenant),
        &ct,
        Some(&form),
    )
    .await
    .expect("token request")
}

async fn bearer_for(f: &RunningFake<MsGraph>) -> String {
    let r = token(f, "https%3A%2F%2Fgraph.microsoft.com%2F.default").await;
    assert_eq!(r.status, 200, "{}", r.body);
    format!(
        "Bearer {}",
        r.json()["access_token"].as_str().expect("token")
    )
}

async fn call(
    f: &RunningFake<MsGraph>,
    auth: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Reply {
    http_with(f.addr, method, path, &[("Authorization", auth)], body)
        .await
        .expect("request")
}

/// Follows `@odata.nextLink` from `first`; returns the items and the final page.
async fn walk(f: &RunningFake<MsGraph>, auth: &str, first: &str) -> (Vec<Value>, Value) {
    let (mut out, mut path) = (Vec::new(), first.to_owned());
    loop {
        let r = call(f, auth, "GET", &path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let v = r.json();
        out.extend(v["value"].as_array().expect("value").iter().cloned());
        match v["@odata.nextLink"].as_str() {
            Some(next) => path = next.strip_prefix(&f.base_url).expect("absolute").to_owned(),
            None => return (out, v),
        }
    }
}

#[tokio::test]
async fn msgraph_tokens_auth_paging_delta_and_errors() {
    let f = fake().await;
    let r = call(&f, "Bearer nope", "GET", "/v1.0/users", None).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );
    assert!(r.json()["error"]["innerError"]["request-id"].is_string());
    let r = token(&f, "https%3A%2F%2Fgraph.microsoft.com%2F").await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS1002012")
    );
    // Another resource's `/.default` (here ARM's) is not Graph's scope.
    let r = token(&f, "https%3A%2F%2Fmanagement.azure.com%2F.default").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let auth = bearer_for(&f).await;
    assert_eq!(f.token_requests(), 3);

    let truth = f.truth();
    let (users, last) = walk(&f, &auth, "/v1.0/users?$top=50").await;
    assert_eq!(users.len(), truth.users.len());
    assert!(last.get("@odata.deltaLink").is_none());
    let r = call(&f, &auth, "GET", "/v1.0/users?$top=1000", None).await;
    assert_eq!(r.status, 400);

    // Delta: initial round, then changes with @removed.
    let (initial, last) = walk(&f, &auth, "/v1.0/users/delta?$select=id,displayName").await;
    assert_eq!(initial.len(), truth.users.len());
    let delta = last["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .strip_prefix(&f.base_url)
        .unwrap()
        .to_owned();
    let m = f.mutate(MsGraphMutation {
        users: Change {
            add: 2,
            update: 3,
            delete: 2,
        },
        ..Default::default()
    });
    let touched: std::collections::BTreeSet<&String> =
        [&m.users.added, &m.users.updated, &m.users.deleted]
            .into_iter()
            .flatten()
            .collect();
    assert_eq!(touched.len(), 7, "each user is touched once: {m:?}");
    let first = call(&f, &auth, "GET", &delta, None).await.json();
    assert_eq!(
        first["value"].as_array().map(Vec::len),
        Some(0),
        "first incremental page is empty"
    );
    let (changes, last) = walk(&f, &auth, &delta).await;
    assert!(last["@odata.deltaLink"].is_string());
    let removed: Vec<&str> = changes
        .iter()
        .filter(|c| c.get("@removed").is_some())
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(removed.len(), 2);
    assert!(
        m.users
            .deleted
            .iter()
            .all(|d| removed.contains(&d.as_str()))
    );
    assert_eq!(changes.len(), 7);
    // Updated users carry only `id` and the changed properties; new users arrive whole.
    for c in &changes {
        let id = c["id"].as_str().unwrap_or("");
        let keys: std::collections::BTreeSet<&str> =
            c.as_object().unwrap().keys().map(String::as_str).collect();
        if m.users.updated.iter().any(|u| u == id) {
            assert_eq!(
                keys,
                ["id", "jobTitle", "officeLocation"].into(),
                "partial update: {c}"
            );
        } else if m.users.added.iter().any(|u| u == id) {
            assert!(keys.contains("userPrincipalName"), "created in full: {c}");
        }
    }

    // Mailboxes: messages delta and calendarView window.
    let upn = &truth.mailboxes[0];
    let (msgs, _) = walk(
        &f,
        &auth,
        &format!("/v1.0/users/{upn}/mailFolders/inbox/messages/delta"),
    )
    .await;
    assert_eq!(msgs.len(), truth.messages[upn].len());
    let r = call(
        &f,
        &auth,
        "GET",
        &format!("/v1.0/users/{upn}/calendarView"),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (400, Some("ErrorInvalidParameter"))
    );
    let (events, _) = walk(
        &f,
        &auth,
        &format!("/v1.0/users/{upn}/calendarView?startDateTime=2000-01-01T00:00:00Z&endDateTime=2100-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(events.len(), truth.events[upn].len());

    // Teams: $top limits, newest first, system messages present.
    let chat = truth.chats.keys().next().unwrap().clone();
    let path = format!(
        "/v1.0/chats/{}/messages",
        chat.replace(':', "%3A").replace('@', "%40")
    );
    assert_eq!(
        call(&f, &auth, "GET", &format!("{path}?$top=51"), None)
            .await
            .status,
        400
    );
    let (msgs, _) = walk(&f, &auth, &format!("{path}?$top=50")).await;
    assert_eq!(
        msgs.iter()
            .filter(|m| m["messageType"] == "message")
            .count(),
        truth.chats[&chat].len()
    );
    assert!(
        msgs.iter()
            .any(|m| m["messageType"] == "systemEventMessage")
    );

    // Search needs a region; finds the planted phrase.
    let body = |region: &str| {
        format!(
            r#"{{"requests":[{{"entityTypes":["driveItem"],"query":{{"queryString":"airlock rollout"}},"from":0,"size":25{region}}}]}}"#
        )
    };
    let r = call(&f, &auth, "POST", "/v1.0/search/query", Some(&body(""))).await;
    assert_eq!(r.status, 400);
    let r = call(
        &f,
        &auth,
        "POST",
        "/v1.0/search/query",
        Some(&body(r#","region":"NAM""#)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = &r.json()["value"][0]["hitsContainers"][0];
    let want = search_matches(&truth.drive_items, "airlock rollout").len();
    assert!(want > 0);
    assert_eq!(c["total"].as_u64(), Some(want as u64));
    assert!(c["hits"][0]["resource"].get("content").is_none());

    // Managed devices of the first user mix compliance states.
    let id = truth.users[0]["id"].as_str().unwrap();
    let (devices, _) = walk(&f, &auth, &format!("/v1.0/users/{id}/managedDevices")).await;
    let states: Vec<&str> = devices
        .iter()
        .filter_map(|d| d["complianceState"].as_str())
        .collect();
    assert_eq!(states, ["compliant", "noncompliant"]);

    // Expired tokens are refused; 429 carries Retry-After and Graph's error shape.
    f.set_token_lifetime_secs(0);
    let short = bearer_for(&f).await;
    let r = call(&f, &short, "GET", "/v1.0/devices", None).await;
    assert_eq!(r.status, 401);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    f.set_rate_limit_every(Some(1));
    let r = call(&f, &auth, "GET", "/v1.0/devices", None).await;
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    assert_eq!(r.json()["error"]["code"], "TooManyRequests");
}

#[tokio::test]
async fn chats_teams_and_channels_list_their_members_and_senders_are_members() {
    let f = fake().await;
    let auth = bearer_for(&f).await;
    let t = f.truth();
    let user_ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|m| {
                assert_eq!(
                    m["@odata.type"],
                    "#microsoft.graph.aadUserConversationMember"
                );
                assert!(m["id"].as_str().is_some_and(|id| !id.is_empty()), "{m}");
                m["userId"].as_str().expect("userId").to_owned()
            })
            .collect()
    };
    for (chat, msgs) in &t.chats {
        let (members, _) = walk(&f, &auth, &format!("/v1.0/chats/{chat}/members?$top=2")).await;
        let ids = user_ids(&members);
        assert_eq!(ids, t.members[chat], "{chat}");
        for m in msgs {
            let from = m["from"]["user"]["id"].as_str().expect("sender");
            assert!(ids.iter().any(|i| i == from), "{chat}: sender {from}");
        }
    }
    let mut private = 0;
    for (key, msgs) in &t.channels {
        let (team, channel) = key.split_once('/').expect("team/channel");
        let path = format!("/v1.0/teams/{team}/channels/{channel}/members");
        let (members, _) = walk(&f, &auth, &path).await;
        let (team_list, _) = walk(&f, &auth, &format!("/v1.0/teams/{team}/members")).await;
        let want = t.members.get(key).unwrap_or(&t.members[team]);
        private += usize::from(t.members.contains_key(key));
        assert_eq!(&user_ids(&members), want, "{key}");
        assert_eq!(user_ids(&team_list), t.members[team]);
        for m in msgs {
            let from = m["from"]["user"]["id"].as_str().expect("sender");
            assert!(want.iter().any(|i| i == from), "{key}: sender {from}");
        }
    }
    assert_eq!(private, 1, "one private channel");
    let r = call(
        &f,
        &auth,
        "GET",
        "/v1.0/chats/19:nope@thread.v2/members",
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    // A membership change shows at once.
    let (chat, _) = t.chats.iter().next().expect("a chat");
    let first = t.users[0]["id"].as_str().expect("id");
    f.set_members(chat, &[first]);
    let (members, _) = walk(&f, &auth, &format!("/v1.0/chats/{chat}/members")).await;
    assert_eq!(user_ids(&members), [first]);
}

#[tokio::test]
async fn drive_items_list_their_permissions_and_hide_them_from_the_item() {
    let f = fake().await;
    let auth = bearer_for(&f).await;
    let t = f.truth();
    let mut links = 0;
    for item in &t.drive_items {
        let (drive, id) = (&item["parentReference"]["driveId"], &item["id"]);
        let (drive, id) = (drive.as_str().expect("drive"), id.as_str().expect("id"));
        let r = call(
            &f,
            &auth,
            "GET",
            &format!("/v1.0/drives/{drive}/items/{id}"),
            None,
        )
        .await;
        assert!(r.json().get("permissions").is_none(), "{}", r.body);
        let path = format!("/v1.0/drives/{drive}/items/{id}/permissions");
        let r = call(&f, &auth, "GET", &path, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["value"], item["permissions"]);
        let owner = &v["value"][0];
        assert_eq!(owner["roles"], json!(["owner"]));
        assert!(owner["grantedToV2"]["user"]["id"].is_string(), "{owner}");
        links += v["value"]
            .as_array()
            .expect("value")
            .iter()
            .filter(|p| p["link"]["scope"] == "organization")
            .count();
    }
    assert!(links > 0, "some items are shared with the organization");
    let r = call(&f, &auth, "GET", "/v1.0/drives/x/items/y/permissions", None).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn get_member_objects_answers_applications_and_on_behalf_of_checks_its_assertion() {
    use base64::Engine as _;
    let f = fake().await;
    let o = MsGraphOptions::default();
    let user = f.truth().users[3].clone();
    let id = user["id"].as_str().expect("id").to_string();
    let upn = user["userPrincipalName"]
        .as_str()
        .expect("upn")
        .to_lowercase();
    f.set_member_objects(&id, &["g-1", "g-2"]);
    let app = bearer_for(&f).await;
    let ct = ("Content-Type", "application/json");
    let path = format!("/v1.0/users/{id}/getMemberObjects");
    let body = r#"{"securityEnabledOnly":false}"#;
    let r = http_with(
        f.addr,
        "POST",
        &path,
        &[("Authorization", &app), ct],
        Some(body),
    )
    .await
    .expect("members");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["value"], json!(["g-1", "g-2"]));
    let r = http_with(
        f.addr,
        "POST",
        &path,
        &[("Authorization", &app), ct],
        Some("{}"),
    )
    .await
    .expect("members");
    assert_eq!(r.status, 400, "securityEnabledOnly is required");

    // On-behalf-of: refused until assertions of an issuer and audience are accepted; then the
    // audience, the lifetime and revoked sign-ins are checked, and the token is the person's.
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = crate::common::now_ms() / 1000;
    let assertion = |aud: &str, exp: i64| {
        format!(
            "{}.{}.sig",
            b64(json!({"alg": "ES256"})),
            b64(
                json!({"iss": "https://idp.test", "aud": aud, "exp": exp, "preferred_username": upn})
            )
        )
    };
    let obo = |a: String| {
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&requested_token_use=on_behalf_of&client_id={}&client_secret={}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&assertion={a}",
            o.client_id, o.client_secret
        );
        let path = format!("/{}/oauth2/v2.0/token", o.tenant);
        async move {
            let ct = [("Content-Type", "application/x-www-form-urlencoded")];
            http_with(f.addr, "POST", &path, &ct, Some(&form))
                .await
                .expect("obo")
        }
    };
    let r = obo(assertion("api://airlock", now + 600)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "unauthorized_client");
    f.accept_obo_assertions("https://idp.test", "api://airlock");
    let r = obo(assertion("api://other", now + 600)).await;
    assert!(r.body.contains("AADSTS50013"), "{}", r.body);
    let r = obo(assertion("api://airlock", now - 1)).await;
    assert!(r.body.contains("AADSTS500133"), "{}", r.body);
    let r = obo(assertion("api://airlock", now + 600)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(f.user_of_token(&token).as_deref(), Some(upn.as_str()));
    let me = http_with(
        f.addr,
        "GET",
        "/v1.0/me",
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    )
    .await
    .expect("me");
    assert_eq!(me.status, 200, "{}", me.body);
    f.revoke_sign_ins(&upn);
    assert_eq!(f.user_of_token(&token), None, "its tokens end too");
    let r = obo(assertion("api://airlock", now + 600)).await;
    assert!(r.body.contains("AADSTS50173"), "{}", r.body);
    let c = f.delegated_counts();
    assert_eq!((c.obo_exchanges, c.refused_obo), (1, 4));
}

#[tokio::test]
async fn transitive_member_of_lists_the_users_groups_by_id_or_upn_in_pages_as_tests_set_them() {
    let f = fake().await;
    let user = f.truth().users[5].clone();
    let id = user["id"].as_str().expect("id").to_string();
    let upn = user["userPrincipalName"].as_str().expect("upn").to_string();
    f.set_member_objects(&id, &["g-1", "g-2", "g-3"]);
    let app = bearer_for(&f).await;
    let (groups, _) = walk(
        &f,
        &app,
        &format!("/v1.0/users/{upn}/transitiveMemberOf?$select=id&$top=2"),
    )
    .await;
    let ids: Vec<&str> = groups.iter().filter_map(|g| g["id"].as_str()).collect();
    assert_eq!(ids, ["g-1", "g-2", "g-3"]);
    assert!(
        groups
            .iter()
            .all(|g| g["@odata.type"] == "#microsoft.graph.group")
    );
    // Membership changes show at once.
    f.set_member_objects(&id, &[]);
    let (groups, _) = walk(&f, &app, &format!("/v1.0/users/{id}/transitiveMemberOf")).await;
    assert!(groups.is_empty());
    let missing = "/v1.0/users/nobody@contoso.com/transitiveMemberOf";
    let r = call(&f, &app, "GET", missing, None).await;
    assert_eq!(r.status, 404, "{}", r.body);
}
