//! Connector integrity: a component pinned by `sha256` or required to carry a minisign
//! signature from a `[trust]` key is refused, naming the connector, when one byte differs; at
//! load the other connectors still serve, and at hot reload the running version keeps serving.

use std::path::Path;
use std::time::{Duration, Instant};

use airlock_tests::{Daemon, Env, component};
use serde_json::{Value, json};

/// A valid component that differs from `variant(b'b')` in exactly one byte: the hostile test
/// component with a custom section appended (custom sections never change what a component does).
fn variant(last: u8) -> Vec<u8> {
    let mut bytes = std::fs::read(component("hostile")).expect("hostile");
    bytes.extend_from_slice(&[0x00, 0x05, 0x04, b't', b'a', b'g', last]);
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    airlock::integrity::sha256_hex(bytes)
}

/// Replaces `dst` the way build tools do: write a temporary file, then rename over.
fn replace_file(bytes: &[u8], dst: &Path) {
    let tmp = dst.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dst).expect("rename");
}

async fn status_of(d: &Daemon, id: &str) -> Value {
    let (status, body) = d.get("/v1/connectors").await;
    assert_eq!(status, 200, "{body}");
    body["connectors"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

async fn wait_for(d: &Daemon, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status_of(d, id).await;
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:#}\nlog:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn run(env: &Env, args: &[&str]) -> (bool, String, String) {
    let out = env.airlock(args, None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_digest_refuses_a_tampered_byte_at_load_and_at_reload_the_old_version_serves() {
    let (good, tampered) = (variant(b'a'), variant(b'b'));
    let env = Env::new(&format!(
        "[[connector]]\nid = \"pinned\"\ncomponent = \"conn/pinned.wasm\"\nsha256 = \"{}\"\n\
         [[connector]]\nid = \"other\"\ncomponent = \"conn/other.wasm\"\n",
        sha256(&good)
    ));
    let dir = env.dir.path().join("conn");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("other.wasm"), &good).expect("other");

    // At load: the tampered file is refused with both digests; the other connector serves.
    std::fs::write(dir.join("pinned.wasm"), &tampered).expect("pinned");
    let (ok, _, err) = env.invoke("pinned", "info", "{}");
    assert!(!ok);
    assert!(
        err.contains("connector `pinned`")
            && err.contains(&format!("expected sha256 {}", sha256(&good)))
            && err.contains(&format!("actual sha256 {}", sha256(&tampered))),
        "{err}"
    );
    let d = env.serve();
    let s = status_of(&d, "pinned").await;
    assert_eq!(s["status"], "failed", "{s}");
    assert!(
        s["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not match its pinned digest")),
        "{s}"
    );
    let (status, body) = d.invoke("other", "info", json!({})).await;
    assert_eq!(status, 200, "the other connector keeps serving: {body}");

    // The right bytes load (hot reload picks the file up).
    replace_file(&good, &dir.join("pinned.wasm"));
    wait_for(&d, "pinned", "the pinned bytes to load", |s| {
        s["status"] == "ready"
    })
    .await;
    let generation = status_of(&d, "pinned").await["generation"].clone();

    // At reload: one byte differs -> refused, and the running version keeps serving.
    replace_file(&tampered, &dir.join("pinned.wasm"));
    let s = wait_for(&d, "pinned", "a reload error", |s| {
        s["reload_error"].is_string()
    })
    .await;
    assert_eq!(s["status"], "ready", "{s}");
    assert_eq!(
        s["generation"], generation,
        "the running version stays: {s}"
    );
    let why = s["reload_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("connector `pinned`")
            && why.contains(&format!("actual sha256 {}", sha256(&tampered))),
        "{why}"
    );
    let (status, body) = d.invoke("pinned", "info", json!({})).await;
    assert_eq!(status, 200, "the old version still answers: {body}");
    assert_eq!(body["result"]["name"], "hostile", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_signature_loads_signed_components_and_refuses_unsigned_or_tampered_ones() {
    let (good, tampered) = (variant(b'a'), variant(b'b'));
    let env = Env::new("");
    let dir = env.dir.path().join("conn");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let key = env.dir.path().join("release.key");
    let key_s = key.to_string_lossy().to_string();

    // `airlock sign --generate-key` prints the [trust] section to paste.
    let (ok, trust, err) = run(&env, &["sign", "--generate-key", &key_s]);
    assert!(ok, "{err}");
    assert!(trust.starts_with("[trust]\nkeys = [\"RW"), "{trust}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the secret key is owner-only");
    }
    let (ok, _, _) = run(&env, &["sign", "--generate-key", &key_s]);
    assert!(!ok, "an existing key is never overwritten");

    let signed = dir.join("signed.wasm");
    let unsigned = dir.join("unsigned.wasm");
    std::fs::write(&signed, &good).expect("signed");
    std::fs::write(&unsigned, &good).expect("unsigned");
    let (ok, _, err) = run(&env, &["sign", "--key", &key_s, &signed.to_string_lossy()]);
    assert!(ok, "{err}");
    assert!(dir.join("signed.wasm.minisig").exists());

    std::fs::write(
        &env.config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n{trust}require_signature = true\n\n\
             [[connector]]\nid = \"signed\"\ncomponent = \"conn/signed.wasm\"\n\
             [[connector]]\nid = \"unsigned\"\ncomponent = \"conn/unsigned.wasm\"\n"
        ),
    )
    .expect("config");

    // `airlock verify` agrees with the loader.
    let (ok, out, err) = run(&env, &["verify", &signed.to_string_lossy()]);
    assert!(ok, "{err}");
    assert!(out.contains("signature OK"), "{out}");
    let (ok, _, err) = run(&env, &["verify", &unsigned.to_string_lossy()]);
    assert!(!ok && err.contains("is not signed"), "{err}");

    // Correctly signed: loads. Unsigned: refused, naming the connector and the missing file.
    let (ok, v, err) = env.invoke("signed", "info", "{}");
    assert!(ok, "{err}");
    assert_eq!(v["name"], "hostile", "{v}");
    let (ok, _, err) = env.invoke("unsigned", "info", "{}");
    assert!(!ok);
    assert!(
        err.contains("connector `unsigned`")
            && err.contains("is not signed")
            && err.contains("unsigned.wasm.minisig"),
        "{err}"
    );

    // Tampered after signing: refused at load by the CLI, and at reload by the daemon, which
    // keeps serving the signed version.
    let d = env.serve();
    assert_eq!(status_of(&d, "signed").await["status"], "ready");
    assert_eq!(status_of(&d, "unsigned").await["status"], "failed");
    replace_file(&tampered, &signed);
    let s = wait_for(&d, "signed", "a reload error", |s| {
        s["reload_error"].is_string()
    })
    .await;
    let why = s["reload_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("connector `signed`") && why.contains("does not match the signature"),
        "{why}"
    );
    let (status, body) = d.invoke("signed", "info", json!({})).await;
    assert_eq!(status, 200, "the signed version still answers: {body}");
    let (ok, _, err) = env.invoke("signed", "info", "{}");
    assert!(!ok && err.contains("does not match the signature"), "{err}");
    let (ok, _, err) = run(&env, &["verify", &signed.to_string_lossy()]);
    assert!(!ok && err.contains("signature refused"), "{err}");
}
