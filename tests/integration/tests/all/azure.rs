//! The Azure connector under the host's OAuth2 client-credentials grant against the fake: the
//! `virtual-machines` stream equals the ground truth, `failed-provisions` lists exactly the failed
//! VMs, and the token endpoint is asked exactly once across the sync and the action.

use std::collections::{BTreeMap, BTreeSet};

use airlock::runtime::connector::Op;
use airlock::store::documents;
use airlock::sync::RunEnd;
use airlock_tests::*;
use fake_saas::{Azure, AzureOptions, RunningFake, spawn_azure};

async fn fake() -> RunningFake<Azure> {
    spawn_azure(
        "127.0.0.1:0".parse().expect("addr"),
        AzureOptions::default(),
    )
    .await
    .expect("fake")
}

fn env_for(f: &RunningFake<Azure>, scope: &str) -> Env {
    let o = AzureOptions::default();
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "azure"
component = "{}"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base}"
subscription_id = "{sub}"

[[grant]]
connector = "azure"
url = "{base}/subscriptions/"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "{client}", client_secret = "secret:azure_secret", scope = "{scope}" }}
"#,
        component("azure").display(),
        base = f.base_url,
        sub = o.subscription,
        token_url = f.token_url(),
        client = o.client_id,
    ));
    env.set_secret("azure_secret", &o.client_secret);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_equal_truth_and_failed_provisions_with_one_token() {
    let f = fake().await;
    let env = env_for(&f, "https://management.azure.com/.default");
    let a = start_in_process(&env).await;
    let r = a
        .sync_stream("azure", "virtual-machines", false, |_| {})
        .await
        .expect("sync");
    let truth = f.truth();
    assert_eq!(
        (r.end, r.upserts, r.pages),
        (RunEnd::Done, truth.vms.len() as u64, 3)
    );

    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let docs = documents::all(&conn, "azure", Some("vm")).expect("docs");
    let stored: BTreeMap<&str, _> = docs.iter().map(|d| (d.id.as_str(), d)).collect();
    assert_eq!(stored.len(), truth.vms.len());
    for vm in &truth.vms {
        let d = stored.get(vm.id.as_str()).expect("vm stored");
        assert_eq!(d.title, vm.name);
        let m = &d.metadata;
        assert_eq!(
            (
                &m["location"],
                &m["vmSize"],
                &m["provisioningState"],
                &m["powerState"]
            ),
            (
                &serde_json::json!(vm.location),
                &serde_json::json!(vm.vm_size),
                &serde_json::json!(vm.provisioning_state),
                &serde_json::json!(vm.power_state)
            ),
            "{}",
            vm.id
        );
        assert_eq!(m["tags"], serde_json::json!(vm.tags));
        for part in [
            &vm.vm_size,
            &vm.location,
            &vm.provisioning_state,
            &vm.power_state,
        ] {
            assert!(d.body.contains(part.as_str()), "{} lacks {part}", d.body);
        }
    }

    let out = a
        .invoke(
            "azure",
            Op::Action {
                name: "failed-provisions".into(),
                input: serde_json::json!({}),
            },
        )
        .await
        .expect("failed-provisions");
    let got: BTreeSet<&str> = out["vms"]
        .as_array()
        .expect("vms")
        .iter()
        .filter_map(|v| v["id"].as_str())
        .collect();
    let want: BTreeSet<&str> = truth
        .vms
        .iter()
        .filter(|v| v.provisioning_state == "Failed")
        .map(|v| v.id.as_str())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    assert_eq!(out["count"], want.len());
    assert!(
        out["vms"]
            .as_array()
            .expect("vms")
            .iter()
            .all(|v| v["provisioningState"] == "Failed" && v["powerState"].is_string())
    );
    assert_eq!(
        f.token_requests(),
        1,
        "one cached token serves the sync and the action"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_without_default_is_refused_by_the_token_endpoint() {
    let f = fake().await;
    let env = env_for(&f, "https://management.azure.com/");
    let a = start_in_process(&env).await;
    let r = a
        .invoke(
            "azure",
            Op::Action {
                name: "failed-provisions".into(),
                input: serde_json::json!({}),
            },
        )
        .await;
    // The gate's credential failure reaches the connector as a refused request, and the
    // token endpoint's own reason is in the audit row of the token fetch.
    let e = r.expect_err("no token, no answer");
    assert!(
        matches!(e.code(), "upstream" | "unauthorized" | "forbidden"),
        "{e}"
    );
    a.flush();
    let rows = audit_rows(&env);
    let token_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.event.event == "oauth-token")
        .collect();
    assert!(!token_rows.is_empty(), "the token fetch is audited");
    for t in &token_rows {
        assert_eq!(t.event.decision, "error", "{:?}", t.event);
        assert_eq!(t.event.status, Some(400), "{:?}", t.event);
        assert!(
            t.event.reason.contains("AADSTS1002012") && t.event.reason.contains("/.default"),
            "the reason names the bad scope: {:?}",
            t.event
        );
    }
    assert!(rows.iter().any(|r| r.event.event == "http"
        && r.event.decision == "error"
        && r.event.reason.contains("credentials for grant")));
    assert!(f.token_requests() >= 1);
    assert_eq!(
        f.requests_to(&format!(
            "/subscriptions/{}/providers/Microsoft.Compute/virtualMachines",
            AzureOptions::default().subscription
        )),
        0,
        "no ARM request without a token"
    );
}

/// The token endpoint hands out ARM tokens only for ARM's own scope: Graph's `/.default` is
/// refused with AAD's `invalid_scope`, the guest's request fails with "credentials unavailable"
/// (the endpoint's reason stays with the host), and no ARM request is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_resources_scope_is_refused_and_nothing_reaches_arm() {
    let f = fake().await;
    let env = env_for(&f, "https://graph.microsoft.com/.default");
    let a = start_in_process(&env).await;
    let r = a
        .invoke(
            "azure",
            Op::Action {
                name: "failed-provisions".into(),
                input: serde_json::json!({}),
            },
        )
        .await;
    let message = format!("{r:?}");
    assert!(r.is_err(), "{message}");
    assert!(message.contains("credentials unavailable"), "{message}");
    assert_eq!(f.token_requests(), 1);
    assert_eq!(
        f.requests_to(&format!(
            "/subscriptions/{}/providers/Microsoft.Compute/virtualMachines",
            AzureOptions::default().subscription
        )),
        0,
        "no ARM request without a token"
    );
}

/// ARM tokens expire (`expires_in`, here 3 s): the host fetches a new one after expiry and the
/// call succeeds, one token request per lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_arm_token_is_replaced_by_a_fresh_one() {
    let f = spawn_azure(
        "127.0.0.1:0".parse().expect("addr"),
        AzureOptions {
            token_lifetime_secs: 3,
            ..AzureOptions::default()
        },
    )
    .await
    .expect("fake");
    let env = env_for(&f, "https://management.azure.com/.default");
    let a = start_in_process(&env).await;
    let call = || {
        a.invoke(
            "azure",
            Op::Action {
                name: "failed-provisions".into(),
                input: serde_json::json!({}),
            },
        )
    };
    call().await.expect("first call");
    call().await.expect("second call, same token");
    assert_eq!(f.token_requests(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(3300)).await;
    call().await.expect("after expiry");
    assert_eq!(f.token_requests(), 2, "one new token after expiry");
}
