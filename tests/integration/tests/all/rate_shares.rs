//! A grant's rate is the deployment's, not each daemon's: daemons on one PostgreSQL store take
//! equal shares of it, a departed daemon's share returns to the others, and a pause an upstream
//! put on the grant at one daemon holds at every daemon.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::capabilities::budget::{Class, GrantBudget};
use airlock::capabilities::budget_shares::{BudgetShares, TTL};
use airlock::capabilities::grant::Resilience;
use airlock::store::backend::Store;
use airlock::store::pg::PgStore;
use pg_cluster::PgCluster;

const KEY: &str = "zendesk/api";

struct Daemon {
    owner: String,
    store: Store,
    shares: BudgetShares,
    budget: GrantBudget,
}

impl Daemon {
    async fn start(url: &str, owner: &str, rate: f64, burst: u32) -> Daemon {
        let store = Store::Postgres(Arc::new(PgStore::open(url).await.expect("postgres store")));
        let budget = GrantBudget::new(&Resilience {
            rate_per_second: rate,
            burst,
            concurrency: 1000,
            ..Resilience::default()
        });
        let shares = BudgetShares::new();
        shares.hold(KEY.into(), &budget);
        Daemon {
            owner: owner.into(),
            store,
            shares,
            budget,
        }
    }

    async fn round(&self) {
        self.shares
            .round(&self.store, &self.owner)
            .await
            .expect("share round");
    }
}

async fn rounds(daemons: &[&Daemon]) {
    for d in daemons {
        d.round().await;
    }
}

/// How many requests the daemons' budgets let through together in `window`.
async fn sent_together(daemons: &[&Daemon], window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut tasks = Vec::new();
    for d in daemons {
        let budget = d.budget.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            let mut waited = Duration::ZERO;
            while budget
                .acquire(Class::Background, "sync", end, &mut waited)
                .await
                .is_ok()
            {
                sent += 1;
            }
            sent
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_on_one_store_share_a_grants_rate_and_its_pauses() {
    let pg = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    pg.create_database("shares").unwrap();
    let url = pg.url_of("shares");
    let (rate, burst) = (30.0, 6);
    let a = Daemon::start(&url, "host-a:1:boot:n1", rate, burst).await;
    let b = Daemon::start(&url, "host-b:1:boot:n2", rate, burst).await;
    let c = Daemon::start(&url, "host-c:1:boot:n3", rate, burst).await;
    assert!(
        (a.budget.rate_now() - rate).abs() < 0.01,
        "alone until told"
    );
    // Two rounds: the first ones to register learn of the later ones on the second.
    rounds(&[&a, &b, &c]).await;
    rounds(&[&a, &b, &c]).await;
    for d in [&a, &b, &c] {
        let r = d.budget.rate_now();
        assert!((r - rate / 3.0).abs() < 0.01, "{}: {r}/s", d.owner);
    }

    // Together within the grant's rate (plus the burst): 3 s at 30/s is 90, +6.
    let window = Duration::from_secs(3);
    let total = sent_together(&[&a, &b, &c], window).await;
    assert!(
        total <= 96,
        "three daemons sent {total} in 3 s at a 30/s grant"
    );
    assert!(
        total >= 45,
        "the shares still add up to the rate: only {total} sent"
    );

    // A clean shutdown gives the share back at once.
    c.store.leave_shares(&c.owner).await.expect("leave");
    rounds(&[&a, &b]).await;
    for d in [&a, &b] {
        let r = d.budget.rate_now();
        assert!(
            (r - rate / 2.0).abs() < 0.01,
            "{}: {r}/s after c left",
            d.owner
        );
    }

    // A daemon that dies (stops renewing) loses its share after the TTL.
    drop(b.shares);
    drop(b.budget);
    tokio::time::sleep(TTL + Duration::from_millis(1200)).await;
    a.round().await;
    let r = a.budget.rate_now();
    assert!((r - rate).abs() < 0.01, "a alone again after b died: {r}/s");

    // A pause put on the grant at one daemon holds at the others after one round.
    let d = Daemon::start(&url, "host-d:1:boot:n4", rate, burst).await;
    rounds(&[&a, &d]).await;
    a.budget.pause(Duration::from_secs(20));
    assert!(d.budget.paused_for().is_none());
    rounds(&[&a, &d]).await;
    let left = d.budget.paused_for().expect("the pause reached d");
    assert!(left > Duration::from_secs(15), "{left:?}");
    assert_eq!(
        b.store
            .share_round(&b.owner, &[], &[], TTL)
            .await
            .expect("round")
            .holders
            .len(),
        0,
        "a daemon holding no grant counts nowhere"
    );
}

/// `airlock sync` on a PostgreSQL store takes a share of the grant's rate while it runs (the
/// daemons give it room) and hands it back when it exits, so the daemons do not run on a smaller
/// share for the seconds until the row would expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_command_that_ran_connectors_hands_its_share_back_on_exit() {
    use fake_saas::{ZendeskOptions, spawn_zendesk};
    let pg = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    pg.create_database("cli_shares").unwrap();
    let url = pg.url_of("cli_shares");
    let fake = spawn_zendesk(
        "127.0.0.1:0".parse().expect("addr"),
        ZendeskOptions {
            tickets: 600,
            ..ZendeskOptions::default()
        },
    )
    .await
    .expect("fake");
    // A slow grant, so the sync runs long enough for its share to be seen.
    let env = airlock_tests::Env::new(&format!(
        "[store]\nurl = \"{url}\"\n{}rate = {{ per_second = 5, burst = 1 }}\n",
        airlock_tests::zendesk_config(&fake.base_url, "page_size = 100")
    ));
    env.set_secret("zendesk_token", &ZendeskOptions::default().api_token);
    let mut child = std::process::Command::new(airlock_tests::airlock_bin())
        .args(["sync", "zendesk", "--stream", "tickets"])
        .env("AIRLOCK_CONFIG", &env.config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("airlock sync");
    let count = || {
        pg.psql("cli_shares", "SELECT count(*) FROM rate_shares")
            .unwrap_or_default()
    };
    let mut held = false;
    while child.try_wait().expect("wait").is_none() {
        held |= count() == "1";
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(held, "the sync never held a share of the grant's rate");
    assert_eq!(count(), "0", "the share outlived the command");
}
