//! The dashboard at `/` in a real headless Chromium (Debian's `chromium`, driven over CDP): what
//! a person sees with an admin token (connectors with health and breaker state, a stream's sync
//! progress, then, without a reload, a new pending approval and new audit rows), with a
//! non-admin token ("admin only"), with a bad token, without one, and once the daemon is gone.
//! Hostile data (an approval's input) shows as text and runs nothing. Load and config errors
//! head the page; the search box finds what the token's tenant may read and nothing of another
//! tenant's; the per-grant charts and sync throughput are drawn from the daemon's own last hour.
//! The page is saved to `target/dashboard.png`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use airlock_tests::*;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::{Page, ScreenshotParams};
use fake_saas::{
    AteraOptions, ConfluenceOptions, ZendeskOptions, spawn_atera, spawn_confluence, spawn_zendesk,
};
use futures::StreamExt;
use serde_json::{Value, json};

/// The browser: `$CHROME`, else `chromium` on the PATH. Missing is a failure with the fix, never
/// a silent skip.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROME") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the dashboard test needs a Chromium: `apt-get install -y chromium` (make test \
                 installs it), or set CHROME to a Chromium or Chrome binary"
            )
        })
}

async fn launch(profile: &std::path::Path) -> Browser {
    let (w, h) = (1400, 1000);
    let config = BrowserConfig::builder()
        .chrome_executable(chromium())
        .no_sandbox()
        .args([
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
        ])
        .user_data_dir(profile)
        .window_size(w, h)
        .viewport(Viewport {
            width: w,
            height: h,
            ..Viewport::default()
        })
        .launch_timeout(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(60))
        .build()
        .expect("browser config");
    let (browser, mut handler) = Browser::launch(config)
        .await
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium().display()));
    tokio::spawn(async move { while handler.next().await.is_some() {} });
    browser
}

/// A JavaScript expression's value on the page.
async fn js(page: &Page, expr: &str) -> Value {
    page.evaluate(expr)
        .await
        .unwrap_or_else(|e| panic!("evaluate {expr}: {e}"))
        .into_value::<Value>()
        .unwrap_or(Value::Null)
}

