//! `airlock new connector`: from an empty directory, the generated crate builds for
//! wasm32-wasip2, its unit tests pass natively, the component loads in the host and answers
//! `info`, and it passes the conformance kit against a small server speaking the "notes" API the
//! template assumes; a second `new` into the same place is refused without touching anything.
//!
//! The generated crate builds with `CARGO_TARGET_DIR=target/scaffold-test` so its dependencies
//! (the SDK, wit-bindgen, serde) are compiled once and reused by later runs.

use std::path::Path;
use std::process::{Command, Output};

use airlock::runtime::connector::Op;
use airlock_tests::*;

fn cargo(dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", root().join("target/scaffold-test"))
        .output()
        .expect("run cargo")
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn new_connector(cwd: &Path, args: &[&str]) -> Output {
    Command::new(airlock_bin())
        .args(["new", "connector"])
        .args(args)
        .current_dir(cwd)
        .env_remove("AIRLOCK_SDK_PATH")
        .output()
        .expect("run airlock new")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connector_builds_passes_its_tests_answers_info_and_conforms() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = new_connector(tmp.path(), &["demo"]);
    assert!(out.status.success(), "{}", show(&out));
    let crate_dir = tmp.path().join("demo");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "README.md",
        "airlock.example.toml",
    ] {
        assert!(crate_dir.join(f).is_file(), "{f} missing");
    }

    let out = cargo(
        &crate_dir,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
    assert!(out.status.success(), "wasm build failed:\n{}", show(&out));
    let out = cargo(&crate_dir, &["test", "--release"]);
    assert!(out.status.success(), "unit tests failed:\n{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("test result: ok.") && !stdout.contains("0 passed"),
        "{}",
        show(&out)
    );

    let wasm = root().join("target/scaffold-test/wasm32-wasip2/release/demo.wasm");
    let env = Env::new(&format!(
        "[[connector]]\nid = \"demo\"\ncomponent = \"{}\"\n[connector.settings]\nbase_url = \"https://notes.example.com\"\n",
        wasm.display()
    ));
    let a = start_in_process(&env).await;
    let info = a.invoke("demo", Op::Info).await.expect("info");
    assert_eq!(info["name"], "demo", "{info}");
    assert_eq!(info["streams"][0]["name"], "notes", "{info}");
    assert_eq!(info["actions"][0]["name"], "add-note", "{info}");
    assert_eq!(info["actions"][0]["writes"], true, "{info}");
    // The example action schema is valid JSON Schema by the conformance kit's own rule.
    airlock::conformance::check_schema(&info["actions"][0]["input_schema"]).expect("schema");

    // The template is conformant as generated: sync with its cursor, get, errors, grants.
    let notes = spawn_notes_api().await;
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "demo"
component = "{}"
[connector.settings]
base_url = "http://{notes}"
page_size = "2"

[[grant]]
connector = "demo"
url = "http://{notes}/api/"
methods = ["GET"]
allow_private = true
"#,
        wasm.display()
    ));
    let wasm = wasm.display().to_string();
    let out = tokio::task::spawn_blocking(move || env.airlock(&["conformance", &wasm], None))
        .await
        .expect("conformance");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout.contains("PASS sync.terminates[notes]: done after 4 page(s): 6 upserts, 1 deletes"),
        "{}",
        show(&out)
    );
    assert!(stdout.contains("PASS sync.resume[notes]"), "{}", show(&out));
    assert!(
        stdout.contains("PASS search.well-formed: 5 hit(s) for \"Note\""),
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains("PASS errors.invalid-input[add-note]"),
        "{}",
        show(&out)
    );
}

