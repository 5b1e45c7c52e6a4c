//! Bad components and bad config get a clear error naming the file and the reason, and never
//! stop the other connectors from loading.

use std::process::{Command, Stdio};

use airlock::app::Slot;
use airlock_tests::*;

fn connector(id: &str, path: &std::path::Path) -> String {
    format!(
        "[[connector]]\nid = \"{id}\"\ncomponent = \"{}\"\n",
        path.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_component_fails_alone_with_a_named_reason() {
    let tmp = tempfile::tempdir().expect("tmp");
    let text = tmp.path().join("notes.wasm");
    std::fs::write(&text, "this is not wasm").expect("write");
    let core = tmp.path().join("core.wasm");
    // The smallest valid core module: magic + version 1.
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let truncated = tmp.path().join("truncated.wasm");
    let good = std::fs::read(component("hostile")).expect("read");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write");
    let missing = tmp.path().join("missing.wasm");

    let body = [
        connector("good", &component("hostile")),
        connector("text", &text),
        connector("core", &core),
        connector("truncated", &truncated),
        connector("missing", &missing),
        connector("other-world", &component("wrong_world")),
        connector("future", &component("future_contract")),
    ]
    .join("\n");
    let env = Env::new(&body);
    let a = start_in_process(&env).await;
    let expect = [
        ("text", "not a WebAssembly file"),
        ("core", "core WebAssembly module, not a component"),
        ("truncated", "not a valid component"),
        ("missing", "cannot read"),
        ("other-world", "component of another world"),
        ("future", "airlock:connector@2.0.0"),
    ];
    for (id, reason) in expect {
        match a.slot(id) {
            Some(Slot::Failed { error, path }) => {
                assert!(error.contains(reason), "{id}: {error}");
                assert!(
                    error.contains(&path.display().to_string()),
                    "{id}: error does not name the file: {error}"
                );
            }
            _ => panic!("{id} should have failed to load"),
        }
    }
    assert!(
        matches!(a.slot("good"), Some(Slot::Ready(_))),
        "the good connector must still load"
    );
    let r = a
        .invoke("good", airlock::runtime::connector::Op::Info)
        .await
        .expect("info");
    assert_eq!(r["name"], "hostile");
}

#[test]
fn check_command_reports_contract_and_rejects_bad_files() {
    let env = Env::new("");
    let out = env.airlock(
        &["check", component("hostile").to_str().unwrap_or_default()],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("airlock:connector@0.1.0"), "{stdout}");
    assert!(stdout.contains("hostile"), "{stdout}");

    let out = env.airlock(
        &[
            "check",
            component("wrong_world").to_str().unwrap_or_default(),
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wrong_world.wasm") && stderr.contains("another world"),
        "{stderr}"
    );
}

/// `airlock check` loads the file in a throwaway host under the temporary directory; the host
/// writes on its way out (a clean stop signs the audit chain's head), so the directory must go
/// after it, whether the file loads or not.
#[test]
fn check_leaves_nothing_in_the_temporary_directory() {
    let tmp = tempfile::tempdir().expect("tmp");
    for name in ["hostile", "wrong_world"] {
        let out = Command::new(airlock_bin())
            .args(["check", component(name).to_str().unwrap_or_default()])
            .env("TMPDIR", tmp.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("airlock check");
        assert_eq!(out.status.success(), name == "hostile", "{name}");
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("read tmp")
            .map(|e| e.map(|e| e.path()))
            .collect();
        assert!(left.is_empty(), "{name} left behind: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_start_loads_from_the_compile_cache() {
    let env = Env::new(&connector("c", &component("hostile")));
    env.own_compile_cache();
    let first = start_in_process(&env).await;
    let Some(Slot::Ready(c)) = first.slot("c") else {
        panic!("load")
    };
    assert!(!c.compile.from_cache, "first load compiles");
    drop(first);
    let second = start_in_process(&env).await;
    let Some(Slot::Ready(c)) = second.slot("c") else {
        panic!("load")
    };
    assert!(c.compile.from_cache, "second load must come from the cache");
}

#[test]
fn config_errors_name_the_file_and_key() {
    let cases = [
        ("[limits]\ntimout = \"3s\"\n", "timout"),
        ("[limits]\ntimeout = \"often\"\n", "limits.timeout"),
        ("[limits]\nmemory_mib = 0\n", "limits.memory_mib"),
        ("[server]\nlisten_backlog = 0\n", "server.listen_backlog"),
        (
            "[[grant]]\nconnector = \"ghost\"\nurl = \"https://a.example.com/\"\n",
            "grant[0].connector",
        ),
        (
            "[[connector]]\nid = \"Bad Id\"\ncomponent = \"x.wasm\"\n",
            "connector[0].id",
        ),
        (
            "[[connector]]\nid = \"c\"\ncomponent = \"x.wasm\"\n[[grant]]\nconnector = \"c\"\nurl = \"https://a.example.com/\"\nmethods = [\"FETCH IT\"]\n",
            "grant[0].methods",
        ),
        (
            "[[connector]]\nid = \"c\"\ncomponent = \"x.wasm\"\n[[grant]]\nconnector = \"c\"\nhost = \"*\"\n",
            "grant[0].host",
        ),
        ("[server]\nlisten = \"everywhere\"\n", "server.listen"),
        ("this is = not toml [", "invalid config"),
    ];
    for (body, key) in cases {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, body).expect("write");
        let out = std::process::Command::new(airlock_bin())
            .args(["serve", "--config", cfg.to_str().unwrap_or_default()])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{body} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("bad.toml"),
            "{body}: message does not name the file: {stderr}"
        );
        assert!(
            stderr.contains(key),
            "{body}: message does not name `{key}`: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_config_loads_every_connector() {
    let path = root().join("examples/demo.toml");
    let mut config = airlock::config::Config::load(&path).expect("demo.toml parses");
    let dir = tempfile::tempdir().expect("tmp");
    config.server.data_dir = dir.path().to_path_buf();
    let conn = airlock::store::open(dir.path()).expect("db");
    let vault = airlock::store::vault::Vault::open(dir.path()).expect("vault");
    for name in [
        "confluence_token",
        "zendesk_token",
        "jira_token",
        "atera_key",
        "azure_secret",
        "azure_openai_key",
        "openai_key",
        "graph_secret",
    ] {
        vault.set(&conn, name, "demo-value-123").expect("set");
    }
    let a =
        airlock::app::Airlock::start(config, airlock::scrub::Scrubber::new(), Default::default())
            .await
            .expect("start");
    for s in a.statuses() {
        assert_eq!(s.status, "ready", "{}: {:?}", s.id, s.error);
    }
    assert!(
        a.statuses().len() >= 8,
        "every demo connector is configured"
    );
    assert!(a.config().route("chat").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_only_for_required_connectors_and_metrics_show_which_loaded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("missing.wasm");
    let base = [
        connector("good", &component("hostile")),
        connector("gone", &missing),
    ]
    .join("\n");
    // An optional connector that did not load is named, but the daemon serves.
    let env = Env::new(&base);
    let d = env.serve();
    let (status, body) = http("GET", &format!("{}/readyz", d.base), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.as_str().is_some_and(|b| b.contains("gone")), "{body}");
    let (status, text) = http("GET", &format!("{}/metrics", d.base), None).await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap_or_default().to_string();
    for needle in [
        "airlock_connector_loaded{connector=\"good\"} 1",
        "airlock_connector_loaded{connector=\"gone\"} 0",
        "airlock_build_info{version=\"",
        "# EOF",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    drop(d);

    // Marked required, it keeps the daemon unready, and says so.
    let env = Env::new(&base.replace("id = \"gone\"", "id = \"gone\"\nrequired = true"));
    let d = env.serve();
    let (status, body) = http("GET", &format!("{}/readyz", d.base), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string()
            .contains("required connectors not loaded: gone"),
        "{body}"
    );
}

#[test]
fn config_check_reports_every_problem_at_once_and_never_a_secret_value() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("missing.wasm");
    let body = format!(
        "{}{}",
        confluence_config("http://127.0.0.1:9"),
        connector("gone", &missing)
    );
    let env = Env::new(&body);
    let out = env.airlock(&["config", "check"], None);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL connector gone:") && stdout.contains("cannot read"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL connector confluence:") && stdout.contains("confluence_token"),
        "the missing secret is named: {stdout}"
    );
    // With the secret stored and the broken connector gone, it passes and prints no value.
    let canary = "canary-config-check-7f3a";
    env.set_secret("confluence_token", canary);
    let env2 = Env::new(&confluence_config("http://127.0.0.1:9"));
    env2.set_secret("confluence_token", canary);
    let out = env2.airlock(&["config", "check"], None);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("ok   connector confluence:") && all.contains("config check passed"));
    assert!(!all.contains(canary), "a secret value was printed: {all}");
    // A file that does not parse is one clear finding.
    let bad = Env::new("[[connector]\n");
    let out = bad.airlock(&["config", "check"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("FAIL config "));
}

#[test]
fn the_environment_overrides_the_data_directory_and_listen_address() {
    let env = Env::new("");
    let elsewhere = tempfile::tempdir().expect("tmp");
    let out = Command::new(airlock_bin())
        .args(["tokens", "create", "--principal", "env-test"])
        .env("AIRLOCK_CONFIG", &env.config)
        .env("AIRLOCK_DATA_DIR", elsewhere.path())
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        elsewhere.path().join("airlock.db").is_file(),
        "the store went elsewhere"
    );
    assert!(
        !env.data_dir().join("airlock.db").exists(),
        "the config's data_dir was used"
    );
    let out = Command::new(airlock_bin())
        .args(["config", "check"])
        .env("AIRLOCK_CONFIG", &env.config)
        .env("AIRLOCK_LISTEN", "not-an-address")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("AIRLOCK_LISTEN: `not-an-address`"), "{text}");
}

#[test]
fn the_bash_completion_script_is_valid_bash_and_completes_every_command() {
    let out = Command::new(airlock_bin())
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout).to_string();
    for command in [
        "serve",
        "invoke",
        "sync",
        "changes",
        "config",
        "audit",
        "completions",
    ] {
        assert!(
            script.contains(command),
            "{command} missing from the script"
        );
    }
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("airlock.bash");
    std::fs::write(&file, &script).expect("write");
    // Sourced by bash, it registers a completion for `airlock` and completes a subcommand.
    let probe = format!(
        "source {} && complete -p airlock >/dev/null && COMP_WORDS=(airlock cha) && \
         COMP_CWORD=1 && _airlock airlock cha airlock && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash")
        .args(["-c", &probe])
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().any(|l| l == "changes"), "{text}");
}

/// `airlock man` prints airlock(1) as roff naming every subcommand's page, and `--out-dir`
/// writes those pages; `man` itself renders it when the machine has man.
#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let out = Command::new(airlock_bin())
        .arg("man")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(page.contains(".TH airlock 1"), "no roff title:\n{page}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH SUBCOMMANDS",
        ".SH ENVIRONMENT",
    ] {
        assert!(page.contains(section), "{section} missing");
    }
    assert!(page.contains(".SH \"EXIT STATUS\""), "exit codes missing");
    for command in [
        "serve",
        "invoke",
        "sync",
        "config",
        "secrets",
        "audit",
        "completions",
        "man",
    ] {
        // roff escapes the hyphen of `airlock-serve(1)`.
        assert!(
            page.contains(&format!("airlock\\-{command}(1)")),
            "{command} missing from the page"
        );
    }
    assert!(page.contains("AIRLOCK_MASTER_KEY_FILE"));
    // DESCRIPTION is the long text of `--help`, not the one-line summary again.
    assert!(page.contains("hash\\-chained"), "{page}");

    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(airlock_bin())
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success());
    for file in [
        "airlock.1",
        "airlock-serve.1",
        "airlock-config-check.1",
        "airlock-secrets-set.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(file)).expect(file);
        assert!(text.contains(".TH "), "{file} is not roff");
    }
    assert!(
        !dir.path().join("airlock-help.1").exists(),
        "clap's help has no page"
    );
    match Command::new("man")
        .arg("-l")
        .arg(dir.path().join("airlock.1"))
        .env("MANWIDTH", "100")
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("EXIT STATUS"), "{text}");
        }
        _ => eprintln!("skipped rendering: no working `man` on this machine"),
    }
}
