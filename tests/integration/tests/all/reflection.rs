//! A hostile connector tries every channel through which an upstream could reflect the
//! credential the gate injected (compressed, sliced, escaped, encoded) and greps what it got
//! back, the daemon log and the audit rows for the credential in every encoding: no match.

use airlock_tests::reflect::{
    REPRESENTATIONS, credential_forms, decoded_views, spawn_reflecting_server,
};
use airlock_tests::*;
use serde_json::{Value, json};

const USER: &str = "svc@example.com";
const CANARY: &str = "canary-reflect-5d10c7e2/Q+";

/// What each channel must come back as: the echo with the credential redacted, or withheld.
fn expected(kind: &str) -> &'static str {
    match kind {
        "x-custom" => "refused",
        "json-u" | "qp" | "pct" | "html" | "header-pct" => "withheld",
        _ => "redacted",
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reflection_channel_hands_the_connector_the_injected_credential() {
    let server = spawn_reflecting_server().await;
    let port = server.port();
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "hostile"
component = "{hostile}"

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{port}/"
methods = ["GET", "TRACE"]
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "{USER}", password = "secret:hostile_token" }}
"#,
        hostile = component("hostile").display(),
    ));
    env.set_secret("hostile_token", CANARY);
    let d = env.serve();

    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    for kind in REPRESENTATIONS {
        // The connector asks for every encoding, a slice, and transfer codings; the gate decides.
        let headers = json!([
            ["accept-encoding", "gzip, deflate, br, zstd"],
            ["range", "bytes=40-70"],
            ["if-range", "\"x\""],
            ["te", "gzip, trailers"],
        ]);
        for method in ["GET", "TRACE"] {
            let url = format!("http://127.0.0.1:{port}/{kind}");
            let input = json!({"url": url, "method": method, "headers": headers});
            let (status, v) = d.invoke("hostile", "fetch", input).await;
            let text = v.to_string();
            match expected(kind) {
                "redacted" => {
                    assert_eq!(status, 200, "{kind} {method}: {text}");
                    let body = hex_decode(v["result"]["body_hex"].as_str().unwrap_or_default());
                    let body_text = String::from_utf8_lossy(&body).to_string();
                    assert!(
                        body_text.contains("[REDACTED]") || *kind == "b64",
                        "{kind} {method}: the connector gets the decoded echo, scrubbed: {body_text}"
                    );
                    if *kind != "b64" {
                        let lower = body_text.to_ascii_lowercase();
                        assert!(
                            lower.contains("accept-encoding: identity"),
                            "{kind}: {body_text}"
                        );
                        assert!(
                            !lower.contains("range:"),
                            "{kind}: Range was dropped: {body_text}"
                        );
                        assert!(
                            !lower.contains("\r\nte:"),
                            "{kind}: TE was dropped: {body_text}"
                        );
                    }
                    let coding = v["result"]["headers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|h| h[0].as_str() == Some("content-encoding"));
                    assert!(!coding, "{kind}: no coding left for the connector: {text}");
                    outputs.push((format!("{kind} {method} body"), body));
                }
                refusal => {
                    let wanted = if refusal == "refused" {
                        "content coding"
                    } else {
                        "withheld by the gate"
                    };
                    assert!(
                        text.to_lowercase().contains(&wanted.to_lowercase())
                            || text.contains("ContentCoding"),
                        "{kind} {method}: expected {refusal}: {status} {text}"
                    );
                }
            }
            outputs.push((format!("{kind} {method} result"), text.into_bytes()));
        }
    }

    // Stopping the daemon flushes its audit rows.
    let log = d.stop();
    assert!(log.contains("withheld by the gate"), "{log}");
    outputs.push(("daemon log".into(), log.into_bytes()));
    let audit = env.airlock(&["audit", "tail", "-n", "1000", "--json"], None);
    let audit_text = String::from_utf8_lossy(&audit.stdout).to_string();
    for (reason, count) in [
        ("withheld by the gate: it reveals a secret value", 2 * 5),
        ("content coding `x-custom`", 2),
    ] {
        let n = audit_text.matches(reason).count();
        assert!(
            n >= count,
            "{count} audit rows say `{reason}`, got {n}:\n{audit_text}"
        );
    }
    outputs.push(("audit rows".into(), audit_text.into_bytes()));
    for (path, bytes) in all_files(&env.data_dir()) {
        outputs.push((path.display().to_string(), bytes));
    }

    let forms = credential_forms(USER, CANARY);
    for (what, bytes) in &outputs {
        for (view, decoded) in decoded_views(bytes) {
            for f in &forms {
                assert!(
                    !contains(&decoded, f),
                    "credential form `{f}` found in {what} ({view}):\n{}",
                    String::from_utf8_lossy(&decoded)
                );
            }
        }
    }
}

/// Without an injected credential the gate leaves the connector's choice of coding alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_without_credentials_keep_the_connectors_encoding() {
    let server = spawn_reflecting_server().await;
    let port = server.port();
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "hostile"
component = "{hostile}"

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{port}/"
allow_private = true
"#,
        hostile = component("hostile").display(),
    ));
    let d = env.serve();
    let input = json!({
        "url": format!("http://127.0.0.1:{port}/negotiate"),
        "headers": [["accept-encoding", "gzip"], ["range", "bytes=0-9"]],
    });
    let (status, v) = d.invoke("hostile", "fetch", input).await;
    assert_eq!(status, 200, "{v}");
    let headers: Vec<&Value> = v["result"]["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    assert!(
        headers
            .iter()
            .any(|h| h[0] == "content-encoding" && h[1] == "gzip"),
        "{v}"
    );
}
