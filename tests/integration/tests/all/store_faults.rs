//! The store under the faults an operator meets: a database file that is not a database (a
//! clear error naming it, nothing overwritten), a write lock held by another process while the
//! CLI and the daemon both write (they wait; `database is locked` never reaches the user), and a
//! full filesystem (no request leaves without its audit row, and the host recovers by itself
//! when space returns).
//!
//! The last mounts a real small filesystem (tmpfs) over the data directory, which needs root
//! with CAP_SYS_ADMIN; where that is refused it says so and proves nothing (the same fail-closed
//! path is also driven, everywhere, by `audit_durability.rs` with an SQLite trigger).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use airlock::store::documents;
use airlock_tests::*;
use fake_saas::{ConfluenceOptions, spawn_confluence};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn a_corrupt_database_is_refused_naming_the_file_and_left_untouched() {
    let env = Env::new("");
    std::fs::create_dir_all(env.data_dir()).expect("data dir");
    let db = env.data_dir().join("airlock.db");
    let garbage: Vec<u8> = (0..16384u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&db, &garbage).expect("write");
    for args in [
        &["sync", "--status"][..],
        &["audit", "verify"][..],
        &["serve"][..],
    ] {
        let out = env.airlock(args, None);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran on a corrupt database");
        assert!(
            err.contains(&db.display().to_string()) && err.contains("not a usable SQLite database"),
            "{args:?}: the error must name the file and say what is wrong: {err}"
        );
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(
            std::fs::read(&db).expect("read"),
            garbage,
            "{args:?} wrote over it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_another_process_makes_the_cli_and_the_daemon_wait_not_fail() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&confluence_config(&fake.base_url));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let d = env.serve();

    // Another process takes the write lock and keeps it for a while (shorter than the busy
    // timeout): everyone who writes queues behind it.
    let db = env.data_dir().join("airlock.db");
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute_batch("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS held (x);")
            .expect("lock");
        std::thread::sleep(Duration::from_secs(3));
        conn.execute_batch("COMMIT; DROP TABLE held;")
            .expect("unlock");
    });
    std::thread::sleep(Duration::from_millis(300));
    // The daemon syncs (API trigger) while the CLI syncs the same data dir.
    let (status, body) = d
        .post(
            "/v1/sync/confluence",
            r#"{"stream": "pages", "full": true}"#,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let cli = env.airlock(&["sync", "confluence", "--stream", "pages", "--full"], None);
    let token = env.airlock(&["tokens", "create", "--principal", "during-lock"], None);
    holder.join().expect("holder");
    // Both waited for the lock; whichever of the daemon and the CLI took the stream's lease
    // first ran it, and the other one says so (a lease refusal, not a lock error).
    let cli_err = text(&cli.stderr);
    assert!(
        cli.status.success() || cli_err.contains("is running in another process"),
        "the CLI failed while another process held the lock: {cli_err}"
    );
    assert!(!cli_err.contains("locked"), "{cli_err}");
    assert!(
        token.status.success(),
        "the CLI failed while another process held the lock: {}",
        text(&token.stderr)
    );
    // The daemon's run finishes too, with no lock error anywhere.
    let t = Instant::now();
    loop {
        let (_, sync) = d.get("/v1/sync").await;
        let pages = sync["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["stream"] == "pages").cloned())
            .unwrap_or_default();
        if pages["running"] == false && pages["last_success_at"].is_string() {
            break;
        }
        assert!(pages["last_error"].is_null(), "daemon sync failed: {pages}");
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "sync never finished: {sync}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = format!(
        "{}{}{}{}",
        text(&cli.stdout),
        text(&cli.stderr),
        text(&token.stderr),
        d.log()
    );
    assert!(
        !all.contains("database is locked") && !all.contains("database table is locked"),
        "a lock error reached the user:\n{all}"
    );
    let out = env.airlock(&["audit", "verify"], None);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// Mounts a tmpfs of `mib` MiB on `dir`; false when this machine does not allow it.
fn mount_tmpfs(dir: &Path, mib: u32) -> bool {
    std::fs::create_dir_all(dir).expect("mount point");
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={mib}m,mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "NOT RUN: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); this test proves \
             nothing on this machine"
        );
    }
    ok
}

/// Unmounts on drop, so a failed assertion does not leave a mount behind.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

async fn wait_available(a: &airlock::app::Airlock) {
    let t = Instant::now();
    while !a.audit_available() && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.audit_available(), "the audit log did not recover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_stops_requests_and_syncs_cleanly_and_they_resume_when_space_returns() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions {
            pages: 2000,
            ..ConfluenceOptions::default()
        },
    )
    .await
    .expect("fake");
    let body = confluence_config(&fake.base_url)
        .replace("base_url = ", "page_limit = \"25\"\nbase_url = ");
    let env = Env::new(&body);
    let data = env.data_dir();
    if !mount_tmpfs(&data, 64) {
        return;
    }
    let _mounted = Mounted(&data);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    // Fill the filesystem, leaving a little room: the sync runs into the wall part-way.
    let filler = data.join("filler");
    let free = fs_free_bytes(&data);
    std::fs::write(&filler, vec![7u8; free.saturating_sub(700 * 1024) as usize]).expect("fill");

    fake.reset_requests();
    let e = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect_err("the sync cannot finish on a full disk");
    let msg = e.to_string();
    assert!(
        msg.contains("full") || msg.contains("audit unavailable"),
        "the error says why: {msg}"
    );
    // No request leaves without its row: requests sent so far all have rows, or rows held in
    // the writer's queue that reach the log once there is room again.
    let during = fake.requests().total;
    eprintln!("disk full after {during} requests: {msg}");

    std::fs::remove_file(&filler).expect("free space");
    wait_available(&a).await;
    a.sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("sync after space returned");
    // Rows and a signed head, as a clean stop leaves them.
    a.flush_and_checkpoint();
    let conn = airlock::store::open(&data).expect("db");
    let stored = documents::all(&conn, "confluence", Some("page")).expect("docs");
    assert_eq!(stored.len(), fake.truth().pages.len(), "the store is exact");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(ok, "ok");
    assert!(during > 0, "the sync made requests before the disk filled");
    assert_eq!(
        sent_rows(&env),
        fake.requests().total as usize,
        "every request upstream has its audit row"
    );
    let out = env.airlock(&["audit", "verify"], None);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

fn fs_free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .expect("df");
    text(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}
