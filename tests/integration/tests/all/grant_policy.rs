//! What a grant allows, tried by the hostile component: path spellings that a Tomcat-like server
//! would route outside the granted prefix are refused and audited (and what passes is sent in
//! its normal form), a GET+POST grant cannot POST beyond its exact paths, method overrides are
//! refused, and link-local or metadata addresses stay out of reach under `allow_private`.

use airlock::runtime::connector::{InvokeError, Op};
use airlock_tests::*;
use serde_json::json;

fn hostile(grants: &str) -> String {
    format!(
        "[[connector]]\nid = \"hostile\"\ncomponent = \"{}\"\nlimits = {{ timeout = \"5s\" }}\n{grants}",
        component("hostile").display()
    )
}

async fn fetch(
    a: &airlock::app::Airlock,
    input: serde_json::Value,
) -> Result<serde_json::Value, InvokeError> {
    a.invoke(
        "hostile",
        Op::Action {
            name: "fetch".into(),
            input,
        },
    )
    .await
}

fn forbidden(r: &Result<serde_json::Value, InvokeError>) -> bool {
    matches!(r, Err(InvokeError::Connector(c)) if c.code == "forbidden")
}

/// The wasi:http layer itself refuses some targets before the gate sees them.
fn refused_by_wasi(r: &Result<serde_json::Value, InvokeError>) -> bool {
    matches!(r, Err(InvokeError::Connector(c)) if c.message.contains("host refused path"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_a_tomcat_like_server_routes_outside_the_prefix_are_refused_and_audited() {
    let (addr, routed) = spawn_tomcat_like_server().await;
    let port = addr.port();
    let env = Env::new(&hostile(&format!(
        "[[grant]]\nconnector = \"hostile\"\nurl = \"http://127.0.0.1:{port}/api/\"\nallow_private = true\n"
    )));
    let a = start_in_process(&env).await;
    let base = format!("http://127.0.0.1:{port}");

    // Each of these lands on /admin (or elsewhere outside /api/) on a Tomcat-like server.
    let attacks = [
        "/api/..;/admin",
        "/api/;/../admin",
        "/api/.;/../admin",
        "/api/..;jsessionid=x/admin",
        "/api/%2e%2e;/admin",
        "/api/..%3b/admin",
        "/api/%252e%252e/admin",
        "/api/%u002e%u002e/admin",
        "/api/..%2fadmin",
        "/api/..%5cadmin",
        "/api/..%5Cadmin",
        "/api/..%255cadmin",
        "/api/..%c0%afadmin",
        "/api/%c0%ae%c0%ae/admin",
        "/api/..\\admin",
        "/api//../admin",
        "/api/%2e%2e/admin",
        "/api/../admin",
        "/api/x/../../admin",
        "/api/%00/../../admin",
    ];
    let mut gate_refusals = 0;
    for path in attacks {
        let r = fetch(&a, json!({ "url": format!("{base}{path}") })).await;
        match &r {
            r if forbidden(r) => gate_refusals += 1,
            r if refused_by_wasi(r) => {}
            Ok(v) => {
                let body = v["body"].as_str().unwrap_or_default();
                assert!(
                    body.starts_with("routed: /api/") || body == "routed: /api",
                    "{path} reached {body}"
                );
            }
            Err(e) => panic!("{path}: unexpected {e:?}"),
        }
    }
    assert!(
        gate_refusals >= attacks.len() - 2,
        "the gate refused only {gate_refusals} of {}",
        attacks.len()
    );
    let outside: Vec<String> = routed
        .lock()
        .expect("routed")
        .iter()
        .filter(|p| !p.starts_with("/api/") && p.as_str() != "/api")
        .cloned()
        .collect();
    assert!(outside.is_empty(), "the server routed {outside:?}");

    // What passes goes in its normal form: the upstream sees exactly what was checked.
    let v = fetch(&a, json!({ "url": format!("{base}/api/x/../%69tems?q=1") }))
        .await
        .expect("normalised request");
    assert_eq!(v["body"], "routed: /api/items", "{v}");

    a.flush();
    let rows = audit_rows(&env);
    let denied = rows
        .iter()
        .filter(|r| r.event.event == "http" && r.event.decision == "deny")
        .count();
    assert_eq!(denied, gate_refusals, "every refusal is audited");
    assert!(
        rows.iter().any(|r| r.event.decision == "deny"
            && r.event.path.as_deref() == Some("/api/..;/admin")
            && r.event.reason.contains("Tomcat")),
        "the matrix-parameter refusal names its reason"
    );
    assert!(
        rows.iter()
            .any(|r| r.event.decision == "allow" && r.event.path.as_deref() == Some("/api/items")),
        "the allowed request is audited with the path that was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_and_post_grant_cannot_post_beyond_its_exact_paths() {
    let echo = spawn_echo_server().await;
    let port = echo.port();
    let env = Env::new(&hostile(&format!(
        r#"
[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{port}/v1.0/"
methods = ["GET", "POST"]
exact_paths = ["/v1.0/search/query"]
allow_private = true
"#
    )));
    let a = start_in_process(&env).await;
    let base = format!("http://127.0.0.1:{port}");
    let post = |path: &str| json!({"url": format!("{base}{path}"), "method": "POST", "body": "{}"});

    let ok = fetch(&a, post("/v1.0/search/query"))
        .await
        .expect("the search POST");
    assert!(
        ok["body"]
            .as_str()
            .unwrap_or_default()
            .starts_with("POST /v1.0/search/query"),
        "{ok}"
    );
    for path in [
        "/v1.0/users/u1/sendMail",
        "/v1.0/me/sendMail",
        "/v1.0/search/query/../../users/u1/sendMail",
        "/v1.0/subscriptions",
    ] {
        let r = fetch(&a, post(path)).await;
        assert!(forbidden(&r), "{path}: {r:?}");
    }
    // GETs anywhere under the prefix stay allowed.
    let r = fetch(&a, json!({"url": format!("{base}/v1.0/users/u1")}))
        .await
        .expect("GET");
    assert_eq!(r["status"], 200);

    // Asking for another method through a header or a query parameter is refused.
    for input in [
        json!({"url": format!("{base}/v1.0/users/u1"), "headers": [["X-HTTP-Method-Override", "DELETE"]]}),
        json!({"url": format!("{base}/v1.0/users/u1"), "headers": [["x-http-method", "DELETE"]]}),
        json!({"url": format!("{base}/v1.0/users/u1"), "headers": [["X-Method-Override", "PATCH"]]}),
        json!({"url": format!("{base}/v1.0/users/u1?_method=DELETE")}),
        json!({"url": format!("{base}/v1.0/search/query"), "method": "POST", "headers": [["X-HTTP-Method-Override", "DELETE"]]}),
    ] {
        let r = fetch(&a, input.clone()).await;
        assert!(forbidden(&r), "{input}: {r:?}");
    }

    a.flush();
    let rows = audit_rows(&env);
    assert!(
        rows.iter().any(|r| r.event.decision == "deny"
            && r.event.path.as_deref() == Some("/v1.0/users/u1/sendMail")
            && r.event.reason.contains("not one of the exact paths")),
        "the sendMail POST is audited as refused"
    );
    assert!(
        rows.iter().any(
            |r| r.event.decision == "deny" && r.event.reason.contains("x-http-method-override")
        ),
        "the override header is audited as refused"
    );
    assert!(
        rows.iter()
            .any(|r| r.event.decision == "deny" && r.event.reason.contains("`_method`")),
        "the override parameter is audited as refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_local_and_metadata_addresses_stay_out_of_reach_under_allow_private() {
    let echo = spawn_echo_server().await;
    let port = echo.port();
    let env = Env::new(&hostile(&format!(
        r#"
[resolve]
"ll.test" = "169.254.7.7"
"ecs.test" = "169.254.170.2"
"wire.test" = "168.63.129.16"
"nat64.test" = "64:ff9b::a9fe:a9fe"
"ll6.test" = "fe80::1"

[[grant]]
connector = "hostile"
url = "http://ll.test:{port}/"
allow_private = true
[[grant]]
connector = "hostile"
url = "http://ecs.test:{port}/"
allow_private = true
[[grant]]
connector = "hostile"
url = "http://wire.test:{port}/"
allow_private = true
[[grant]]
connector = "hostile"
url = "http://nat64.test:{port}/"
allow_private = true
[[grant]]
connector = "hostile"
url = "http://ll6.test:{port}/"
allow_private = true
[[grant]]
connector = "hostile"
url = "http://[64:ff9b::7f00:1]:{port}/"
"#
    )));
    let a = start_in_process(&env).await;
    for (host, class) in [
        ("ll.test", "link-local"),
        ("ecs.test", "metadata"),
        ("wire.test", "metadata"),
        ("nat64.test", "metadata"),
        ("ll6.test", "link-local"),
        ("[64:ff9b::7f00:1]", "loopback"),
    ] {
        let r = fetch(&a, json!({"url": format!("http://{host}:{port}/x")})).await;
        assert!(forbidden(&r), "{host}: {r:?}");
        a.flush();
        let rows = audit_rows(&env);
        assert!(
            rows.iter()
                .any(|r| r.event.decision == "deny" && r.event.reason.contains(class)),
            "{host}: no deny row naming {class}"
        );
    }
}
