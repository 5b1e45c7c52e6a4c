//! `airlock new connector`: from an empty directory, the generated crate builds for
//! wasm32-wasip2, its unit tests pass natively, and the component loads in the host and answers
//! `info`; a second `new` into the same place is refused without touching anything.
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
async fn a_new_connector_builds_passes_its_tests_and_answers_info() {
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
