//! Permission-true retrieval, end to end with the real daemon and the Confluence fake: for REST
//! search, get, the change feed, MCP search and live search, a user the upstream lets read a
//! page sees it, a user it does not never does, a user allowed through a group sees it, and a
//! user whose access was removed upstream stops seeing it after the next incremental sync (live
//! search at once: Confluence's, Zendesk's and Jira Service Management's own search is asked
//! live). Records without an ACL fail closed unless the connector is tenant-wide.

use std::collections::BTreeSet;

use airlock_tests::*;
use fake_saas::confluence::PLANTED_PHRASE;
use fake_saas::{
    ACCOUNT_IDS, AteraOptions, ConfluenceOptions, JiraOptions, MsGraphOptions, TruthPage,
    USER_EMAILS, ZendeskOptions, spawn_atera, spawn_confluence, spawn_jira, spawn_msgraph,
    spawn_zendesk,
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

/// Asserts that each person (who, token, sees) sees each record (what, record) on every surface,
/// or on none.
async fn assert_sights(
    d: &Daemon,
    people: &[(&str, &String, bool)],
    records: &[(&str, &Record<'_>)],
) {
    for (who, token, sees) in people {
        for (what, record) in records {
            assert_eq!(
                sight_of(d, token, record).await,
                Sight::all(*sees),
                "{what}, {who}"
            );
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
    // An id may hold a `/` (Jira comments: `SD-1/50001`): one path segment, percent-encoded.
    let (get, _) = http_auth(
        "GET",
        &format!(
            "{}/v1/documents/{}/{}/{}",
            d.base,
            r.connector,
            r.kind,
            r.id.replace('/', "%2F")
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
    assert_sights(
        &d,
        &[
            ("end user", &owner, true),
            ("end user by id", &mapped, true),
            ("customer group", &customer, true),
            ("technician", &tech, true),
            ("stranger", &stranger, false),
        ],
        &[("ticket", &ticket), ("comment", &comment)],
    )
    .await;
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
    assert_sights(
        &d,
        &[
            ("old end user", &owner, false),
            ("old end user by id", &mapped, false),
            ("old customer group", &customer, false),
            ("technician", &tech, true),
            ("new end user", &new_owner, true),
            ("new customer group", &new_customer, true),
        ],
        &[("moved ticket", &ticket), ("moved comment", &comment)],
    )
    .await;
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

fn sync_streams(env: &Env, connector: &str, streams: &[&str]) {
    for stream in streams {
        let out = env.airlock(&["sync", connector, "--stream", stream], None);
        assert!(
            out.status.success(),
            "{connector} {stream}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `get` through `invoke` (fetched live, with its ACL): whether the caller is answered.
async fn invoke_get(d: &Daemon, token: &str, connector: &str, id: &str) -> bool {
    let (status, v) = http_auth(
        "POST",
        &format!("{}/v1/connectors/{connector}/invoke", d.base),
        Some(token),
        Some(json!({"op": "get", "input": {"id": id}}).to_string()),
    )
    .await;
    assert!(
        status == 200 || status == 403 || status == 404,
        "{status} {v}"
    );
    status == 200
}

/// Asserts, for each person (who, token, finds), whether `connector`'s own search, asked live
/// through invoke (no stored copy can stand in for it), returns record `id` for `query`.
async fn assert_live(
    d: &Daemon,
    people: &[(&str, &String, bool)],
    (connector, query, id): (&str, &str, &str),
) {
    for (who, token, finds) in people {
        let body = json!({"op": "search", "input": {"query": query, "limit": 100}});
        let (status, v) = http_auth(
            "POST",
            &format!("{}/v1/connectors/{connector}/invoke", d.base),
            Some(token.as_str()),
            Some(body.to_string()),
        )
        .await;
        assert_eq!(status, 200, "{who}: {v}");
        let hits = v["result"]["hits"].as_array().expect("hits");
        let found = hits.iter().any(|h| h["id"] == id);
        assert_eq!(found, *finds, "live search of {connector} {id}, {who}");
    }
}

/// Zendesk tickets and their public comments reach the requester, the CCs, the users of the
/// ticket's organization when it shares tickets, the agents of the ticket's group and the agents
/// who read every ticket; internal notes reach the agents only; articles reach everyone signed in
/// unless a user segment restricts them. A CC removed and an organization changed upstream are
/// ticket updates: the next incremental run takes access away (and gives it to a new CC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_tickets_comments_and_articles_reach_whom_zendesk_shows_them() {
    use fake_saas::zendesk::PLANTED_PHRASE as ZENDESK_PHRASE;
    let fake = spawn_zendesk(
        "127.0.0.1:0".parse().expect("addr"),
        ZendeskOptions {
            tickets: 60,
            articles: 20,
            recent_exclusion_secs: 0,
            ..ZendeskOptions::default()
        },
    )
    .await
    .expect("fake");
    let truth = fake.truth();
    // A planted ticket (the search phrase finds it) with a group; a CC and a sharing
    // organization are set upstream before the first run.
    let t = truth
        .tickets
        .iter()
        .find(|t| t.description.contains(ZENDESK_PHRASE) && t.group_id.is_some())
        .cloned()
        .expect("a planted ticket with a group");
    let shared_org = truth
        .tickets
        .iter()
        .find(|x| x.organization_shared)
        .and_then(|x| x.organization_id)
        .expect("a sharing organization");
    let closed_org = truth
        .tickets
        .iter()
        .find(|x| x.organization_id.is_some() && !x.organization_shared)
        .and_then(|x| x.organization_id)
        .expect("an organization that does not share");
    let people: Vec<u64> = {
        let mut ids: Vec<u64> = truth.tickets.iter().map(|x| x.requester_id).collect();
        ids.sort();
        ids.dedup();
        ids.retain(|id| *id != t.requester_id);
        ids
    };
    let (cc, new_cc, stranger_id) = (people[0], people[1], people[2]);
    fake.set_ccs(t.id, &[cc]).expect("ticket");
    let t = fake
        .set_organization(t.id, Some(shared_org))
        .expect("ticket");
    assert_eq!(t.email_cc_ids, [cc]);
    // An internal note elsewhere, and its ticket's requester.
    let noted = truth
        .tickets
        .iter()
        .find(|x| x.comments.iter().any(|c| !c.public) && x.requester_id != t.requester_id)
        .cloned()
        .expect("a ticket with an internal note");
    let note = noted.comments.iter().find(|c| !c.public).expect("note");

    let config = zendesk_config(&fake.base_url, "").replacen("permissions = \"tenant\"\n", "", 1);
    let users = format!(
        "[connector.users]\n\"req@people.example\" = \"{}\"\n\"cc@people.example\" = \"{cc}\"\n\
         \"newcc@people.example\" = \"{new_cc}\"\n\"stranger@people.example\" = \"{stranger_id}\"\n\
         \"noted@people.example\" = \"{}\"\n",
        t.requester_id, noted.requester_id
    );
    let env = Env::new(&format!("{config}{users}"));
    env.set_secret("zendesk_token", &ZendeskOptions::default().api_token);
    let d = env.serve();
    let requester = env.create_token("req@people.example", "default", &[], false);
    let cc_user = env.create_token("cc@people.example", "default", &[], false);
    let org_group = format!("zendesk-org:{shared_org}");
    let org_member = env.create_token("org-member", "default", &[org_group.as_str()], false);
    let group = format!("zendesk-group:{}", t.group_id.expect("group"));
    let group_agent = env.create_token("group-agent", "default", &[group.as_str()], false);
    let agent = env.create_token("agent", "default", &["zendesk-agents"], false);
    let closed_group = format!("zendesk-org:{closed_org}");
    let stranger = env.create_token(
        "stranger@people.example",
        "default",
        &[closed_group.as_str()],
        false,
    );
    let noted_requester = env.create_token("noted@people.example", "default", &[], false);

    sync_streams(&env, "zendesk", &["tickets", "comments", "articles"]);
    let id = t.id.to_string();
    let ticket = Record {
        connector: "zendesk",
        kind: "ticket",
        id: &id,
        query: ZENDESK_PHRASE,
    };
    let description = format!("{}-{}", t.id, t.comments[0].id);
    let public = Record {
        connector: "zendesk",
        kind: "comment",
        id: &description,
        query: ZENDESK_PHRASE,
    };
    // Who reads the ticket: the same answer stored and live.
    let readers = [
        ("requester", &requester, true),
        ("cc", &cc_user, true),
        ("sharing organization", &org_member, true),
        ("agent of the ticket's group", &group_agent, true),
        ("agent", &agent, true),
        ("stranger", &stranger, false),
    ];
    assert_sights(&d, &readers, &[("ticket", &ticket), ("comment", &public)]).await;
    assert_live(&d, &readers, ("zendesk", ZENDESK_PHRASE, &id)).await;
    assert!(
        invoke_get(&d, &requester, "zendesk", &id).await,
        "invoke, requester"
    );
    assert!(
        !invoke_get(&d, &stranger, "zendesk", &id).await,
        "invoke, stranger"
    );
    // The internal note: agents only, never its ticket's requester.
    let note_id = format!("{}-{}", noted.id, note.id);
    let private = Record {
        connector: "zendesk",
        kind: "comment",
        id: &note_id,
        query: &note.body,
    };
    assert_eq!(
        sight_of(&d, &agent, &private).await,
        Sight::all(true),
        "note, agent"
    );
    assert_eq!(
        sight_of(&d, &noted_requester, &private).await,
        Sight::all(false),
        "note, its requester"
    );
    // The ticket's requester still reads that ticket itself.
    let (status, _) = http_auth(
        "GET",
        &format!("{}/v1/documents/zendesk/ticket/{}", d.base, noted.id),
        Some(&noted_requester),
        None,
    )
    .await;
    assert_eq!(status, 200, "the noted ticket, its requester");

    // Articles: everyone signed in, unless a user segment restricts them.
    for a in &fake.truth().articles {
        let aid = a.id.to_string();
        let article = Record {
            connector: "zendesk",
            kind: "article",
            id: &aid,
            query: &a.title,
        };
        let (everyone, agents) = match a.user_segment_id {
            None => (true, true),
            Some(_) => (false, a.user_segment_id == Some(7_001)),
        };
        assert_eq!(
            sight_of(&d, &stranger, &article).await,
            Sight::all(everyone),
            "article {aid} ({:?}), signed in",
            a.user_segment_id
        );
        assert_eq!(
            sight_of(&d, &agent, &article).await,
            Sight::all(agents || everyone),
            "article {aid} ({:?}), agent",
            a.user_segment_id
        );
    }

    // Upstream: the CC is replaced and the ticket moves to an organization that does not share.
    fake.set_ccs(t.id, &[new_cc]).expect("ticket");
    fake.set_organization(t.id, Some(closed_org))
        .expect("ticket");
    let stale = sight_of(&d, &cc_user, &ticket).await;
    assert!(stale.get && stale.search, "until the next run: {stale:?}");
    // Live search reads the readers upstream: the change counts at once.
    assert_live(
        &d,
        &[
            ("requester", &requester, true),
            ("removed cc", &cc_user, false),
            ("former organization", &org_member, false),
            ("agent", &agent, true),
            ("stranger", &stranger, false),
        ],
        ("zendesk", ZENDESK_PHRASE, &id),
    )
    .await;
    sync_streams(&env, "zendesk", &["tickets", "comments"]);
    let new_cc_user = env.create_token("newcc@people.example", "default", &[], false);
    assert_sights(
        &d,
        &[
            ("requester", &requester, true),
            ("removed cc", &cc_user, false),
            ("new cc", &new_cc_user, true),
            ("former organization", &org_member, false),
            ("agent of the ticket's group", &group_agent, true),
            ("agent", &agent, true),
            ("organization that does not share", &stranger, false),
        ],
        &[
            ("changed ticket", &ticket),
            ("changed ticket's comment", &public),
        ],
    )
    .await;
    assert!(
        !invoke_get(&d, &cc_user, "zendesk", &id).await,
        "invoke, removed cc"
    );
    // Every stored ticket carries exactly what the fake says about it.
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    for x in fake.truth().tickets {
        let doc = airlock::store::documents::get(&conn, "zendesk", "ticket", &x.id.to_string())
            .expect("db")
            .expect("synced");
        let mut want = vec![
            "group:zendesk-agents".to_string(),
            format!("user:{}", x.requester_id),
        ];
        want.extend(x.assignee_id.map(|a| format!("user:{a}")));
        want.extend(x.group_id.map(|g| format!("group:zendesk-group:{g}")));
        want.extend(x.email_cc_ids.iter().map(|c| format!("user:{c}")));
        if x.organization_shared {
            want.extend(x.organization_id.map(|o| format!("group:zendesk-org:{o}")));
        }
        want.sort();
        want.dedup();
        assert_eq!(doc.acl, want, "ticket {}", x.id);
    }
    d.stop();
}

/// Jira Service Management requests and their public comments reach the reporter (by accountId
/// and by email), the request participants, the customer organizations the request is shared
/// with and the service desk's agents; internal comments reach the agents only. A participant
/// removed and an organization unshared upstream edit the issue: the next incremental run takes
/// access away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_requests_reach_reporter_participants_organizations_and_agents_only() {
    use fake_saas::jira::PLANTED_PHRASE as JIRA_PHRASE;
    let fake = spawn_jira("127.0.0.1:0".parse().expect("addr"), JiraOptions::default())
        .await
        .expect("fake");
    let truth = fake.truth();
    let r = truth
        .requests
        .iter()
        .find(|r| r.description.contains(JIRA_PHRASE))
        .cloned()
        .expect("a planted request");
    // Customers of the fake: 557058:bbbb0002, :cccc0003, :eeee0005 (Ben, Cleo, Eve).
    let customers = ["557058:bbbb0002", "557058:cccc0003", "557058:eeee0005"];
    let others: Vec<&str> = customers
        .into_iter()
        .filter(|c| *c != r.reporter_account_id)
        .collect();
    let (participant, stranger_id) = (others[0], others[1]);
    let r = fake
        .set_participant(&r.key, participant, true)
        .expect("request");
    let r = fake.set_organization(&r.key, 2, true).expect("request");
    assert!(r.organization_ids.contains(&2), "{r:?}");
    // A request with an internal comment, and another's public one.
    let internal = truth
        .requests
        .iter()
        .find_map(|x| {
            x.comments
                .iter()
                .find(|c| !c.public)
                .map(|c| (x.clone(), c.clone()))
        })
        .expect("an internal comment");

    let config = jira_config(&fake.base_url).replacen("permissions = \"tenant\"\n", "", 1);
    // The fake's users' emails (first name at example.com).
    let email_of = |id: &str| match id {
        "557058:aaaa0001" => "ada@example.com",
        "557058:bbbb0002" => "ben@example.com",
        "557058:cccc0003" => "cleo@example.com",
        "557058:dddd0004" => "dan@example.com",
        _ => "eve@example.com",
    };
    let users = format!(
        "[connector.users]\n\"reporter@people.example\" = \"{}\"\n\
         \"participant@people.example\" = \"{participant}\"\n\
         \"stranger@people.example\" = \"{stranger_id}\"\n",
        r.reporter_account_id
    );
    let env = Env::new(&format!("{config}{users}"));
    env.set_secret("jira_token", &JiraOptions::default().api_token);
    let d = env.serve();
    let reporter = env.create_token("reporter@people.example", "default", &[], false);
    let reporter_by_email =
        env.create_token(email_of(&r.reporter_account_id), "default", &[], false);
    let participant_user = env.create_token("participant@people.example", "default", &[], false);
    let org_member = env.create_token("org-member", "default", &["jsm-org:2"], false);
    let agent = env.create_token("desk-agent", "default", &["jsm-agents:SD"], false);
    let stranger = env.create_token("stranger@people.example", "default", &["jsm-org:9"], false);

    sync_streams(&env, "jira", &["requests", "comments"]);
    let request = Record {
        connector: "jira",
        kind: "request",
        id: &r.key,
        query: JIRA_PHRASE,
    };
    // Who reads the request: the same answer stored and live.
    let readers = [
        ("reporter", &reporter, true),
        ("reporter by email", &reporter_by_email, true),
        ("participant", &participant_user, true),
        ("organization", &org_member, true),
        ("agent", &agent, true),
        ("stranger", &stranger, false),
    ];
    assert_sights(&d, &readers, &[("request", &request)]).await;
    assert_live(&d, &readers, ("jira", JIRA_PHRASE, &r.key)).await;
    assert!(
        invoke_get(&d, &participant_user, "jira", &r.key).await,
        "invoke, participant"
    );
    assert!(
        !invoke_get(&d, &stranger, "jira", &r.key).await,
        "invoke, stranger"
    );
    // The internal comment: the agents only, never its reporter.
    let (x, c) = &internal;
    let cid = format!("{}/{}", x.key, c.id);
    let comment = Record {
        connector: "jira",
        kind: "comment",
        id: &cid,
        query: &c.body,
    };
    assert_eq!(
        sight_of(&d, &agent, &comment).await,
        Sight::all(true),
        "internal, agent"
    );
    let its_reporter = match x.reporter_account_id == r.reporter_account_id {
        true => reporter_by_email.clone(),
        false => env.create_token(email_of(&x.reporter_account_id), "default", &[], false),
    };
    assert_eq!(
        sight_of(&d, &its_reporter, &comment).await,
        Sight::all(false),
        "internal, its reporter"
    );

    // Upstream: the participant is removed and the organization no longer shares the request.
    fake.set_participant(&r.key, participant, false)
        .expect("request");
    fake.set_organization(&r.key, 2, false).expect("request");
    let stale = sight_of(&d, &participant_user, &request).await;
    assert!(stale.get && stale.search, "until the next run: {stale:?}");
    // Live search reads the readers upstream: the change counts at once.
    let readers = [
        ("reporter", &reporter, true),
        ("removed participant", &participant_user, false),
        ("former organization", &org_member, false),
        ("agent", &agent, true),
        ("stranger", &stranger, false),
    ];
    assert_live(&d, &readers, ("jira", JIRA_PHRASE, &r.key)).await;
    // The store follows on the next incremental run.
    sync_streams(&env, "jira", &["requests", "comments"]);
    assert_sights(&d, &readers, &[("changed request", &request)]).await;
    assert!(
        !invoke_get(&d, &participant_user, "jira", &r.key).await,
        "invoke, removed"
    );
    // Every stored request carries exactly what the fake says about it.
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    for x in fake.truth().requests {
        let doc = airlock::store::documents::get(&conn, "jira", "request", &x.key)
            .expect("db")
            .expect("synced");
        let mut want = vec![
            "group:jsm-agents:SD".to_string(),
            format!("user:{}", x.reporter_account_id),
            email_of(&x.reporter_account_id).to_string(),
        ];
        for p in &x.participant_account_ids {
            want.push(format!("user:{p}"));
            want.push(email_of(p).to_string());
        }
        want.extend(
            x.organization_ids
                .iter()
                .map(|o| format!("group:jsm-org:{o}")),
        );
        want.sort();
        want.dedup();
        assert_eq!(doc.acl, want, "request {}", x.key);
    }
    d.stop();
}

/// Microsoft 365 records reach whom Graph shows them: mail and events their mailbox's owner,
/// chat messages the chat's members, channel messages the team's members (a private channel's
/// own members only), directory users everyone signed in, devices the device administrators.
/// A member removed from a chat upstream stops seeing its messages after the next run (chats
/// are listed whole each run, and each page reads the chat's members). Live SharePoint hits
/// fail closed (the fake models no item permissions). Every stored ACL equals the fake's truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgraph_records_reach_the_mailbox_owner_and_the_chat_and_team_members_only() {
    let opts = MsGraphOptions::default();
    let fake = spawn_msgraph("127.0.0.1:0".parse().expect("addr"), opts.clone())
        .await
        .expect("fake");
    let t = fake.truth();
    let id_of_upn = |upn: &str| -> String {
        let u = t.users.iter().find(|u| u["userPrincipalName"] == upn);
        u.and_then(|u| u["id"].as_str())
            .expect("mailbox user")
            .to_owned()
    };
    let mailbox = t.mailboxes[0].clone();
    let owner_id = id_of_upn(&mailbox);
    let (chat, chat_msgs) = t.chats.iter().next().expect("a chat");
    let (standard, private) = {
        let mut keys = t.channels.keys();
        let (a, b) = (keys.next().expect("channel"), keys.next().expect("channel"));
        if t.members.contains_key(a) {
            (b.clone(), a.clone())
        } else {
            (a.clone(), b.clone())
        }
    };
    let team = standard.split('/').next().expect("team").to_owned();
    let in_any = |id: &str| {
        id == owner_id
            || t.members[chat].iter().any(|m| m == id)
            || t.members[&team].iter().any(|m| m == id)
    };
    let chat_member = t.members[chat]
        .iter()
        .find(|m| **m != owner_id && !t.members[&team].contains(m))
        .expect("a chat member outside the team")
        .clone();
    let other_chat_member = t.members[chat]
        .iter()
        .find(|m| **m != owner_id && **m != chat_member)
        .expect("another chat member")
        .clone();
    let team_member = t.members[&team]
        .iter()
        .find(|m| {
            **m != owner_id && !t.members[chat].contains(m) && !t.members[&private].contains(m)
        })
        .expect("a team member outside the chat and the private channel")
        .clone();
    let private_member = t.members[&private]
        .iter()
        .find(|m| **m != owner_id && !t.members[chat].contains(m))
        .expect("a private channel member")
        .clone();
    let stranger_id = t
        .users
        .iter()
        .filter_map(|u| u["id"].as_str())
        .find(|id| !in_any(id))
        .expect("a stranger")
        .to_owned();

    let first_match = fake_saas::msgraph::search_matches(&t.drive_items, "airlock rollout");
    let author_id = first_match[0]["permissions"][0]["grantedToV2"]["user"]["id"]
        .as_str()
        .expect("the item's owner")
        .to_owned();
    let config =
        msgraph_config(&fake, &opts.client_id).replacen("permissions = \"tenant\"\n", "", 1);
    let users = format!(
        "[connector.users]\n\"owner@people.example\" = \"{owner_id}\"\n\
         \"chat@people.example\" = \"{chat_member}\"\n\"other@people.example\" = \"{other_chat_member}\"\n\
         \"team@people.example\" = \"{team_member}\"\n\"private@people.example\" = \"{private_member}\"\n\
         \"stranger@people.example\" = \"{stranger_id}\"\n\"author@people.example\" = \"{author_id}\"\n"
    );
    let env = Env::new(&format!("{config}{users}"));
    env.set_secret("graph_secret", &opts.client_secret);
    let d = env.serve();
    let owner = env.create_token("owner@people.example", "default", &[], false);
    let chat_user = env.create_token("chat@people.example", "default", &[], false);
    let other_chat_user = env.create_token("other@people.example", "default", &[], false);
    let team_user = env.create_token("team@people.example", "default", &[], false);
    let private_user = env.create_token("private@people.example", "default", &[], false);
    let stranger = env.create_token("stranger@people.example", "default", &[], false);
    let device_admin = env.create_token("it-admin", "default", &["msgraph-device-admins"], false);
    let author = env.create_token("author@people.example", "default", &[], false);
    sync_streams(
        &env,
        "msgraph",
        &[
            "users",
            "devices",
            "messages",
            "events",
            "chat-messages",
            "channel-messages",
        ],
    );

    // The records to look at, each with a query that finds it.
    let message = &t.messages[&mailbox][0];
    let message_id = format!("message:{mailbox}/{}", message["id"].as_str().expect("id"));
    let message_subject = message["subject"].as_str().expect("subject").to_owned();
    let now = fake_saas::common::now_ms();
    let event = t.events[&mailbox]
        .iter()
        .find(|e| {
            let start = e["start"]["dateTime"].as_str().unwrap_or("");
            fake_saas::common::parse_rfc3339_ms(&format!("{}Z", &start[..19.min(start.len())]))
                .is_some_and(|ms| (ms - now).abs() < 20 * 86_400_000)
        })
        .expect("an event inside the window");
    let event_id = format!("event:{mailbox}/{}", event["id"].as_str().expect("id"));
    let event_subject = event["subject"].as_str().expect("subject").to_owned();
    let text_of = |m: &Value| {
        let html = m["body"]["content"].as_str().unwrap_or("");
        html.replace("<p>", "").replace("</p>", "")
    };
    let chat_msg = &chat_msgs[chat_msgs.len() / 2];
    let chat_msg_id = format!(
        "chat-message:{chat}/{}",
        chat_msg["id"].as_str().expect("id")
    );
    let chat_text = text_of(chat_msg);
    let std_msg = &t.channels[&standard][0];
    let std_id = format!(
        "channel-message:{standard}/{}",
        std_msg["id"].as_str().expect("id")
    );
    let std_text = text_of(std_msg);
    let priv_msg = &t.channels[&private][0];
    let priv_id = format!(
        "channel-message:{private}/{}",
        priv_msg["id"].as_str().expect("id")
    );
    let priv_text = text_of(priv_msg);
    let user = &t.users[5];
    let user_id = format!("user:{}", user["id"].as_str().expect("id"));
    let user_name = user["displayName"].as_str().expect("name").to_owned();
    let device = &t.devices[0];
    let device_id = format!("device:{}", device["id"].as_str().expect("id"));
    let device_name = device["displayName"].as_str().expect("name").to_owned();
    let rec = |kind, id, query| Record {
        connector: "msgraph",
        kind,
        id,
        query,
    };
    let message_r = rec("message", &message_id, &message_subject);
    let event_r = rec("event", &event_id, &event_subject);
    let chat_r = rec("chat-message", &chat_msg_id, &chat_text);
    let std_r = rec("channel-message", &std_id, &std_text);
    let priv_r = rec("channel-message", &priv_id, &priv_text);
    let user_r = rec("user", &user_id, &user_name);
    let device_r = rec("device", &device_id, &device_name);

    assert_sights(
        &d,
        &[
            ("owner", &owner, true),
            ("chat member", &chat_user, false),
            ("team member", &team_user, false),
            ("stranger", &stranger, false),
            ("device admin", &device_admin, false),
        ],
        &[("message", &message_r), ("event", &event_r)],
    )
    .await;
    assert_sights(
        &d,
        &[
            ("chat member", &chat_user, true),
            ("other chat member", &other_chat_user, true),
            ("team member", &team_user, false),
            ("stranger", &stranger, false),
        ],
        &[("chat message", &chat_r)],
    )
    .await;
    assert_sights(
        &d,
        &[
            ("team member", &team_user, true),
            ("private channel member", &private_user, true),
            ("chat member", &chat_user, false),
            ("stranger", &stranger, false),
        ],
        &[("standard channel message", &std_r)],
    )
    .await;
    assert_sights(
        &d,
        &[
            ("private channel member", &private_user, true),
            ("team member", &team_user, false),
            ("stranger", &stranger, false),
        ],
        &[("private channel message", &priv_r)],
    )
    .await;
    assert_sights(
        &d,
        &[
            ("stranger", &stranger, true),
            ("device admin", &device_admin, true),
        ],
        &[("directory user", &user_r)],
    )
    .await;
    assert_sights(
        &d,
        &[
            ("device admin", &device_admin, true),
            ("stranger", &stranger, false),
        ],
        &[("device", &device_r)],
    )
    .await;
    // `get` through invoke reads the record and its readers live.
    assert!(
        invoke_get(&d, &owner, "msgraph", &message_id).await,
        "invoke, owner"
    );
    assert!(
        !invoke_get(&d, &stranger, "msgraph", &message_id).await,
        "invoke, stranger"
    );
    assert!(
        invoke_get(&d, &chat_user, "msgraph", &chat_msg_id).await,
        "invoke, chat member"
    );
    assert!(
        !invoke_get(&d, &team_user, "msgraph", &chat_msg_id).await,
        "invoke, team member"
    );
    // Live SharePoint hits carry no ACL: `check-permission` reads each item's permissions and
    // answers yes only to a user they name (the app-only search itself is not trimmed).
    let live_ids = |v: &Value| -> BTreeSet<String> {
        let hits = v["hits"].as_array().expect("hits").iter();
        let live = hits.filter(|h| h["source"] == "live");
        live.filter_map(|h| h["id"].as_str().map(str::to_owned))
            .collect()
    };
    let matches = fake_saas::msgraph::search_matches(&t.drive_items, "airlock rollout");
    let grants = |item: &Value, user: &str| {
        let perms = item["permissions"].as_array().expect("permissions");
        perms.iter().any(|p| p["grantedToV2"]["user"]["id"] == user)
    };
    let drive_id = |i: &Value| {
        let drive = i["parentReference"]["driveId"].as_str().expect("drive");
        format!("drive-item:{drive}/{}", i["id"].as_str().expect("id"))
    };
    for (who, token, user) in [
        ("author", &author, author_id.as_str()),
        ("owner", &owner, owner_id.as_str()),
        ("stranger", &stranger, stranger_id.as_str()),
    ] {
        let want: BTreeSet<String> = matches
            .iter()
            .filter(|i| grants(i, user))
            .map(|i| drive_id(i))
            .collect();
        let got = live_ids(&search_in(&d, token, "msgraph", "airlock rollout", true).await);
        assert_eq!(got, want, "live SharePoint hits, {who}");
    }

    // Upstream: the chat member is removed from the chat; the next run takes the access away.
    let kept: Vec<&str> = t.members[chat]
        .iter()
        .map(String::as_str)
        .filter(|m| *m != chat_member)
        .collect();
    fake.set_members(chat, &kept);
    sync_streams(&env, "msgraph", &["chat-messages"]);
    assert_sights(
        &d,
        &[
            ("removed chat member", &chat_user, false),
            ("other chat member", &other_chat_user, true),
        ],
        &[("chat message", &chat_r)],
    )
    .await;
    assert!(
        !invoke_get(&d, &chat_user, "msgraph", &chat_msg_id).await,
        "invoke, removed member"
    );

    // Every stored record carries exactly the readers the fake shows.
    let t = fake.truth();
    let users_of = |ids: &[String]| {
        let mut v: Vec<String> = ids.iter().map(|i| format!("user:{i}")).collect();
        v.sort();
        v
    };
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let docs = airlock::store::documents::all(&conn, "msgraph", None).expect("docs");
    assert!(docs.len() > 300, "{} stored", docs.len());
    for doc in docs {
        let (kind, rest) = doc.id.split_once(':').expect("kind:path");
        let scope = rest.rsplit_once('/').map_or("", |(s, _)| s);
        let want = match kind {
            "user" => vec!["everyone:".to_owned()],
            "device" => vec!["group:msgraph-device-admins".to_owned()],
            "message" | "event" => vec![format!("user:{}", id_of_upn(scope))],
            "chat-message" => users_of(&t.members[scope]),
            "channel-message" => {
                let team = scope.split('/').next().unwrap_or("");
                users_of(t.members.get(scope).unwrap_or(&t.members[team]))
            }
            other => panic!("unexpected kind {other}"),
        };
        assert_eq!(doc.acl, want, "{}", doc.id);
    }
    d.stop();
}