/// Seven notes (`n1`..`n7`, `n5` deleted) served the way the template's doc comment describes
/// the upstream API: `GET /api/notes?limit&updated_since&page_token`, `/api/notes/search?q`,
/// `/api/notes/{id}` (404 when unknown). Search ignores `limit`, like some real upstreams: the
/// connector must cap the hits itself (the kit's `search.well-formed` checks it).
async fn spawn_notes_api() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let notes: Vec<serde_json::Value> = (1..=7)
        .map(|i| {
            serde_json::json!({"id": format!("n{i}"), "title": format!("Note {i}"),
                "body_html": format!("<p>Body {i}</p>"),
                "updated_at": format!("2024-05-01T10:00:0{i}Z"), "deleted": i == 5})
        })
        .collect();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let notes = notes.clone();
            tokio::spawn(async move {
                loop {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let target = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let (status, body) = notes_reply(&notes, &target);
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn notes_reply(notes: &[serde_json::Value], target: &str) -> (&'static str, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |k: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.replace("%3A", ":"))
    };
    match path {
        "/api/notes" => {
            let since = param("updated_since");
            let offset: usize = param("page_token")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let limit: usize = param("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
            let matching: Vec<_> = notes
                .iter()
                .filter(|n| {
                    since
                        .as_deref()
                        .is_none_or(|s| n["updated_at"].as_str() > Some(s))
                })
                .collect();
            let page: Vec<_> = matching.iter().skip(offset).take(limit).collect();
            let next = (offset + limit < matching.len()).then(|| (offset + limit).to_string());
            let body = serde_json::json!({"notes": page, "next_page_token": next});
            ("200 OK", body.to_string())
        }
        "/api/notes/search" => {
            let q = param("q").unwrap_or_default();
            let hits: Vec<_> = notes
                .iter()
                .filter(|n| n["title"].as_str().is_some_and(|t| t.contains(&q)))
                .collect();
            ("200 OK", serde_json::json!({"notes": hits}).to_string())
        }
        p => match p
            .strip_prefix("/api/notes/")
            .and_then(|id| notes.iter().find(|n| n["id"] == id))
        {
            Some(n) => ("200 OK", n.to_string()),
            None => ("404 Not Found", r#"{"error": "no such note"}"#.to_string()),
        },
    }
}

#[test]
fn new_connector_refuses_an_existing_directory() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("taken");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("notes.txt"), "keep me").expect("write");
    let out = new_connector(tmp.path(), &["demo", "--dir", "taken"]);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read_dir(&dir).expect("read").count(),
        1,
        "the directory was touched"
    );
}

#[test]
fn new_connector_rejects_a_bad_name_and_a_missing_sdk() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = new_connector(tmp.path(), &["Bad_Name"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid connector name"));
    let out = new_connector(tmp.path(), &["demo", "--sdk-path", "no/such/sdk"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no airlock-sdk crate at"));
    assert!(!tmp.path().join("demo").exists());
}

/// The generated README's commands and the example config's comment, run by bash as written
/// (with `airlock` on PATH and the example config pointed at the local notes API), so the
/// scaffold's instructions cannot drift from what works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_readme_and_config_comments_run_as_written() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = new_connector(tmp.path(), &["demo"]);
    assert!(out.status.success(), "{}", show(&out));
    let dir = tmp.path().join("demo");
    // The README's paths are relative to the crate; its build goes to the shared test target.
    let target = root().join("target/scaffold-test");
    std::fs::create_dir_all(&target).expect("target dir");
    std::os::unix::fs::symlink(&target, dir.join("target")).expect("symlink target");

    let notes = spawn_notes_api().await;
    let example = dir.join("airlock.example.toml");
    let config = std::fs::read_to_string(&example).expect("example config");
    let mut lines: Vec<String> = config
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("# Store the token first: "))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "the config's secret command: {config}");
    // The example points at a made-up https upstream; here it is the local notes server.
    let local = config
        .replace("https://notes.example.com", &format!("http://{notes}"))
        .replace(
            "\n[[grant]]\n",
            "\n[[grant]]\nallow_private = true\nallow_insecure = true\n",
        );
    std::fs::write(&example, local).expect("write config");

    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README");
    for block in shell_blocks(&readme) {
        lines.extend(block);
    }
    assert!(lines.len() >= 6, "{lines:#?}");
    let path = format!(
        "{}:{}",
        airlock_bin().parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in &lines {
        let (dir, line, path) = (dir.clone(), line.clone(), path.clone());
        let target = target.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .args(["-c", &line])
                .current_dir(&dir)
                .env("PATH", path)
                .env("CARGO_TARGET_DIR", target)
                .env("TOKEN", "notes-api-token-1234")
                .env_remove("AIRLOCK_CONFIG")
                .output()
                .map(|o| (line, o))
        })
        .await
        .expect("join")
        .expect("bash");
        assert!(out.1.status.success(), "`{}`:\n{}", out.0, show(&out.1));
    }
    assert!(dir.join("tests/cassettes/conformance.json").is_file());
}
