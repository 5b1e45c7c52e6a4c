//! Permission-true retrieval, end to end with the real daemon and the Confluence fake: for REST
//! search, get, the change feed, MCP search and live search, a user the upstream lets read a
//! page sees it, a user it does not never does, a user allowed through a group sees it, and a
//! user whose access was removed upstream stops seeing it after the next incremental sync (live
//! search at once). Records without an ACL fail closed unless the connector is tenant-wide.

use std::collections::BTreeSet;

use airlock_tests::*;
use fake_saas::confluence::PLANTED_PHRASE;
use fake_saas::{
    ACCOUNT_IDS, AteraOptions, ConfluenceOptions, TruthPage, USER_EMAILS, spawn_atera,
    spawn_confluence,
};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

/// What one principal sees of page `id` through each way in.
#[derive(Debug, PartialEq, Eq)]
struct Sight {
    search: bool,
    get: bool,
    changes: bool,
    mcp: bool,
}

impl Sight {
    fn all(yes: bool) -> Self {
        Sight {
            search: yes,
            get: yes,
            changes: yes,
            mcp: yes,
        }
    }
}

fn ids_of(hits: &Value) -> BTreeSet<String> {
    hits.as_array()
        .unwrap_or_else(|| panic!("hits: {hits}"))
        .iter()
        .filter_map(|h| h["id"].as_str().map(str::to_owned))
        .collect()
}

async fn search(d: &Daemon, token: &str, live: bool) -> Value {
    search_in(d, token, "confluence", PLANTED_PHRASE, live).await
}

async fn search_in(d: &Daemon, token: &str, connector: &str, query: &str, live: bool) -> Value {
    let body = json!({"query": query, "connector": connector, "limit": 50, "live": live});
    let (status, v) = http_auth(
        "POST",
        &format!("{}/v1/search", d.base),
        Some(token),
        Some(body.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["partial"], false, "{v}");
    v
}

async fn mcp_search_in(d: &Daemon, token: &str, connector: &str, query: &str) -> BTreeSet<String> {
    let c = mcp_http_client(d, token).await.expect("mcp session");
    let args = json!({"query": query, "connector": connector, "limit": 50});
    let params = CallToolRequestParams::new("search")
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let r = c.call_tool(params).await.expect("tools/call");
    let v = match r.structured_content {
        Some(v) => v,
        None => {
            let text: String = r
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect();
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("search: {text}"))
        }
    };
    c.cancel().await.expect("close");
    ids_of(&v["hits"])
}

async fn sight(d: &Daemon, token: &str, id: &str) -> Sight {
    let page = Record {
        connector: "confluence",
        kind: "page",
        id,
        query: PLANTED_PHRASE,
    };
    sight_of(d, token, &page).await
}

/// A record and a query that finds it.
struct Record<'a> {
    connector: &'a str,
    kind: &'a str,
    id: &'a str,
    query: &'a str,
}