/// Waits until `expr` is true on the page; fails with what the page shows.
async fn until(page: &Page, what: &str, expr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if js(page, expr).await == json!(true) {
            return;
        }
        if Instant::now() > deadline {
            let shown = js(page, "document.body.innerText").await;
            panic!("the dashboard never showed {what} ({expr}); it shows:\n{shown}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The text of the element `selector` (empty when absent).
fn text_of(selector: &str) -> String {
    format!("(document.querySelector({selector:?}) || {{innerText: ''}}).innerText")
}

/// A new tab at `url` (its own session storage); the checks wait for what the script renders.
async fn open(browser: &Browser, url: &str) -> Page {
    browser.new_page(url).await.expect("new page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_connectors_sync_approvals_and_audit_live() {
    let any = || "127.0.0.1:0".parse().expect("addr");
    let confluence = spawn_confluence(any(), ConfluenceOptions::default())
        .await
        .expect("confluence fake");
    let zendesk = spawn_zendesk(any(), ZendeskOptions::default())
        .await
        .expect("zendesk fake");
    let atera = spawn_atera(any(), AteraOptions::default())
        .await
        .expect("atera fake");
    // A component that is not WebAssembly: it fails to load, the others serve.
    let junk = tempfile::tempdir().expect("junk dir");
    let broken = junk.path().join("broken.wasm");
    std::fs::write(&broken, "this is not wasm").expect("write");
    let env = Env::new(&format!(
        "{}{}{}{}",
        confluence_config(&confluence.base_url),
        zendesk_config(&zendesk.base_url, ""),
        atera_config(&atera.base_url),
        broken_and_other_tenant(&broken),
    ));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    env.set_secret("zendesk_token", &ZendeskOptions::default().api_token);
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    // Another tenant's document holds the words the search below looks for.
    let phrase = fake_saas::confluence::PLANTED_PHRASE;
    let body = format!("Minutes of the {phrase} at Acme.");
    store_docs(
        &env,
        "acme-notes",
        &[doc("acme-1", "Acme board minutes", &body, &[])],
    );
    let bob = env.create_token("bob", "default", &[], false);
    let carol = env.create_token("carol", "acme", &[], false);
    let d = env.serve();

    // The page is open (no token needed) and locked down.
    let (status, headers, body) = http_raw("GET", &format!("{}/", d.base), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("/dashboard/app.js"), "{body}");
    let csp = headers.get("content-security-policy").expect("CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(
        headers.get("x-content-type-options").map(String::as_str),
        Some("nosniff")
    );
    let (status, headers, _) = http_raw("GET", &format!("{}/dashboard/app.js", d.base), None).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"].starts_with("text/javascript"),
        "{headers:?}"
    );

    let profile = tempfile::tempdir().expect("profile dir");
    let browser = launch(profile.path()).await;

    // No token: the page says how to get one.
    let page = open(&browser, &format!("{}/", d.base)).await;
    until(
        &page,
        "the no-token state",
        "document.body.dataset.state === 'no-token'",
    )
    .await;
    let banner = js(&page, &text_of("#state")).await;
    assert!(
        banner.as_str().unwrap_or_default().contains("No token"),
        "{banner}"
    );

    // A bad token: a clear refusal, no data.
    let page = open(&browser, &format!("{}/#token=alk_not-a-real-token", d.base)).await;
    until(
        &page,
        "the bad-token state",
        "document.body.dataset.state === 'bad-token'",
    )
    .await;
    let banner = js(&page, &text_of("#state")).await;
    assert!(
        banner.as_str().unwrap_or_default().contains("refused"),
        "{banner}"
    );

    // A non-admin: connectors, and "admin only" where the audit log would be.
    let page = open(&browser, &format!("{}/#token={bob}", d.base)).await;
    until(
        &page,
        "bob's connectors",
        "!!document.querySelector('[data-connector=\"zendesk\"]')",
    )
    .await;
    until(
        &page,
        "admin only on the audit log",
        &format!("{}.includes('admin only')", text_of("#audit")),
    )
    .await;
    until(
        &page,
        "admin only on the webhooks",
        &format!("{}.includes('admin only')", text_of("#webhooks")),
    )
    .await;
    page.close().await.expect("close");

    // The admin. The token is taken from the fragment, which then leaves the address bar.
    let page = open(&browser, &format!("{}/#token={}", d.base, d.token)).await;
    for id in ["confluence", "zendesk", "atera"] {
        let card = format!("[data-connector=\"{id}\"]");
        until(
            &page,
            &format!("connector {id}"),
            &format!("!!document.querySelector('{card}')"),
        )
        .await;
        let shown = js(&page, &text_of(&card)).await;
        let shown = shown.as_str().unwrap_or_default();
        assert!(shown.contains("healthy"), "{id}: {shown}");
        assert!(shown.contains("closed"), "{id} breaker: {shown}");
    }
    assert_eq!(js(&page, "location.hash").await, json!(""));
    // Marks this page load: still there at the end proves nothing reloaded.
    js(&page, "window.__sameLoad = 'yes'").await;

    // A sync's progress appears.
    let (status, v) = d
        .post("/v1/sync/confluence", r#"{"stream": "pages"}"#)
        .await;
    assert_eq!(status, 202, "{v}");
    let row = "[data-stream=\"confluence/pages\"]";
    until(
        &page,
        "confluence/pages synced with 120 records",
        &format!(
            "{t}.includes('up to date') && (document.querySelector('{row} .records') || {{}}).textContent === '120'",
            t = text_of(row)
        ),
    )
    .await;

    // The finished run is in the metrics too, as a timestamp of the last success.
    let (status, text) = http("GET", &format!("{}/metrics", d.base), None).await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap_or_default().to_string();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(
                "airlock_sync_last_success_timestamp_seconds{connector=\"confluence\",stream=\"pages\"}",
            )
        })
        .unwrap_or_else(|| panic!("no last-success gauge for confluence/pages:\n{text}"));
    let at: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - at).abs() < 600.0, "{line}");

    // A new pending approval and its audit row appear without a reload. Its input is hostile
    // markup, which must show as text and run nothing.
    let before = js(&page, "Math.max(0, ...[...document.querySelectorAll('#audit tr[data-seq]')].map(r => +r.dataset.seq))").await;
    let before = before.as_i64().unwrap_or(0);
    let ticket = atera.truth().tickets[0].id;
    let hostile = "<img src=x onerror=\"window.__pwned=1\"><b>bold</b>";
    let (status, v) = d
        .invoke(
            "atera",
            "add-comment",
            json!({"ticket_id": ticket, "comment": hostile}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let approval = v["approval"]["id"]
        .as_str()
        .expect("approval id")
        .to_string();
    let arow = format!("[data-approval=\"{approval}\"]");
    until(
        &page,
        "the new pending approval",
        &format!("!!document.querySelector('{arow}')"),
    )
    .await;
    let shown = js(&page, &text_of(&arow)).await;
    let shown = shown.as_str().unwrap_or_default();
    assert!(
        shown.contains("pending") && shown.contains("add-comment"),
        "{shown}"
    );
    assert!(shown.contains("token:test-admin"), "{shown}");
    assert!(
        shown.contains("<img src=x"),
        "the markup shows as text: {shown}"
    );
    assert_eq!(
        js(
            &page,
            "document.querySelectorAll('main img, main b').length"
        )
        .await,
        json!(0)
    );
    assert_eq!(js(&page, "typeof window.__pwned").await, json!("undefined"));
    until(
        &page,
        "the approval's audit row",
        &format!(
            "[...document.querySelectorAll('#audit tr[data-seq]')].some(r => +r.dataset.seq > {before} && r.innerText.includes('approval') && r.innerText.includes('pending') && r.innerText.includes('token:test-admin'))"
        ),
    )
    .await;
    assert_eq!(
        js(&page, "window.__sameLoad").await,
        json!("yes"),
        "the page reloaded"
    );

    // Load errors head the page: the connector that did not load, with why.
    until(
        &page,
        "the broken connector at the top",
        "!document.getElementById('problems').hidden && !!document.querySelector('#problems [data-problem=\"load:broken\"]')",
    )
    .await;
    let shown = js(&page, &text_of("#problems")).await;
    let shown = shown.as_str().unwrap_or_default();
    assert!(
        shown.contains("broken") && shown.contains("did not load"),
        "{shown}"
    );
    assert_eq!(
        js(
            &page,
            "document.getElementById('problems').getBoundingClientRect().top < document.querySelector('main').getBoundingClientRect().top"
        )
        .await,
        json!(true),
        "the problems are above everything else"
    );

    // The search box: the synced pages holding the phrase, nothing of the other tenant's.
    assert_eq!(
        js(
            &page,
            "[...document.querySelectorAll('#search-mode option')].map(o => o.value)"
        )
        .await,
        json!(["keyword"]),
        "semantic and hybrid are offered only with [search.semantic]"
    );
    let hits = page_search(&page, phrase).await;
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(
        hits.iter().all(|h| h.starts_with("confluence/")),
        "{hits:?}"
    );
    let shown = js(&page, &text_of("#search-results")).await;
    assert!(
        shown.as_str().unwrap_or_default().contains("quarterly"),
        "{shown}"
    );

    // Outbound requests per grant: the sync's, and one the upstream answers 404 (an error).
    let (status, v) = d
        .invoke("confluence", "get", json!({"id": "999999999"}))
        .await;
    assert_ne!(status, 200, "{v}");
    let card = "[data-grant^=\"confluence/\"]";
    until(
        &page,
        "confluence's request, error and latency charts",
        &format!(
            "(() => {{ const c = document.querySelector('{card}'); return !!c && +c.dataset.requests > 1 \
             && c.querySelectorAll('svg.chart').length === 3 \
             && c.querySelectorAll('svg.chart rect.bar').length > 0 \
             && c.querySelectorAll('svg.chart .errors').length > 0 \
             && c.querySelectorAll('svg.chart .p95').length > 0; }})()"
        ),
    )
    .await;
    // What the charts draw is what the gate did: one request per `http` audit row.
    let (status, act) = d.get("/v1/activity").await;
    assert_eq!(status, 200, "{act}");
    let grant = act["grants"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["connector"] == "confluence"))
        .cloned()
        .unwrap_or_else(|| panic!("no confluence grant: {act}"));
    let (_, audit) = d.get("/v1/audit?connector=confluence&limit=1000").await;
    let sent = audit["rows"]
        .as_array()
        .map(|rows| rows.iter().filter(|r| r["event"] == "http").count())
        .unwrap_or_default();
    assert!(sent > 1, "{audit}");
    assert_eq!(grant["total"]["requests"], json!(sent), "{grant}");
    assert!(grant["total"]["errors"].as_u64() >= Some(1), "{grant}");
    assert_eq!(grant["requests"].as_array().map(Vec::len), Some(60));
    let stream = act["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stream"] == "pages"))
        .cloned()
        .unwrap_or_else(|| panic!("no pages stream: {act}"));
    assert_eq!(stream["total"]["records"], 120, "{stream}");
    // Sync throughput per stream, in the sync table.
    until(
        &page,
        "confluence/pages throughput",
        &format!(
            "(document.querySelector('{row} .throughput') || {{dataset: {{}}}}).dataset.records === '120' \
             && !!document.querySelector('{row} .throughput svg.chart rect.bar')"
        ),
    )
    .await;

    // Another tenant: its own document, none of the default tenant's, and none of its problems
    // or figures.
    let other = open(&browser, &format!("{}/#token={carol}", d.base)).await;
    until(
        &other,
        "carol's connector",
        "!!document.querySelector('[data-connector=\"acme-notes\"]')",
    )
    .await;
    let hits = page_search(&other, phrase).await;
    assert_eq!(hits, ["acme-notes/page/acme-1"]);
    assert_eq!(
        js(&other, "document.getElementById('problems').hidden").await,
        json!(true)
    );
    assert_eq!(
        js(
            &other,
            "document.querySelectorAll('[data-grant^=\"confluence/\"]').length"
        )
        .await,
        json!(0)
    );
    let (_, theirs) = http_auth(
        "GET",
        &format!("{}/v1/activity", d.base),
        Some(&carol),
        None,
    )
    .await;
    assert!(
        !theirs.to_string().contains("confluence"),
        "another tenant's figures: {theirs}"
    );
    other.close().await.expect("close");

    // A config file that cannot be applied: said at the top, the running config stays.
    let config = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(&env.config, format!("{config}\n[[[ not toml\n")).expect("break config");
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status();
    until(
        &page,
        "the config error at the top",
        "!!document.querySelector('#problems [data-problem=\"config\"]')",
    )
    .await;
    let shown = js(&page, &text_of("#problems")).await;
    assert!(
        shown.as_str().unwrap_or_default().contains("not applied"),
        "{shown}"
    );
    assert!(
        js(
            &page,
            "!!document.querySelector('[data-connector=\"zendesk\"]')"
        )
        .await
        .as_bool()
        .unwrap_or(false)
    );

    let png = root().join("target/dashboard.png");
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &png)
        .await
        .expect("screenshot");

    // The daemon goes away: the page says so instead of breaking.
    let log = d.stop();
    until(
        &page,
        "the unreachable state",
        "document.body.dataset.state === 'unreachable'",
    )
    .await;
    let banner = js(&page, &text_of("#state")).await;
    assert!(
        banner.as_str().unwrap_or_default().contains("Cannot reach"),
        "{banner}"
    );
    // The token travelled only in headers: the fragment never reaches the daemon's log.
    assert!(!log.contains(&bob), "a token in the daemon log");

    drop(page);
    let mut browser = browser;
    let _ = browser.close().await;
    let _ = browser.wait().await;
}

/// The broken component as connector `broken` (tenant `default`), and tenant `acme`'s connector
/// `acme-notes` (the hostile component; its documents are stocked directly).
fn broken_and_other_tenant(broken: &std::path::Path) -> String {
    format!(
        r#"
[[connector]]
id = "broken"
component = "{}"
permissions = "tenant"

[[connector]]
id = "acme-notes"
component = "{}"
permissions = "tenant"
tenant = "acme"
"#,
        broken.display(),
        component("hostile").display()
    )
}

/// Searches with the page's search box; the hits shown, as `connector/kind/id`.
async fn page_search(page: &Page, query: &str) -> Vec<String> {
    let q = serde_json::to_string(query).expect("json");
    js(
        page,
        &format!(
            "(() => {{ document.getElementById('search-input').value = {q}; \
             document.getElementById('search-form').requestSubmit(); return true; }})()"
        ),
    )
    .await;
    until(
        page,
        &format!("the hits for {query}"),
        &format!("document.getElementById('search-results').dataset.query === {q}"),
    )
    .await;
    let v = js(
        page,
        "[...document.querySelectorAll('#search-results [data-hit]')].map(h => h.dataset.hit)",
    )
    .await;
    serde_json::from_value(v).unwrap_or_default()
}
