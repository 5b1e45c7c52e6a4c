//! Tests of the Confluence fake: v2 listings and cursors, CQL search, permissions and
//! restrictions, the permission check, errors, mutations and the seeded data set.

use std::collections::HashSet;

use serde_json::Value;

use super::*;
use crate::testutil::{Reply, http};

const AUTH: Option<(&str, &str)> = Some(("demo@example.com", "demo-confluence-token"));

async fn fake() -> RunningFake<Confluence> {
    spawn_confluence(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake starts")
}

async fn get(f: &RunningFake<Confluence>, path: &str) -> Reply {
    http(f.addr, "GET", path, AUTH, None)
        .await
        .expect("request")
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Follows `_links.next` from `first`, checking the `Link` header each time; returns every result.
async fn all_pages(f: &RunningFake<Confluence>, first: &str) -> Vec<Value> {
    let (mut out, mut path) = (Vec::new(), Some(first.to_owned()));
    while let Some(p) = path {
        let r = get(f, &p).await;
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        let v = r.json();
        let next = v["_links"]["next"].as_str().map(str::to_owned);
        assert_eq!(
            r.header("link").map(str::to_owned),
            next.as_ref().map(|n| format!("<{n}>; rel=\"next\""))
        );
        assert!(next.as_ref().is_none_or(|n| n.starts_with("/wiki/api/v2/")));
        out.extend(v["results"].as_array().expect("results").iter().cloned());
        path = next;
    }
    out
}

#[tokio::test]
async fn auth_is_required_but_control_routes_are_open() {
    let f = fake().await;
    for auth in [
        None,
        Some(("demo@example.com", "wrong")),
        Some(("other@example.com", "demo-confluence-token")),
    ] {
        let r = http(f.addr, "GET", "/wiki/api/v2/pages", auth, None)
            .await
            .expect("request");
        assert_eq!(r.status, 401);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Basic"))
        );
        assert_eq!(r.json()["code"], 401);
    }
    assert_eq!(get(&f, "/wiki/api/v2/pages").await.status, 200);
    assert_eq!(
        http(f.addr, "GET", "/_fake/truth", None, None)
            .await
            .expect("truth")
            .status,
        200
    );
    let counts = http(f.addr, "GET", "/_fake/requests", None, None)
        .await
        .expect("requests")
        .json();
    assert_eq!(counts["total"], 4);
    assert_eq!(f.requests_to("/wiki/api/v2/pages"), 4);
}

#[tokio::test]
async fn paging_returns_every_current_page_once_and_matches_truth() {
    let f = fake().await;
    let results = all_pages(&f, "/wiki/api/v2/pages?limit=7&body-format=storage").await;
    let truth = f.truth();
    assert_eq!(truth.pages.len(), 120);
    assert_eq!(results.len(), truth.pages.len());
    for (got, want) in results.iter().zip(&truth.pages) {
        assert_eq!(got["id"], want.id.as_str());
        assert_eq!(got["title"], want.title.as_str());
        assert_eq!(got["spaceId"], want.space_id.as_str());
        assert_eq!(got["status"], "current");
        assert_eq!(got["version"]["number"], want.version_number);
        assert_eq!(
            got["version"]["createdAt"],
            want.version_created_at.as_str()
        );
        assert_eq!(got["body"]["storage"]["representation"], "storage");
        assert_eq!(got["body"]["storage"]["value"], want.body_storage.as_str());
        assert!(
            got["_links"]["webui"]
                .as_str()
                .is_some_and(|w| w.contains(&want.id))
        );
    }
    let no_body = get(&f, "/wiki/api/v2/pages?limit=1").await.json();
    assert!(no_body["results"][0].get("body").is_none());
    let one = get(
        &f,
        &format!(
            "/wiki/api/v2/pages/{}?body-format=storage",
            truth.pages[5].id
        ),
    )
    .await
    .json();
    assert_eq!(
        one["body"]["storage"]["value"],
        truth.pages[5].body_storage.as_str()
    );
    assert_eq!(get(&f, "/wiki/api/v2/pages/999").await.status, 404);
    let eng = &truth.spaces[0];
    let in_space = all_pages(
        &f,
        &format!("/wiki/api/v2/pages?space-id={}&limit=250", eng.id),
    )
    .await;
    assert_eq!(
        in_space.len(),
        truth.pages.iter().filter(|p| p.space_id == eng.id).count()
    );
    let spaces = get(&f, "/wiki/api/v2/spaces?keys=ENG").await.json();
    assert_eq!(
        spaces["results"][0]["homepageId"],
        eng.homepage_id.as_deref().unwrap_or_default()
    );
    assert_eq!(all_pages(&f, "/wiki/api/v2/spaces?limit=1").await.len(), 3);
}

#[tokio::test]
async fn bad_parameters_get_atlassian_errors() {
    let f = fake().await;
    for q in [
        "limit=0",
        "limit=251",
        "limit=ten",
        "sort=size",
        "status=gone",
        "space-id=abc",
        "body-format=html",
        "cursor=%21%21",
    ] {
        let r = get(&f, &format!("/wiki/api/v2/pages?{q}")).await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(
            r.json()["errors"][0]["code"],
            "INVALID_REQUEST_PARAMETER",
            "{q}"
        );
    }
    assert_eq!(
        get(&f, "/wiki/api/v2/pages?limit=250").await.json()["results"]
            .as_array()
            .map(Vec::len),
        Some(120)
    );
    // A cursor is bound to the sort order it was issued for.
    let first = get(&f, "/wiki/api/v2/pages?limit=2&sort=title")
        .await
        .json();
    let next = first["_links"]["next"]
        .as_str()
        .expect("next")
        .replace("sort=title", "sort=id");
    assert_eq!(get(&f, &next).await.status, 400);
}

#[tokio::test]
async fn sorts_hold_across_pages() {
    let f = fake().await;
    let modified = all_pages(&f, "/wiki/api/v2/pages?sort=-modified-date&limit=9").await;
    let stamps: Vec<&str> = modified
        .iter()
        .filter_map(|p| p["version"]["createdAt"].as_str())
        .collect();
    assert_eq!(stamps.len(), 120);
    assert!(
        stamps.windows(2).all(|w| w[0] > w[1]),
        "strictly descending, distinct timestamps"
    );
    let titles: Vec<String> = all_pages(&f, "/wiki/api/v2/pages?sort=title&limit=11")
        .await
        .iter()
        .map(|p| p["title"].to_string())
        .collect();
    assert!(titles.windows(2).all(|w| w[0] <= w[1]) && titles.len() == 120);
    let created = all_pages(&f, "/wiki/api/v2/pages?sort=-created-date&limit=13").await;
    assert!(
        created
            .windows(2)
            .all(|w| w[0]["createdAt"].as_str() > w[1]["createdAt"].as_str())
    );
}

#[tokio::test]
async fn cql_search_finds_planted_pages_and_pages_by_cursor() {
    let f = fake().await;
    let truth = f.truth();
    let planted: HashSet<&str> = truth
        .pages
        .iter()
        .filter(|p| p.body_text.contains(PLANTED_PHRASE))
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(planted.len(), 3);
    let cql =
        enc(r#"type = page AND text ~ "Quarterly Airlock Review" order by lastmodified desc"#);
    let (mut found, mut path) = (
        Vec::new(),
        Some(format!("/wiki/rest/api/search?cql={cql}&limit=1")),
    );
    while let Some(p) = path {
        let v = get(&f, &p).await.json();
        assert_eq!(v["totalSize"], 3);
        assert_eq!(v["results"][0]["entityType"], "content");
        found.push(v["results"][0].clone());
        // v1 links are relative to _links.base (".../wiki").
        path = v["_links"]["next"].as_str().map(|n| format!("/wiki{n}"));
        assert!(path.as_ref().is_none_or(|n| n.contains("cursor=")));
    }
    let ids: HashSet<&str> = found
        .iter()
        .filter_map(|r| r["content"]["id"].as_str())
        .collect();
    assert_eq!(ids, planted);
    assert!(
        found
            .windows(2)
            .all(|w| w[0]["lastModified"].as_str() > w[1]["lastModified"].as_str())
    );
    assert!(found.iter().all(|r| {
        r["excerpt"]
            .as_str()
            .is_some_and(|e| e.contains(PLANTED_PHRASE))
    }));

    let since = &truth
        .pages
        .iter()
        .map(|p| p.version_created_at.as_str())
        .max()
        .unwrap_or_default()[..10];
    let cql = enc(&format!(
        r#"space = ENG and lastmodified >= "{since} 00:00""#
    ));
    let v = get(&f, &format!("/wiki/rest/api/search?cql={cql}&limit=100"))
        .await
        .json();
    let want = truth
        .pages
        .iter()
        .filter(|p| p.space_key == "ENG" && p.version_created_at.as_str() >= since)
        .count();
    assert!(want > 0);
    assert_eq!(v["totalSize"], want);
    for bad in [
        "text ~",
        "text ~ \"x\" OR title ~ y",
        "nonsense",
        "lastmodified >= \"last tuesday\"",
    ] {
        let r = get(&f, &format!("/wiki/rest/api/search?cql={}", enc(bad))).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["statusCode"], 400);
    }
}

#[tokio::test]
async fn mutations_show_in_truth_and_api() {
    let f = fake().await;
    let before = f.truth();
    let r = http(
        f.addr,
        "POST",
        "/_fake/mutate",
        None,
        Some(r#"{"update":5,"delete":4,"create":3}"#),
    )
    .await
    .expect("mutate");
    let report: MutationReport = serde_json::from_str(&r.body).expect("report");
    assert_eq!(
        (
            report.updated.len(),
            report.deleted.len(),
            report.created.len()
        ),
        (5, 4, 3)
    );
    let after = f.truth();
    assert_eq!(after.pages.len(), 120 - 4 + 3);
    assert_eq!(
        after
            .trashed
            .iter()
            .map(|p| p.id.clone())
            .collect::<Vec<_>>(),
        report.deleted
    );
    let old_max = before
        .pages
        .iter()
        .map(|p| p.version_created_at.clone())
        .max()
        .unwrap_or_default();
    for id in &report.updated {
        let (b, a) = (
            before.pages.iter().find(|p| &p.id == id),
            after.pages.iter().find(|p| &p.id == id),
        );
        let (Some(b), Some(a)) = (b, a) else {
            panic!("updated page {id} missing")
        };
        assert_eq!(a.version_number, b.version_number + 1);
        assert!(
            a.version_created_at > old_max
                && a.title != b.title
                && a.body_storage != b.body_storage
        );
    }
    let listed = all_pages(&f, "/wiki/api/v2/pages?limit=50").await;
    assert_eq!(listed.len(), after.pages.len());
    assert!(
        listed
            .iter()
            .all(|p| !report.deleted.iter().any(|d| p["id"] == d.as_str()))
    );
    let trashed = all_pages(&f, "/wiki/api/v2/pages?status=trashed").await;
    assert_eq!(
        trashed
            .iter()
            .filter_map(|p| p["id"].as_str())
            .collect::<Vec<_>>(),
        report.deleted
    );
    let both = all_pages(&f, "/wiki/api/v2/pages?status=current,trashed&limit=250").await;
    assert_eq!(both.len(), 120 + 3);
    let gone = &report.deleted[0];
    assert_eq!(
        get(&f, &format!("/wiki/api/v2/pages/{gone}")).await.status,
        404
    );
    assert_eq!(
        get(&f, &format!("/wiki/api/v2/pages/{gone}?status=trashed"))
            .await
            .json()["status"],
        "trashed"
    );
    // The incremental view: newest first are exactly the touched current pages.
    let newest = get(&f, "/wiki/api/v2/pages?sort=-modified-date&limit=8")
        .await
        .json();
    let newest: HashSet<&str> = newest["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str())
        .collect();
    let touched: HashSet<&str> = report
        .updated
        .iter()
        .chain(&report.created)
        .map(String::as_str)
        .collect();
    assert_eq!(newest, touched);
    assert_eq!(f.create_pages(2).len(), 2);
    assert_eq!(f.truth().pages.len(), 121);
}

#[tokio::test]
async fn permission_check_follows_restrictions() {
    let f = fake().await;
    let truth = f.truth();
    // Restricted itself, and readable by someone (no ancestor excludes everyone it names).
    let restricted = truth
        .pages
        .iter()
        .find(|p| !p.read_restricted_to.is_empty() && !p.readers.is_empty())
        .expect("some restricted page");
    // Readable by every seeded user: no restriction on it or above it.
    let open = truth
        .pages
        .iter()
        .find(|p| p.readers.len() == ACCOUNT_IDS.len())
        .expect("some open page");
    let outsider = ACCOUNT_IDS
        .iter()
        .find(|a| !restricted.readers.iter().any(|r| r == *a))
        .expect("outsider");
    let check = |id: &str, who: &str| {
        let body =
            format!(r#"{{"subject":{{"type":"user","identifier":"{who}"}},"operation":"read"}}"#);
        let path = format!("/wiki/rest/api/content/{id}/permission/check");
        async move {
            http(f.addr, "POST", &path, AUTH, Some(&body))
                .await
                .expect("check")
        }
    };
    assert_eq!(
        check(&restricted.id, &restricted.readers[0]).await.json()["hasPermission"],
        true
    );
    assert_eq!(
        check(&restricted.id, outsider).await.json()["hasPermission"],
        false
    );
    assert_eq!(
        check(&open.id, outsider).await.json()["hasPermission"],
        true
    );
    assert_eq!(check("123", outsider).await.status, 404);
    let r = http(
        f.addr,
        "POST",
        &format!("/wiki/rest/api/content/{}/permission/check", open.id),
        AUTH,
        Some("{"),
    )
    .await;
    assert_eq!(r.expect("check").status, 400);
}

#[tokio::test]
async fn permission_check_honours_the_operation() {
    let f = fake().await;
    let truth = f.truth();
    // An open page with an edit restriction: everyone reads it, only its author updates it.
    let page = truth
        .pages
        .iter()
        .find(|p| p.readers.len() == ACCOUNT_IDS.len() && !p.update_restricted_to.is_empty())
        .expect("an edit-restricted open page");
    let author = &page.update_restricted_to[0];
    let reader = ACCOUNT_IDS
        .iter()
        .find(|a| *a != author)
        .expect("another user");
    let check = |who: &str, op: &str| {
        let body =
            format!(r#"{{"subject":{{"type":"user","identifier":"{who}"}},"operation":"{op}"}}"#);
        let path = format!("/wiki/rest/api/content/{}/permission/check", page.id);
        async move {
            http(f.addr, "POST", &path, AUTH, Some(&body))
                .await
                .expect("check")
        }
    };
    let allowed = |r: crate::testutil::Reply| r.json()["hasPermission"].clone();
    assert_eq!(allowed(check(reader, "read").await), true);
    assert_eq!(allowed(check(reader, "update").await), false);
    assert_eq!(allowed(check(reader, "delete").await), false);
    assert_eq!(allowed(check(author, "update").await), true);
    let r = check(reader, "administer").await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test]
async fn rate_limit_knob_and_shutdown() {
    let f = fake().await;
    f.set_rate_limit_every(Some(3));
    let statuses = [
        get(&f, "/wiki/api/v2/spaces").await,
        get(&f, "/wiki/api/v2/spaces").await,
        get(&f, "/wiki/api/v2/spaces").await,
    ];
    assert_eq!(
        statuses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 429]
    );
    let limited = &statuses[2];
    assert_eq!(limited.header("retry-after"), Some("1"));
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-nearlimit",
        "ratelimit-reason",
    ] {
        assert!(limited.header(h).is_some(), "{h}");
    }
    let off = http(
        f.addr,
        "POST",
        "/_fake/config",
        None,
        Some(r#"{"rate_limit_every":null}"#),
    )
    .await
    .expect("config");
    assert_eq!(off.status, 200);
    assert_eq!(get(&f, "/wiki/api/v2/spaces").await.status, 200);
    f.shutdown().await;
    assert!(tokio::net::TcpStream::connect(f.addr).await.is_err());
    assert_eq!(
        f.truth().pages.len(),
        120,
        "state stays readable after shutdown"
    );
}

#[test]
fn same_seed_same_data() {
    let opts = ConfluenceOptions::default();
    let a = generate(&opts).truth();
    assert_eq!(a, generate(&opts).truth());
    assert_ne!(
        a,
        generate(&ConfluenceOptions {
            seed: 8,
            ..opts.clone()
        })
        .truth()
    );
    assert_eq!(
        a.pages
            .iter()
            .filter(|p| p.body_text.contains(PLANTED_PHRASE))
            .count(),
        3
    );
    assert!(
        a.pages
            .iter()
            .any(|p| p.body_storage.contains("&amp;") && p.body_text.contains(" & "))
    );
    assert!(
        a.pages
            .iter()
            .any(|p| p.body_storage.contains("<ac:structured-macro"))
    );
    let created: HashSet<&str> = a.pages.iter().map(|p| p.created_at.as_str()).collect();
    assert_eq!(created.len(), 120);
    let big = generate(&ConfluenceOptions {
        pages: 5000,
        spaces: 12,
        ..opts
    })
    .truth();
    assert_eq!((big.pages.len(), big.spaces.len()), (5000, 12));
    let mut mutated = generate(&ConfluenceOptions::default());
    let mut again = generate(&ConfluenceOptions::default());
    let m = Mutation {
        update: 3,
        delete: 3,
        create: 3,
        ..Mutation::default()
    };
    assert_eq!(
        mutated.mutate(m.clone()),
        again.mutate(m),
        "mutations pick the same pages for the same seed"
    );
}

#[tokio::test]
async fn permissions_are_served_as_confluence_serves_them_and_inherit_down_the_tree() {
    let f = fake().await;
    let truth = f.truth();
    let space = &truth.spaces[0];
    let grants = all_pages(
        &f,
        &format!("/wiki/api/v2/spaces/{}/permissions?limit=2", space.id),
    )
    .await;
    let users_group = &truth.groups[0];
    assert!(grants.iter().any(|g| g["principal"]["type"] == "group"
        && g["principal"]["id"] == users_group.id.as_str()
        && g["operation"]["key"] == "read"
        && g["operation"]["targetType"] == "space"));
    assert!(
        grants.iter().any(|g| g["principal"]["type"] == "role"),
        "roles are listed too"
    );
    assert_eq!(
        get(&f, "/wiki/api/v2/spaces/1/permissions").await.status,
        404
    );

    // A child page under a parent: restricting the parent narrows the child, without a new
    // version of either.
    let child = truth
        .pages
        .iter()
        .find(|p| p.parent_id.is_some() && p.readers.len() == ACCOUNT_IDS.len())
        .expect("an open child page");
    let parent = child.parent_id.clone().expect("parent");
    let ancestors = get(&f, &format!("/wiki/api/v2/pages/{}/ancestors", child.id))
        .await
        .json();
    let ids: Vec<&str> = ancestors["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.last(),
        Some(&parent.as_str()),
        "top first, the parent last"
    );
    f.restrict_page(&parent, &[ACCOUNT_IDS[5]], &["finance"]);
    let after = f.truth();
    let child_now = after.pages.iter().find(|p| p.id == child.id).unwrap();
    assert_eq!(child_now.version_number, child.version_number);
    // finance is ACCOUNT_IDS 3 and 4.
    let want: Vec<String> = [3, 4, 5]
        .iter()
        .map(|&i| ACCOUNT_IDS[i].to_string())
        .collect();
    let mut got = child_now.readers.clone();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted);
    let r = get(
        &f,
        &format!("/wiki/rest/api/content/{parent}/restriction/byOperation/read"),
    )
    .await
    .json();
    assert_eq!(
        r["restrictions"]["user"]["results"][0]["accountId"],
        ACCOUNT_IDS[5]
    );
    assert_eq!(r["restrictions"]["group"]["results"][0]["name"], "finance");
    let r = get(
        &f,
        &format!(
            "/wiki/rest/api/content/{}/restriction/byOperation/read",
            child.id
        ),
    )
    .await
    .json();
    assert_eq!(
        r["restrictions"]["user"]["size"], 0,
        "the child's own restriction is empty"
    );
    let check = |who: &'static str| {
        let body =
            format!(r#"{{"subject":{{"type":"user","identifier":"{who}"}},"operation":"read"}}"#);
        let path = format!("/wiki/rest/api/content/{}/permission/check", child.id);
        async move {
            http(f.addr, "POST", &path, AUTH, Some(&body))
                .await
                .expect("check")
                .json()["hasPermission"]
                .clone()
        }
    };
    assert_eq!(check(ACCOUNT_IDS[3]).await, true, "through the group");
    assert_eq!(
        check(ACCOUNT_IDS[0]).await,
        false,
        "not in the parent's restriction"
    );

    // Space read permissions: without the group, only the named user reads the space.
    f.set_space_read(&space.key, &[ACCOUNT_IDS[1]], &[]);
    let home = f
        .truth()
        .pages
        .into_iter()
        .find(|p| Some(&p.id) == space.homepage_id.as_ref())
        .unwrap();
    assert_eq!(home.readers, vec![ACCOUNT_IDS[1].to_string()]);

    // Groups and their members, v1 paging.
    let groups = get(&f, "/wiki/rest/api/group?limit=2").await.json();
    assert_eq!(groups["size"], 2);
    assert!(groups["_links"]["next"].is_string());
    let members = get(
        &f,
        &format!(
            "/wiki/rest/api/group/{}/membersByGroupId",
            truth.groups[2].id
        ),
    )
    .await
    .json();
    let emails: Vec<&str> = members["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, vec![USER_EMAILS[3], USER_EMAILS[4]]);
}