async fn sight_of(d: &Daemon, token: &str, r: &Record<'_>) -> Sight {
    let local = search_in(d, token, r.connector, r.query, false).await;
    let (get, _) = http_auth(
        "GET",
        &format!(
            "{}/v1/documents/{}/{}/{}",
            d.base, r.connector, r.kind, r.id
        ),
        Some(token),
        None,
    )
    .await;
    let (status, feed) = http_auth(
        "GET",
        &format!("{}/v1/changes?connector={}&limit=1000", d.base, r.connector),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{feed}");
    let in_feed = feed["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .any(|c| c["id"] == r.id && c["kind"] == r.kind);
    Sight {
        search: ids_of(&local["hits"]).contains(r.id),
        get: get == 200,
        changes: in_feed,
        mcp: mcp_search_in(d, token, r.connector, r.query)
            .await
            .contains(r.id),
    }
}

/// Whether a live search (with an empty store, or for a page the caller may not see locally)
/// returns page `id` as a live hit.
async fn live_sees(d: &Daemon, token: &str, id: &str) -> bool {
    let v = search(d, token, true).await;
    v["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .any(|h| h["id"] == id && h["source"] == "live")
}

fn sync(env: &Env) {
    let out = env.airlock(&["sync", "confluence", "--stream", "pages"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluence_pages_reach_exactly_the_users_confluence_lets_read_them() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let truth = fake.truth();
    // A planted page (found by the search phrase) under a parent, readable by everyone now.
    let page: TruthPage = truth
        .pages
        .iter()
        .find(|p| {
            p.body_text.contains(PLANTED_PHRASE) && p.parent_id.is_some() && p.readers.len() == 6
        })
        .cloned()
        .expect("an open planted page with a parent");
    let parent = page.parent_id.clone().expect("parent");
    // The space is read by `confluence-users` and `engineering`; the parent is restricted to
    // `engineering` and to Di. So the page's ACL lists its readers by accountId, and
    // `group:engineering` (every set names it) for principals carrying that group.
    fake.set_space_read(&page.space_key, &[], &["confluence-users", "engineering"]);
    fake.restrict_page(&parent, &[ACCOUNT_IDS[3]], &["engineering"]);
    let now = fake.truth();
    let readers = &now
        .pages
        .iter()
        .find(|p| p.id == page.id)
        .expect("page")
        .readers;
    assert!(
        readers.contains(&ACCOUNT_IDS[3].to_string())
            && !readers.contains(&ACCOUNT_IDS[5].to_string())
    );

    // Live permission answers are remembered for 3 s (default 30 s), so that this test sees
    // both the remembered answer and, after a removal upstream, the fresh one.
    let ttl = std::time::Duration::from_secs(3);
    let config = confluence_permissions_config(&fake.base_url).replacen(
        "component = ",
        "permission_check_ttl = \"3s\"\ncomponent = ",
        1,
    );
    let env = Env::new(&config);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let d = env.serve();
    // Di: allowed by accountId. Bo: allowed through the group his token carries. Fay: denied.
    let di = env.create_token(USER_EMAILS[3], "default", &[], false);
    let bo = env.create_token("bo-by-group", "default", &["engineering"], false);
    let fay = env.create_token(USER_EMAILS[5], "default", &[], false);

    // whoami shows what each is matched as.
    let (status, who) = http_auth("GET", &format!("{}/v1/whoami", d.base), Some(&di), None).await;
    assert_eq!(status, 200, "{who}");
    let mine = &who["connectors"]["confluence"];
    assert_eq!(mine["permissions"], "per-record", "{who}");
    assert_eq!(mine["upstream_user"], ACCOUNT_IDS[3], "{who}");
    assert!(
        mine["identities"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| *x == format!("user:{}", ACCOUNT_IDS[3]))),
        "{who}"
    );

    // Live search before anything is synced: every hit is live and checked upstream.
    assert!(live_sees(&d, &di, &page.id).await, "Di, live");
    assert!(!live_sees(&d, &fay, &page.id).await, "Fay, live");
    let last_check = std::time::Instant::now();
    // Asked again at once, the same answers come from memory: no permission check upstream.
    let checks = || -> u64 {
        let by_path = fake.requests().by_path;
        let checks = by_path
            .iter()
            .filter(|(p, _)| p.ends_with("/permission/check"));
        checks.map(|(_, n)| n).sum()
    };
    let asked = checks();
    assert!(asked >= 2, "{asked} permission checks upstream");
    assert!(live_sees(&d, &di, &page.id).await, "Di, live, remembered");
    assert!(
        !live_sees(&d, &fay, &page.id).await,
        "Fay, live, remembered"
    );
    if last_check.elapsed() < ttl {
        assert_eq!(checks(), asked, "a repeated live search asks nothing again");
    }
    // Bo has no upstream user id (his token is not an email): a live hit without an ACL
    // cannot be checked for him and is dropped.
    assert!(
        !live_sees(&d, &bo, &page.id).await,
        "unknown upstream user, live"
    );

    sync(&env);
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let stored = airlock::store::documents::get(&conn, "confluence", "page", &page.id)
        .expect("db")
        .expect("synced");
    // Every reader by accountId (groups expanded), and the group every set names.
    let mut want = vec!["group:engineering".to_string()];
    want.extend(readers.iter().map(|r| format!("user:{r}")));
    want[1..].sort();
    assert_eq!(stored.acl, want);
    assert_eq!(readers.len(), 4, "engineering's three and Di: {readers:?}");
    assert_eq!(sight(&d, &di, &page.id).await, Sight::all(true), "Di");
    assert_eq!(
        sight(&d, &bo, &page.id).await,
        Sight::all(true),
        "Bo, by group"
    );
    assert_eq!(sight(&d, &fay, &page.id).await, Sight::all(false), "Fay");
    // Fay is not blind: a page Confluence lets her read is there for her.
    let hers = fake
        .truth()
        .pages
        .into_iter()
        .find(|p| p.readers.contains(&ACCOUNT_IDS[5].to_string()))
        .expect("a page Fay reads");
    let (status, _) = http_auth(
        "GET",
        &format!("{}/v1/documents/confluence/page/{}", d.base, hers.id),
        Some(&fay),
        None,
    )
    .await;
    assert_eq!(status, 200, "Fay reads page {}", hers.id);
    // `get` through `invoke` fetches the page live, with its ACL: the same answer.
    for (token, ok) in [(&di, true), (&fay, false)] {
        let (status, v) = http_auth(
            "POST",
            &format!("{}/v1/connectors/confluence/invoke", d.base),
            Some(token),
            Some(json!({"op": "get", "input": {"id": page.id}}).to_string()),
        )
        .await;
        assert_eq!(status == 200, ok, "{v}");
    }
    // No stored page is shown to someone Confluence would not show it to, nor hidden from
    // someone it would (Di and Fay, through get, page by page).
    for p in fake.truth().pages.iter().take(40) {
        for (token, i) in [(&di, 3), (&fay, 5)] {
            let (status, _) = http_auth(
                "GET",
                &format!("{}/v1/documents/confluence/page/{}", d.base, p.id),
                Some(token),
                None,
            )
            .await;
            let upstream = p.readers.contains(&ACCOUNT_IDS[i].to_string());
            assert_eq!(status == 200, upstream, "page {} for user {i}", p.id);
        }
    }

    // Upstream removes Di from the parent's restriction. No page changes version; the store
    // follows after the next incremental run, and live search asks upstream each time (the
    // live hit is checked now that Di's local results no longer hold the page).
    let before = airlock::store::changes::last_seq(&conn).expect("seq");
    fake.restrict_page(&parent, &[], &["engineering"]);
    // Until then the store still holds what Confluence said at the last sync.
    let stale = sight(&d, &di, &page.id).await;
    assert!(stale.get && stale.search, "{stale:?}");
    fake.reset_requests();
    sync(&env);
    // What an incremental run with the sweep costs upstream (docs/connectors/confluence.md):
    // per page about one ancestors and one restriction request, plus listings.
    let sent = fake.requests().total;
    let pages = fake.truth().pages.len() as u64;
    eprintln!("incremental run with permission sweep: {sent} requests for {pages} pages");
    assert!(sent <= 3 * pages, "{sent} requests for {pages} pages");
    assert_eq!(
        sight(&d, &di, &page.id).await,
        Sight::all(false),
        "Di, removed"
    );
    // Live search asks upstream again once the remembered answer is older than the TTL.
    tokio::time::sleep(ttl.saturating_sub(last_check.elapsed())).await;
    assert!(!live_sees(&d, &di, &page.id).await, "Di, removed, live");
    assert_eq!(
        sight(&d, &bo, &page.id).await,
        Sight::all(true),
        "Bo still, by group"
    );
    // The sweep stored only what changed: the parent and pages under it.
    let under: BTreeSet<String> = {
        let t = fake.truth();
        let mut set = BTreeSet::from([parent.clone()]);
        loop {
            let more: Vec<String> = t
                .pages
                .iter()
                .filter(|p| p.parent_id.as_ref().is_some_and(|q| set.contains(q)))
                .map(|p| p.id.clone())
                .filter(|id| !set.contains(id))
                .collect();
            if more.is_empty() {
                break set;
            }
            set.extend(more);
        }
    };
    let follow = airlock::store::changes::Follow {
        after: before,
        within: None,
        connector: Some("confluence"),
        kind: None,
        limit: 10_000,
        visible: &|_: &str, _: &[String]| true,
    };
    let changed: BTreeSet<String> = airlock::store::changes::read(&conn, &follow)
        .expect("db")
        .expect("kept")
        .changes
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(changed.contains(&page.id), "{changed:?}");
    assert!(changed.is_subset(&under), "{changed:?} beyond {under:?}");
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_an_acl_are_shown_only_when_the_connector_is_tenant_wide() {
    let per_record = two_tenant_config().replacen("permissions = \"tenant\"\n", "", 1);
    for (config, shown) in [(two_tenant_config(), true), (per_record, false)] {
        let env = Env::new(&config);
        store_docs(
            &env,
            "a1",
            &[
                doc("open", "Zeppelin", "no acl", &[]),
                doc("mine", "Zeppelin", "listed", &["ann"]),
            ],
        );
        let d = env.serve();
        let ann = env.create_token("ann", "acme", &[], false);
        let (status, v) = d_post(&d, &ann, json!({"query": "zeppelin"})).await;
        assert_eq!(status, 200, "{v}");
        let want: BTreeSet<String> = match shown {
            true => ["mine", "open"].map(String::from).into(),
            false => ["mine"].map(String::from).into(),
        };
        assert_eq!(ids_of(&v["hits"]), want, "{config}");
        let (status, _) = http_auth(
            "GET",
            &format!("{}/v1/documents/a1/page/open", d.base),
            Some(&ann),
            None,
        )
        .await;
        assert_eq!(status == 200, shown);
        let (_, who) = http_auth("GET", &format!("{}/v1/whoami", d.base), Some(&ann), None).await;
        let mode = if shown { "tenant" } else { "per-record" };
        assert_eq!(who["connectors"]["a1"]["permissions"], mode, "{who}");
        d.stop();
    }
}

async fn d_post(d: &Daemon, token: &str, body: Value) -> (u16, Value) {
    http_auth(
        "POST",
        &format!("{}/v1/search", d.base),
        Some(token),
        Some(body.to_string()),
    )
    .await
}

fn sync_atera(env: &Env, stream: &str) {
    let out = env.airlock(&["sync", "atera", "--stream", stream], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Atera tickets and their comments reach the ticket's end user (by email, and by end-user id
/// through `[connector.users]`), the people of its customer (by group) and the technicians;
/// nobody else. After a technician moves the ticket to another contact of another customer, the
/// next incremental run takes access away from the old ones and gives it to the new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atera_tickets_reach_their_end_user_customer_and_technicians_only() {
    let fake = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions {
            tickets: 30,
            ..AteraOptions::default()
        },
    )
    .await
    .expect("fake");
    let truth = fake.truth();
    let t = truth.tickets[0].clone();
    // Someone who raised none of the tickets of the same customer is denied; pick the other
    // end user and customer by index (the fake's five end users and six customers).
    let (other_user, other_customer) = (
        (t.end_user_id - 500 + 1) as usize % 5,
        (t.customer_id - 100 + 1) as usize % 6,
    );
    let config = atera_config(&fake.base_url).replacen("permissions = \"tenant\"\n", "", 1);
    let env = Env::new(&format!(
        "{config}[connector.users]\n\"mapped@people.example\" = \"{}\"\n",
        t.end_user_id
    ));
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    let d = env.serve();
    let owner = env.create_token(&t.end_user_email, "default", &[], false);
    let mapped = env.create_token("mapped@people.example", "default", &[], false);
    let customer_group = format!("atera-customer:{}", t.customer_id);
    let customer = env.create_token("it-lead", "default", &[customer_group.as_str()], false);
    let tech = env.create_token("tara", "default", &["atera-technicians"], false);
    let stranger = env.create_token(
        "someone@else.example",
        "default",
        &["atera-customer:9999"],
        false,
    );

    sync_atera(&env, "tickets");
    sync_atera(&env, "comments");
    let id = t.id.to_string();
    let ticket = Record {
        connector: "atera",
        kind: "ticket",
        id: &id,
        query: &t.title,
    };
    let first_comment = format!("{}-1", t.id);
    let comment = Record {
        connector: "atera",
        kind: "comment",
        id: &first_comment,
        query: &t.comments[0].comment,
    };
    for (who, token, sees) in [
        ("end user", &owner, true),
        ("end user by id", &mapped, true),
        ("customer group", &customer, true),
        ("technician", &tech, true),
        ("stranger", &stranger, false),
    ] {
        assert_eq!(
            sight_of(&d, token, &ticket).await,
            Sight::all(sees),
            "ticket, {who}"
        );
        assert_eq!(
            sight_of(&d, token, &comment).await,
            Sight::all(sees),
            "comment, {who}"
        );
    }
    // `get` through `invoke` fetches the ticket live with its ACL: the same answer.
    for (token, ok) in [(&owner, true), (&stranger, false)] {
        let (status, v) = http_auth(
            "POST",
            &format!("{}/v1/connectors/atera/invoke", d.base),
            Some(token),
            Some(json!({"op": "get", "input": {"id": id}}).to_string()),
        )
        .await;
        assert_eq!(status == 200, ok, "{v}");
    }

    // A technician moves the ticket to another contact of another customer: a modification,
    // so the next incremental run brings the new ACL.
    let moved = fake
        .reassign(t.id, other_user, other_customer)
        .expect("ticket");
    assert_ne!(moved.end_user_email, t.end_user_email);
    let stale = sight_of(&d, &owner, &ticket).await;
    assert!(stale.get && stale.search, "until the next run: {stale:?}");
    sync_atera(&env, "tickets");
    sync_atera(&env, "comments");
    let new_owner = env.create_token(&moved.end_user_email, "default", &[], false);
    let new_group = format!("atera-customer:{}", moved.customer_id);
    let new_customer = env.create_token("new-lead", "default", &[new_group.as_str()], false);
    for (who, token, sees) in [
        ("old end user", &owner, false),
        ("old end user by id", &mapped, false),
        ("old customer group", &customer, false),
        ("technician", &tech, true),
        ("new end user", &new_owner, true),
        ("new customer group", &new_customer, true),
    ] {
        assert_eq!(
            sight_of(&d, token, &ticket).await,
            Sight::all(sees),
            "moved ticket, {who}"
        );
        assert_eq!(
            sight_of(&d, token, &comment).await,
            Sight::all(sees),
            "moved comment, {who}"
        );
    }
    // Every stored Atera record is readable by the technicians and by nobody without a group
    // or a ticket of their own (a customer's group sees only that customer's tickets).
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    for t in fake.truth().tickets {
        let doc = airlock::store::documents::get(&conn, "atera", "ticket", &t.id.to_string())
            .expect("db")
            .expect("synced");
        let mut want = vec![
            t.end_user_email.clone(),
            format!("group:atera-customer:{}", t.customer_id),
            "group:atera-technicians".to_string(),
            format!("user:{}", t.end_user_id),
        ];
        want.sort();
        assert_eq!(doc.acl, want, "ticket {}", t.id);
    }
    d.stop();
}
