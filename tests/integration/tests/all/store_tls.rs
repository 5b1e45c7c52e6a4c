//! TLS to the PostgreSQL store: a throwaway cluster with `ssl = on` and a certificate from a CA
//! made here. With `sslmode=verify-full` and that CA the daemon serves, syncs and searches over
//! encrypted connections (the server says so); with another CA, or `sslmode=require` against a
//! server without TLS, opening the store fails with a message that names the cause, and never
//! the password of the URL. A server that requires client certificates takes the daemon with
//! `sslcert`/`sslkey` and refuses it without (a key file others may read is refused first).

use crate::test_pki::make_pki;
use airlock::store::pg::PgStore;
use airlock_tests::*;
use fake_saas::{ConfluenceOptions, spawn_confluence};
use pg_cluster::PgCluster;

const PASSWORD: &str = "canary-pg-tls-pw-4417";

/// The cluster's URL with a password (trust authentication ignores it; it is there to be kept
/// out of every message) and `query`.
fn url(pg: &PgCluster, query: &str) -> String {
    format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/airlock?{query}",
        pg.port
    )
}

async fn open_error(url: &str) -> String {
    match PgStore::open(url).await {
        Ok(_) => panic!("the store opened"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_on_postgres_over_verified_tls_serves_syncs_and_searches() {
    let pki = make_pki("Airlock test database CA");
    let (cert, key) = (pki.cert_pem.clone(), pki.key_pem.clone());
    let pg = tokio::task::spawn_blocking(move || PgCluster::start_tls(&cert, &key))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("db-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let url = url(
        &pg,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );

    // The server itself says the store's connection is encrypted.
    let store = PgStore::open(&url)
        .await
        .expect("verify-full with the right CA");
    let ssl: bool = store
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the store's connection is not encrypted");

    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&format!(
        "[store]\nurl = \"{url}\"\n{}",
        confluence_config(&fake.base_url)
    ));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let d = env.serve();
    let (status, v) = d.post("/v1/sync/confluence", "{}").await;
    assert_eq!(status, 202, "{v}");
    d.wait_until_synced("pages").await;
    let (status, v) = d
        .post(
            "/v1/search",
            &serde_json::json!({"query": fake_saas::confluence::PLANTED_PHRASE}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hits"].as_array().map(Vec::len), Some(3), "{v}");
    // Every connection the daemon made to the database is encrypted (the pool's, the audit
    // writer's, the change-feed listener's), and none was refused.
    let plain = pg
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = 'airlock' AND NOT s.ssl AND a.pid <> pg_backend_pid()",
        )
        .unwrap();
    assert_eq!(plain, "0", "unencrypted connections to the store");
    let log = d.stop();
    assert!(
        !log.contains(PASSWORD),
        "the password is in the log:\n{log}"
    );
    assert!(!log.contains("TLS verification"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_a_server_without_tls_fails_clearly_without_the_password() {
    let pki = make_pki("Airlock test database CA");
    let other = make_pki("Some other CA");
    let (cert, key) = (pki.cert_pem.clone(), pki.key_pem.clone());
    let tls = tokio::task::spawn_blocking(move || PgCluster::start_tls(&cert, &key))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong_ca = dir.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, &other.ca_pem).unwrap();

    // verify-full against a certificate from another CA: refused, naming TLS verification.
    let wrong = url(
        &tls,
        &format!("sslmode=verify-full&sslrootcert={}", wrong_ca.display()),
    );
    let err = open_error(&wrong).await;
    assert!(err.contains("TLS verification"), "{err}");
    assert!(err.contains("sslrootcert"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    // The same through the CLI (the message an operator sees).
    let env = Env::new(&format!("[store]\nurl = \"{wrong}\"\n"));
    let out = env.airlock(&["store", "status"], None);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("TLS verification"), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    // The same CA file under verify-ca is refused too (the chain, not the name, is wrong).
    let err = open_error(&wrong.replace("verify-full", "verify-ca")).await;
    assert!(err.contains("TLS verification"), "{err}");

    // require without a CA: encrypted, the certificate is not checked (libpq's meaning).
    PgStore::open(&url(&tls, "sslmode=require"))
        .await
        .expect("require encrypts without checking the certificate");

    // require against a server without TLS: refused, naming sslmode.
    let plain = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let err = open_error(&url(&plain, "sslmode=require")).await;
    assert!(err.contains("does not support TLS"), "{err}");
    assert!(err.contains("sslmode"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    // prefer (the default) goes on without TLS there.
    PgStore::open(&url(&plain, ""))
        .await
        .expect("prefer falls back to an unencrypted connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_client_certificates_takes_the_daemon_with_one_and_refuses_without()
{
    let pki = make_pki("Airlock test database CA");
    let (cert, key, ca) = (
        pki.cert_pem.clone(),
        pki.key_pem.clone(),
        pki.ca_pem.clone(),
    );
    let pg = tokio::task::spawn_blocking(move || {
        let pg = PgCluster::start_tls_with_client_ca(&cert, &key, &ca);
        pg.require_client_certs("airlock").expect("pg_hba");
        pg
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        path
    };
    let ca = write("db-ca.pem", &pki.ca_pem);
    // `cert` authentication: the certificate's common name is the database user.
    let (client_cert, client_key) = pki.client_cert("postgres");
    let (cert_file, key_file) = (
        write("client.crt", &client_cert),
        write("client.key", &client_key),
    );
    let verified = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    let with_cert = url(
        &pg,
        &format!(
            "{verified}&sslcert={}&sslkey={}",
            cert_file.display(),
            key_file.display()
        ),
    );

    // With the certificate: in, and the server saw it.
    let store = PgStore::open(&with_cert)
        .await
        .expect("the client certificate is accepted");
    let dn: Option<String> = store
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dn.as_deref(), Some("/CN=postgres"));
    // The daemon serves on it (its pool, audit writer and listener all show the certificate).
    let env = Env::new(&format!("[store]\nurl = \"{with_cert}\"\n"));
    let d = env.serve();
    let (status, body) = http("GET", &format!("{}/readyz", d.base), None).await;
    assert_eq!(status, 200, "{body}");
    let log = d.stop();
    assert!(
        !log.contains(PASSWORD),
        "the password is in the log:\n{log}"
    );

    // Without it: refused by the server, and the message says what is missing.
    let err = open_error(&url(&pg, &verified)).await;
    assert!(err.contains("requires a client certificate"), "{err}");
    assert!(err.contains("sslcert"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    let env = Env::new(&format!("[store]\nurl = \"{}\"\n", url(&pg, &verified)));
    let out = env.airlock(&["store", "status"], None);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("requires a client certificate"), "{shown}");

    // A certificate from a CA the server does not trust: refused in the handshake.
    let other = make_pki("Some other CA");
    let (stranger_cert, stranger_key) = other.client_cert("postgres");
    let (sc, sk) = (
        write("stranger.crt", &stranger_cert),
        write("stranger.key", &stranger_key),
    );
    let err = open_error(&url(
        &pg,
        &format!(
            "{verified}&sslcert={}&sslkey={}",
            sc.display(),
            sk.display()
        ),
    ))
    .await;
    assert!(err.contains("client certificate"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");

    // A key file others may read is refused before any connection, as libpq refuses it.
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let err = open_error(&with_cert).await;
    assert!(
        err.contains("sslkey") && err.contains("client.key") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
}
