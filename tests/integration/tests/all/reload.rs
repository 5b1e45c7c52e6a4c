//! Hot reload of `airlock serve`: a changed component or config reloads just the affected
//! connectors, in-flight invocations finish on the old version, a broken new file leaves the old
//! one serving and says why, and SIGHUP or a drop-in `.wasm` work as documented.

use std::path::Path;
use std::time::{Duration, Instant};

use airlock_tests::{Daemon, Env, component};
use serde_json::{Value, json};

/// Replaces `dst` the way build tools do: write a temporary file, then rename over.
fn replace_file(src_bytes: &[u8], dst: &Path) {
    let tmp = dst.with_extension("tmp-write");
    std::fs::write(&tmp, src_bytes).expect("write");
    std::fs::rename(&tmp, dst).expect("rename");
}

async fn connectors(d: &Daemon) -> Vec<Value> {
    let (status, body) = d.get("/v1/connectors").await;
    assert_eq!(status, 200, "{body}");
    body["connectors"].as_array().cloned().unwrap_or_default()
}

async fn status_of(d: &Daemon, id: &str) -> Option<Value> {
    connectors(d).await.into_iter().find(|c| c["id"] == id)
}

/// Polls the connector list until `ok` holds (reloads are asynchronous), or fails with the log.
async fn wait_for(d: &Daemon, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = connectors(d).await;
        if ok(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; connectors: {list:#?}\nlog:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_component_reloads_only_its_connector_and_calls_in_flight_finish_on_the_old_one()
{
    let env = Env::new(
        "[[connector]]\nid = \"a\"\ncomponent = \"conn/a.wasm\"\n\
         [[connector]]\nid = \"b\"\ncomponent = \"conn/b.wasm\"\n",
    );
    let dir = env.dir.path().join("conn");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let hostile = std::fs::read(component("hostile")).expect("hostile");
    std::fs::write(dir.join("a.wasm"), &hostile).expect("a");
    std::fs::write(dir.join("b.wasm"), &hostile).expect("b");
    let d = env.serve();
    let before = connectors(&d).await;
    let b_generation = find(&before, "b").expect("b")["generation"].clone();
    assert_eq!(find(&before, "a").expect("a")["info"]["name"], "hostile");

    // A call that is still running when the new version lands.
    let (base, token) = (d.base.clone(), d.token.clone());
    let sleeper = tokio::spawn(async move {
        airlock_tests::http_auth(
            "POST",
            &format!("{base}/v1/connectors/a/invoke"),
            Some(&token),
            Some(json!({"op": "sleep", "input": {"secs": 6}}).to_string()),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let zendesk = std::fs::read(component("zendesk")).expect("zendesk");
    replace_file(&zendesk, &dir.join("a.wasm"));
    let after = wait_for(&d, "`a` to become the zendesk component", |l| {
        find(l, "a").is_some_and(|a| a["info"]["name"] == "zendesk")
    })
    .await;
    assert!(
        !sleeper.is_finished(),
        "the reload should land while the old version's call is still running"
    );
    let (status, body) = sleeper.await.expect("join");
    assert_eq!(
        status, 200,
        "the in-flight call finishes on the old version: {body}"
    );
    assert_eq!(body["result"]["slept_secs"], 6, "{body}");
    assert_eq!(
        find(&after, "b").expect("b")["generation"],
        b_generation,
        "an unchanged connector is not reloaded"
    );
    let (status, body) = d.invoke("a", "info", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["name"], "zendesk", "{body}");

    // A broken new file: the running version keeps serving, and the status says why.
    replace_file(b"this is not a component", &dir.join("a.wasm"));
    let list = wait_for(&d, "a reload error on `a`", |l| {
        find(l, "a").is_some_and(|a| a["reload_error"].is_string())
    })
    .await;
    let a = find(&list, "a").expect("a");
    assert_eq!(a["status"], "ready", "{a}");
    assert_eq!(a["info"]["name"], "zendesk", "{a}");
    let why = a["reload_error"].as_str().unwrap_or_default();
    assert!(why.contains("not a WebAssembly file"), "{why}");
    let (status, body) = d.invoke("a", "info", json!({})).await;
    assert_eq!(status, 200, "the old version still answers: {body}");
    assert!(d.log().contains("the running version keeps serving"));

    // Fixing the file clears the error.
    replace_file(&hostile, &dir.join("a.wasm"));
    wait_for(&d, "`a` back on hostile without an error", |l| {
        find(l, "a").is_some_and(|a| a["info"]["name"] == "hostile" && a["reload_error"].is_null())
    })
    .await;
    let b = status_of(&d, "b").await.expect("b");
    assert_eq!(b["generation"], b_generation, "b was never rebuilt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edits_sighup_and_drop_in_components_reload_the_affected_connectors() {
    let base = "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nconnectors_dir = \"drop\"\n\n\
                [[connector]]\nid = \"kept\"\ncomponent = \"kept.wasm\"\n";
    let env = Env::new("");
    std::fs::create_dir_all(env.dir.path().join("drop")).expect("mkdir");
    let hostile = std::fs::read(component("hostile")).expect("hostile");
    std::fs::write(env.dir.path().join("kept.wasm"), &hostile).expect("kept");
    std::fs::write(&env.config, base).expect("config");
    let d = env.serve();
    let kept_generation = status_of(&d, "kept").await.expect("kept")["generation"].clone();

    // SIGHUP with nothing changed reloads nothing.
    let pid = d.child.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d
        .log()
        .contains("config reload: added -; reloaded -; removed -; unchanged 1")
    {
        assert!(
            Instant::now() < deadline,
            "no SIGHUP reload; log:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(d.log().contains("hot reload (SIGHUP)"));

    // A new connector in the config file appears; the existing one is untouched.
    let with_new = format!("{base}[[connector]]\nid = \"added\"\ncomponent = \"kept.wasm\"\n");
    replace_file(with_new.as_bytes(), &env.config);
    wait_for(&d, "`added` to load", |l| {
        find(l, "added").is_some_and(|c| c["status"] == "ready")
    })
    .await;
    let (status, body) = d.invoke("added", "info", json!({})).await;
    assert_eq!(status, 200, "{body}");

    // A broken config changes nothing and says why.
    replace_file(b"[[connector]\nid = ", &env.config);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d.log().contains("the running configuration stays in force") {
        assert!(
            Instant::now() < deadline,
            "no reload error; log:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = d.invoke("added", "info", json!({})).await;
    assert_eq!(status, 200, "still serving after a broken config: {body}");

    // A drop-in `.wasm` becomes a connector named after the file; removing it unloads it.
    replace_file(with_new.as_bytes(), &env.config);
    replace_file(&hostile, &env.dir.path().join("drop/extra.wasm"));
    wait_for(&d, "the drop-in `extra`", |l| {
        find(l, "extra").is_some_and(|c| c["status"] == "ready")
    })
    .await;
    let (status, body) = d.invoke("extra", "info", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["name"], "hostile");
    std::fs::remove_file(env.dir.path().join("drop/extra.wasm")).expect("rm");
    wait_for(&d, "`extra` to go", |l| find(l, "extra").is_none()).await;

    let kept = status_of(&d, "kept").await.expect("kept");
    assert_eq!(
        kept["generation"], kept_generation,
        "no reload rebuilt the unchanged connector"
    );
    let log = d.stop();
    assert!(log.contains("removed extra"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_the_serving_file_clears_the_reload_error_and_moved_grants_rebuild_nothing() {
    let grant = |id: &str| {
        format!(
            "[[grant]]\nconnector = \"{id}\"\nurl = \"http://127.0.0.1:9/{id}/\"\nallow_private = true\n"
        )
    };
    let connectors_toml = "[[connector]]\nid = \"a\"\ncomponent = \"conn/a.wasm\"\n\
                           [[connector]]\nid = \"b\"\ncomponent = \"conn/b.wasm\"\n";
    let env = Env::new(&format!("{connectors_toml}{}{}", grant("a"), grant("b")));
    let dir = env.dir.path().join("conn");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let hostile = std::fs::read(component("hostile")).expect("hostile");
    std::fs::write(dir.join("a.wasm"), &hostile).expect("a");
    std::fs::write(dir.join("b.wasm"), &hostile).expect("b");
    let d = env.serve();
    let generation = |l: &[Value], id: &str| find(l, id).expect(id)["generation"].clone();
    let before = connectors(&d).await;

    // A broken file, then the very bytes that are serving put back: the error goes away.
    replace_file(b"not a component", &dir.join("a.wasm"));
    wait_for(&d, "a reload error on `a`", |l| {
        find(l, "a").is_some_and(|a| a["reload_error"].is_string())
    })
    .await;
    replace_file(&hostile, &dir.join("a.wasm"));
    let list = wait_for(&d, "the reload error on `a` to clear", |l| {
        find(l, "a").is_some_and(|a| a["reload_error"].is_null())
    })
    .await;
    assert_eq!(
        generation(&list, "a"),
        generation(&before, "a"),
        "the serving version was never replaced"
    );
    assert!(d.log().contains("the earlier reload error is cleared"));

    // Removing `a`'s grant moves `b`'s from grant[1] to grant[0]: only `a` is rebuilt.
    replace_file(
        format!("{connectors_toml}{}", grant("b")).as_bytes(),
        &env.config,
    );
    let list = wait_for(&d, "`a` rebuilt without its grant", |l| {
        find(l, "a").is_some_and(|a| a["generation"] != generation(&before, "a"))
    })
    .await;
    assert_eq!(
        generation(&list, "b"),
        generation(&before, "b"),
        "b's grant only moved in the file; b keeps its budgets and breakers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_connector_starts_with_a_fresh_budget_and_a_removed_ones_call_finishes() {
    let f = fake_saas::spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        fake_saas::ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let hostile = component("hostile").display().to_string();
    let part = |id: &str, settings: &str| {
        format!(
            "[[connector]]\nid = \"{id}\"\ncomponent = \"{hostile}\"\n{settings}\n\
             [[grant]]\nconnector = \"{id}\"\nurl = \"{}/wiki/\"\nallow_private = true\n",
            f.base_url
        )
    };
    let env = Env::new(&format!("{}{}", part("a", ""), part("b", "")));
    let d = env.serve();
    // One 429 with Retry-After: 600 each pauses both grants for ten minutes.
    f.set_faults(fake_saas::FaultPlan {
        rate: 1.0,
        kinds: vec![fake_saas::FaultKind::RateLimited],
        retry_after_secs: 600,
        ..fake_saas::FaultPlan::default()
    });
    for id in ["a", "b"] {
        let (status, v) = d
            .invoke(id, "fetch", json!({"url": f.url("/wiki/api/v2/spaces")}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["result"]["status"], 429, "{v}");
    }
    f.set_faults(fake_saas::FaultPlan::default());
    let paused = |l: &[Value], id: &str| {
        find(l, id).expect(id)["grants"][0]["paused_for_secs"]
            .as_f64()
            .unwrap_or(0.0)
    };
    let list = connectors(&d).await;
    assert!(
        paused(&list, "a") > 500.0 && paused(&list, "b") > 500.0,
        "{list:#?}"
    );
    let a_generation = find(&list, "a").expect("a")["generation"].clone();

    // A settings change rebuilds `a`: its gate, budget and pause are new; `b` keeps its pause.
    replace_file(
        format!(
            "{}{}",
            part("a", "[connector.settings]\nnote = \"rebuilt\"\n"),
            part("b", "")
        )
        .as_bytes(),
        &env.config,
    );
    let list = wait_for(&d, "`a` rebuilt", |l| {
        find(l, "a").is_some_and(|a| a["generation"] != a_generation)
    })
    .await;
    assert_eq!(paused(&list, "a"), 0.0, "a fresh budget: {list:#?}");
    assert!(paused(&list, "b") > 500.0, "b was not rebuilt: {list:#?}");
    let sent = f.requests().total;
    let (status, v) = d
        .invoke("a", "fetch", json!({"url": f.url("/wiki/api/v2/spaces")}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_ne!(v["result"]["status"], 429, "not paused any more: {v}");
    assert_eq!(f.requests().total, sent + 1, "the request went upstream");

    // `b` removed while a call of it runs: the call finishes, then `b` is gone.
    let (base, token) = (d.base.clone(), d.token.clone());
    let sleeper = tokio::spawn(async move {
        airlock_tests::http_auth(
            "POST",
            &format!("{base}/v1/connectors/b/invoke"),
            Some(&token),
            Some(json!({"op": "sleep", "input": {"secs": 5}}).to_string()),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    replace_file(
        part("a", "[connector.settings]\nnote = \"rebuilt\"\n").as_bytes(),
        &env.config,
    );
    wait_for(&d, "`b` removed", |l| find(l, "b").is_none()).await;
    assert!(!sleeper.is_finished(), "the removal landed during the call");
    let (status, body) = sleeper.await.expect("join");
    assert_eq!(status, 200, "the removed connector's call finishes: {body}");
    assert_eq!(body["result"]["slept_secs"], 5, "{body}");
    let (status, _) = d.invoke("b", "echo", json!({})).await;
    assert_ne!(status, 200, "`b` no longer answers");

    // Every reload is audited with what it did.
    let log = d.stop();
    let rows = airlock_tests::audit_rows(&env);
    let reloads: Vec<_> = rows.iter().filter(|r| r.event.event == "reload").collect();
    assert!(reloads.len() >= 2, "{log}");
    assert!(
        reloads.iter().any(|r| r.event.reason.contains("removed b")),
        "{:?}",
        reloads.iter().map(|r| &r.event.reason).collect::<Vec<_>>()
    );
    assert!(reloads.iter().all(|r| r.event.decision == "ok"));
}
