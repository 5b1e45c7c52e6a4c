//! The TicketZero loop as a worked example (`examples/ticketzero/ticketzero.py`, Python with
//! `requests` only) against the fakes: it follows the change feed for Atera tickets, looks each
//! end user up in Microsoft Graph, asks the `chat` route for a reply (LM Studio is down, so Azure
//! OpenAI answers) and asks to post it as an Atera comment, a write that waits for approval.
//! Ten tickets are handled concurrently; the example and the daemon are both killed mid-way and
//! restarted; after an admin approves, each ticket has exactly one new comment at the fake and
//! the audit log shows the chain under the example's principal.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_tests::*;
use fake_saas::openai::{OpenAiMode, OpenAiOptions};
use fake_saas::{AteraOptions, MsGraphOptions, spawn_atera, spawn_msgraph, spawn_openai};
use serde_json::Value;

const AZURE_KEY: &str = "azure-test-key";

/// The three LLM instances and a `chat` route trying LM Studio, then Azure OpenAI (OpenAI's
/// instance is configured but not on the route).
fn llm_config(lm: &str, azure: &str) -> String {
    let route = "[[route]]\nname = \"chat\"\naction = \"chat\"\nconnectors = [\"lmstudio\", \"azure-openai\"]\n";
    format!("{}\n{route}", openai_config(lm, azure, lm))
}

fn example(env: &Env, d: &Daemon, token: &str, idle_exit: &str) -> Child {
    let python = root().join("target/polyglot/venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test`",
        python.display()
    );
    Command::new(python)
        .arg(root().join("examples/ticketzero/ticketzero.py"))
        .args([
            "--airlock",
            &d.base,
            "--token",
            token,
            "--idle-exit",
            idle_exit,
        ])
        .arg("--state")
        .arg(env.dir.path().join("tz-state.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example")
}

async fn approvals(d: &Daemon) -> Vec<Value> {
    let (status, body) = d.get("/v1/approvals").await;
    assert_eq!(status, 200, "{body}");
    body["approvals"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticketzero_answers_each_ticket_once_across_restarts_with_approval() {
    let atera = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions {
            tickets: 10,
            ..AteraOptions::default()
        },
    )
    .await
    .expect("atera");
    let graph_opts = MsGraphOptions::default();
    let graph = spawn_msgraph("127.0.0.1:0".parse().expect("addr"), graph_opts.clone())
        .await
        .expect("graph");
    let azure = spawn_openai(
        "127.0.0.1:0".parse().expect("addr"),
        OpenAiOptions {
            mode: OpenAiMode::Azure,
            api_key: AZURE_KEY.into(),
            ..OpenAiOptions::default()
        },
    )
    .await
    .expect("azure");
    // LM Studio is down: nothing listens on its port.
    let lm = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let env = Env::new(&format!(
        "{}{}{}",
        atera_config(&atera.base_url),
        msgraph_config(&graph, &graph_opts.client_id),
        llm_config(&lm, &azure.base_url)
    ));
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    env.set_secret("graph_secret", &graph_opts.client_secret);
    env.set_secret("azure_openai_key", AZURE_KEY);
    // TicketZero works as the MSP's technicians do: it reads every Atera ticket.
    let tz = env.create_token("ticketzero", "default", &["atera-technicians"], false);
    let carol = env.create_token("carol", "default", &[], true);
    let tickets: BTreeSet<u64> = atera.truth().tickets.iter().map(|t| t.id).collect();
    assert_eq!(tickets.len(), 10);

    let d = env.serve();
    let (status, _) = d.post("/v1/sync/atera", "").await;
    assert_eq!(status, 202);
    // The example runs until it has asked for a few comments; then it and the daemon die.
    let mut run = example(&env, &d, &tz, "60");
    let until = Instant::now() + Duration::from_secs(90);
    while approvals(&d).await.len() < 3 {
        let ended = run.try_wait().expect("example status");
        if ended.is_some() || Instant::now() > until {
            let _ = run.kill();
            let out = run.wait_with_output().expect("example output");
            panic!(
                "the example asked for too little ({ended:?}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.kill().expect("kill the example");
    let _ = run.wait();
    let mut d = d;
    d.child.kill().expect("kill -9 the daemon");
    let _ = d.child.wait();

    // Both come back; the example finishes the rest and stops when the feed is quiet.
    let d = env.serve();
    let out = example(&env, &d, &tz, "3")
        .wait_with_output()
        .expect("example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asked = approvals(&d).await;
    let by_ticket: BTreeMap<u64, &Value> = asked
        .iter()
        .map(|a| (a["input"]["ticket_id"].as_u64().expect("ticket_id"), a))
        .collect();
    assert_eq!(asked.len(), 10, "one approval per ticket: {asked:?}");
    assert_eq!(by_ticket.keys().copied().collect::<BTreeSet<_>>(), tickets);
    assert!(
        atera.truth().writes.is_empty(),
        "nothing written before approval"
    );
    // Replies came from Azure (LM Studio down) and used the Graph profile of the end user.
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).expect("example output");
        if v["resumed"] != true {
            assert_eq!(v["answered_by"], "azure-openai", "{line}");
            assert_eq!(v["skipped"], serde_json::json!(["lmstudio"]), "{line}");
            assert_eq!(v["user_found"], true, "{line}");
        }
    }

    // A person approves each; every ticket gets exactly one comment.
    for a in &asked {
        let url = format!(
            "{}/v1/approvals/{}/approve",
            d.base,
            a["id"].as_str().expect("id")
        );
        let (status, body) = http_auth("POST", &url, Some(&carol), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["approval"]["status"], "executed", "{body}");
    }
    let writes = atera.truth().writes;
    let commented: Vec<u64> = writes.iter().map(|w| w.ticket_id).collect();
    assert_eq!(commented.len(), 10, "{commented:?}");
    assert_eq!(commented.iter().copied().collect::<BTreeSet<_>>(), tickets);
    assert!(writes.iter().all(|w| w.comment.starts_with("echo: ")));
    // A second run finds nothing new to do (the comments changed the tickets, the state file
    // knows them).
    let out = example(&env, &d, &tz, "2")
        .wait_with_output()
        .expect("example");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    assert_eq!(approvals(&d).await.len(), 10);

    // The chain is in the audit log under the example's principal: the Graph lookups, the
    // route that failed over, the approvals it asked for.
    drop(d);
    let rows = audit_rows(&env);
    let of = |connector: &str, event: &str| {
        rows.iter()
            .filter(|r| {
                r.event.connector == connector
                    && r.event.event == event
                    && r.event.principal.as_deref() == Some("token:ticketzero")
            })
            .count()
    };
    assert!(of("msgraph", "invoke") >= 10, "Graph lookups");
    assert!(of("chat", "route") >= 10, "route calls");
    assert!(of("atera", "approval") >= 10, "approvals asked");
}
