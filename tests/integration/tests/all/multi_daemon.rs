//! Three `airlock serve` processes on one PostgreSQL database: every Zendesk stream ends at the
//! fake's ground truth although the daemon running the tickets stream is killed (SIGKILL) in the
//! middle of it; the three together stay within the grant's rate (counted at the fake); a token
//! revoked through one daemon's CLI is refused by all three; the audit chains and their signed
//! checkpoints still verify.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::store::backend::Store;
use airlock::store::pg::PgStore;
use airlock_tests::*;
use fake_saas::{ZendeskOptions, spawn_zendesk};
use pg_cluster::PgCluster;

const RATE: f64 = 12.0;
const BURST: u32 = 3;
const TICKETS: usize = 3000;

fn config(pg_url: &str, base_url: &str) -> String {
    let zendesk = zendesk_config(base_url, "page_size = 100").replacen(
        "permissions = \"tenant\"\n",
        "permissions = \"tenant\"\nsync = { interval = \"2s\" }\n",
        1,
    );
    format!(
        "[store]\nurl = \"{pg_url}\"\n{zendesk}rate = {{ per_second = {RATE}, burst = {BURST} }}\n"
    )
}

/// The pid in a lease owner's name (`HOST:PID:BOOT:NONCE`).
fn owner_pid(owner: &str) -> Option<u32> {
    owner.split(':').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_share_the_sync_survive_a_kill_and_stay_within_the_rate() {
    let pg = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    pg.create_database("multi").unwrap();
    let url = pg.url_of("multi");
    let fake = spawn_zendesk(
        "127.0.0.1:0".parse().expect("addr"),
        ZendeskOptions {
            tickets: TICKETS,
            recent_exclusion_secs: 0,
            ..ZendeskOptions::default()
        },
    )
    .await
    .expect("fake");
    let envs: Vec<Env> = (0..3)
        .map(|_| Env::new(&config(&url, &fake.base_url)))
        .collect();
    // One vault in the shared store; every daemon needs the same master key to open it, and
    // the same audit signing key so that any one of them verifies every chain's checkpoints.
    envs[0].set_secret("zendesk_token", &ZendeskOptions::default().api_token);
    airlock::store::checkpoint::CheckpointSigner::open(
        &envs[0].data_dir(),
        airlock::store::checkpoint::Sink::None,
    )
    .expect("signing key");
    for file in ["master.key", "audit-signing.key"] {
        let key = envs[0].data_dir().join(file);
        for e in &envs[1..] {
            std::fs::create_dir_all(e.data_dir()).unwrap();
            // A copy keeps the owner-only mode the key files must have.
            std::fs::copy(&key, e.data_dir().join(file)).unwrap();
        }
    }
    let store = Store::Postgres(Arc::new(PgStore::open(&url).await.expect("store")));

    fake.reset_requests();
    let started = Instant::now();
    let mut daemons: Vec<Option<Daemon>> = envs.iter().map(|e| Some(e.serve())).collect();

    // Kill whichever daemon runs the tickets stream once it is part-way through.
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed = loop {
        assert!(
            Instant::now() < deadline,
            "the tickets stream never started"
        );
        let states = store.sync_states().await.expect("states");
        let done_part = states
            .iter()
            .find(|s| s.connector == "zendesk" && s.stream == "tickets")
            .map_or(0, |s| s.records);
        let owner = store
            .leases()
            .await
            .expect("leases")
            .into_iter()
            .find(|l| l.stream == "tickets")
            .and_then(|l| l.owner);
        if done_part > 0
            && let Some(pid) = owner.as_deref().and_then(owner_pid)
        {
            assert!(
                (done_part as usize) < TICKETS,
                "the tickets stream finished before it could be interrupted"
            );
            let i = daemons
                .iter()
                .position(|d| d.as_ref().is_some_and(|d| d.child.id() == pid))
                .expect("the lease owner is one of the three daemons");
            // Another daemon shows who runs the stream.
            let other = daemons[(i + 1) % 3].as_ref().expect("daemon");
            let (status, v) = other.get("/v1/sync").await;
            assert_eq!(status, 200, "{v}");
            let tickets = v["streams"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["stream"] == "tickets"))
                .cloned()
                .unwrap_or_default();
            if tickets["held_by"] == owner.as_deref().unwrap_or_default() {
                assert_eq!(tickets["running_elsewhere"], true, "{tickets}");
                assert_eq!(tickets["running"], false, "{tickets}");
            }
            let mut d = daemons[i].take().expect("daemon");
            d.child.kill().expect("SIGKILL");
            let _ = d.child.wait();
            break i;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The others take the stream over (the owner is dead) and finish it from the last cursor.
    let truth = fake.truth();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let states = store.sync_states().await.expect("states");
        let finished = ["tickets", "articles", "comments"].iter().all(|stream| {
            states
                .iter()
                .any(|s| s.stream == *stream && s.last_success_at.is_some())
        });
        let tickets = store
            .documents("zendesk", Some("ticket"))
            .await
            .expect("documents");
        if finished && tickets.len() == truth.tickets.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not at the ground truth in time: {} of {} tickets; states {states:?}",
            tickets.len(),
            truth.tickets.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = fake.requests().total;

    // Exactly the fake's tickets, each at its latest version.
    let tickets = store
        .documents("zendesk", Some("ticket"))
        .await
        .expect("documents");
    let mut stored: Vec<(String, String)> = tickets
        .iter()
        .map(|d| (d.id.clone(), d.updated_at.clone()))
        .collect();
    stored.sort();
    let mut expected: Vec<(String, String)> = truth
        .tickets
        .iter()
        .map(|t| (t.id.to_string(), t.updated_at.clone()))
        .collect();
    expected.sort();
    assert!(
        stored == expected,
        "the stored tickets differ from the fake's"
    );
    let articles = store
        .documents("zendesk", Some("article"))
        .await
        .expect("articles");
    assert_eq!(articles.len(), truth.articles.len());

    eprintln!("multi-daemon: {sent} upstream requests in {elapsed:.1} s (grant rate {RATE}/s)");
    // Three daemons, one grant: together within its rate (+ each daemon's share of the burst).
    let allowed = RATE * elapsed + f64::from(BURST) * 3.0;
    assert!(
        (sent as f64) <= allowed,
        "{sent} requests in {elapsed:.1} s: more than the grant's {RATE}/s allows ({allowed:.0})"
    );

    // A token revoked through one daemon's CLI is refused by every daemon at once.
    let alive: Vec<&Daemon> = daemons.iter().flatten().collect();
    assert_eq!(alive.len(), 2, "daemon {killed} was killed");
    let token = envs[0].create_token("reader", "default", &[], false);
    for d in &alive {
        let (status, _) = http_auth(
            "GET",
            &format!("{}/v1/connectors", d.base),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200);
    }
    let out = envs[1].airlock(&["tokens", "revoke", "reader"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for d in &alive {
        let (status, _) = http_auth(
            "GET",
            &format!("{}/v1/connectors", d.base),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 401, "a revoked token is refused by {}", d.base);
    }

    // Every daemon's audit chain verifies, the killed one's included.
    for d in daemons.iter_mut() {
        if let Some(d) = d.take() {
            d.stop();
        }
    }
    let out = envs[2].airlock(&["audit", "verify"], None);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("chain(s)"), "{said}");
    // Every chain anchored, the killed daemon's too (at its genesis and every checkpoint it
    // signed before the kill).
    assert!(said.contains("anchored: "), "{said}");
}
