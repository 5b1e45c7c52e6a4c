//! The README's "Using it" commands run as written, by bash, against the demo config (its fakes
//! on free ports), so the documented commands cannot drift from the binary. Placeholders in the
//! block (`NAME`, `ID`, `[--admin]`...) are filled in by a fixed table; a new line in the block
//! runs too, so it must work as written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlock_tests::*;
use fake_saas::*;

/// Fills the block's placeholders: optional `[...]` parts are taken, names get demo values.
fn fill(line: &str) -> String {
    let line = line.replace(['[', ']'], "");
    line.split(' ')
        .map(|w| match w {
            "NAME" => "acme-wiki",
            "ID" | "CONNECTOR" | "C" => "confluence",
            "S" => "pages",
            "K" => "page",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn bash(dir: &Path, line: &str, token: &str) -> Command {
    let bin_dir = airlock_bin().parent().expect("binary dir").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env("AIRLOCK_TOKEN", token)
        .env("CONFLUENCE_TOKEN", "demo-confluence-token")
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn show(line: &str, out: &Output) -> String {
    format!(
        "`{line}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Starts a long-running command (serve, mcp), checks it comes up, and stops it.
fn run_daemon_line(dir: &Path, line: &str, token: &str) {
    let mut child = bash(dir, line, token)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    let stderr_path = dir.join("daemon.stderr");
    // Drain stderr to a file so the pipe never fills.
    let mut stderr = child.stderr.take().expect("stderr");
    let file = std::fs::File::create(&stderr_path).expect("log file");
    let copier = std::thread::spawn(move || {
        let mut file = file;
        let _ = std::io::copy(&mut stderr, &mut file);
    });
    loop {
        let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        if log.contains("on http://") {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let _ = copier.join();
            let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("`{line}` exited {status} before serving:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "`{line}` did not start serving:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = copier.join();
}

/// Runs an `airlock mcp` line as an assistant would: initialize, list the tools, hang up.
fn run_mcp_line(dir: &Path, line: &str, token: &str) {
    use std::io::{BufRead, BufReader, Write};
    let mut child = bash(dir, line, token)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    for msg in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"readme","version":"0"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    ] {
        writeln!(stdin, "{msg}").expect("write to mcp");
    }
    stdin.flush().expect("flush");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if l.contains("\"id\":2") {
                let _ = tx.send(l);
                return;
            }
        }
    });
    let tools = rx.recv_timeout(Duration::from_secs(120));
    drop(stdin);
    let status = child.wait().expect("wait");
    let tools = tools.unwrap_or_else(|_| panic!("`{line}` listed no tools (exit {status})"));
    assert!(tools.contains("\"search\""), "`{line}`: {tools}");
    assert!(tools.contains("confluence__"), "`{line}`: {tools}");
}

/// The demo config with its fakes on free ports, a data dir of its own and absolute paths.
fn demo_config(addrs: &[(u16, String)]) -> String {
    let mut text =
        std::fs::read_to_string(root().join("examples/demo.toml")).expect("examples/demo.toml");
    for (port, base) in addrs {
        text = text.replace(&format!("http://127.0.0.1:{port}"), base);
    }
    text = text.replace("listen = \"127.0.0.1:7700\"", "listen = \"127.0.0.1:0\"");
    text = text.replace("data_dir = \"../.airlock/demo\"", "data_dir = \"data\"");
    text.replace(
        "\"../target/",
        &format!("\"{}/", root().join("target").display()),
    )
}

/// `config` reduced to one connector and its grants (what `conformance` and `record` test).
fn one_connector(config: &str, id: &str) -> String {
    let mut v: toml::Table = toml::from_str(config).expect("demo config parses");
    for (key, field) in [("connector", "id"), ("grant", "connector")] {
        if let Some(toml::Value::Array(items)) = v.get_mut(key) {
            items.retain(|c| c.get(field).and_then(toml::Value::as_str) == Some(id));
        }
    }
    v.remove("route");
    v.remove("search"); // its embedding connector is gone
    toml::to_string(&v).expect("toml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_run_as_written_against_the_demo_config() {
    let any = || "127.0.0.1:0".parse().expect("addr");
    let confluence = spawn_confluence(any(), ConfluenceOptions::default())
        .await
        .expect("confluence");
    let zendesk = spawn_zendesk(any(), ZendeskOptions::default())
        .await
        .expect("zendesk");
    let jira = spawn_jira(any(), JiraOptions::default())
        .await
        .expect("jira");
    let atera = spawn_atera(any(), AteraOptions::default())
        .await
        .expect("atera");
    let azure = spawn_azure(any(), AzureOptions::default())
        .await
        .expect("azure");
    let openai = spawn_openai(any(), OpenAiOptions::default())
        .await
        .expect("openai");
    let lmstudio = spawn_openai(
        any(),
        OpenAiOptions {
            mode: OpenAiMode::LmStudio,
            ..OpenAiOptions::default()
        },
    )
    .await
    .expect("lmstudio");
    let azure_openai = spawn_openai(
        any(),
        OpenAiOptions {
            mode: OpenAiMode::Azure,
            api_key: "demo-azure-openai-key".into(),
            ..OpenAiOptions::default()
        },
    )
    .await
    .expect("azure-openai");
    let msgraph = spawn_msgraph(any(), MsGraphOptions::default())
        .await
        .expect("msgraph");
    let addrs = vec![
        (8781, confluence.base_url.clone()),
        (8782, zendesk.base_url.clone()),
        (8783, jira.base_url.clone()),
        (8784, atera.base_url.clone()),
        (8785, azure.base_url.clone()),
        (8786, openai.base_url.clone()),
        (8787, lmstudio.base_url.clone()),
        (8788, azure_openai.base_url.clone()),
        (8789, msgraph.base_url.clone()),
    ];

    let tmp = tempfile::tempdir().expect("tmp");
    let dir: PathBuf = tmp.path().to_path_buf();
    let config = demo_config(&addrs);
    std::fs::write(dir.join("airlock.toml"), &config).expect("airlock.toml");
    std::fs::write(dir.join("test.toml"), one_connector(&config, "confluence")).expect("test.toml");
    std::fs::copy(component("confluence"), dir.join("connector.wasm")).expect("connector.wasm");
    std::fs::create_dir_all(dir.join("tests/cassettes")).expect("cassettes dir");

    // The demo's secrets, as examples/run-demo.sh stores them (stdin, never argv).
    let env = |cfg: &str| {
        let mut e = Env::new("");
        e.config = dir.join(cfg);
        e
    };
    let demo = env("airlock.toml");
    for (name, value) in [
        ("confluence_token", "demo-confluence-token"),
        ("zendesk_token", "demo-zendesk-token"),
        ("jira_token", "demo-jira-token"),
        ("atera_key", "demo-atera-key"),
        ("azure_secret", "demo-azure-secret"),
        ("azure_openai_key", "demo-azure-openai-key"),
        ("openai_key", "demo-openai-key"),
        ("graph_secret", "demo-graph-secret"),
    ] {
        demo.set_secret(name, value);
    }
    env("test.toml").set_secret("confluence_token", "demo-confluence-token");
    let token = demo.create_token("readme", "default", &[], true);

    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = shell_block(&readme, "## Using it");
    assert!(lines.len() >= 15, "the block shrank? {lines:#?}");
    let mut ran = Vec::new();
    for line in &lines {
        let line = fill(line);
        let long_running = line.starts_with("airlock serve");
        if line.contains("airlock mcp") {
            let (dir2, token2, line2) = (dir.clone(), token.clone(), line.clone());
            tokio::task::spawn_blocking(move || run_mcp_line(&dir2, &line2, &token2))
                .await
                .expect("join");
            ran.push(line);
            continue;
        }
        let dir2 = dir.clone();
        let token2 = token.clone();
        let line2 = line.clone();
        if long_running {
            tokio::task::spawn_blocking(move || run_daemon_line(&dir2, &line2, &token2))
                .await
                .expect("join");
        } else {
            let out = tokio::task::spawn_blocking(move || {
                bash(&dir2, &line2, &token2).output().expect("bash")
            })
            .await
            .expect("join");
            assert!(out.status.success(), "{}", show(&line, &out));
            // Nothing the docs show prints a secret.
            for secret in ["demo-confluence-token", "demo-graph-secret", token.as_str()] {
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(
                    !text.contains(secret) || line.starts_with("airlock tokens"),
                    "`{line}` printed a secret:\n{text}"
                );
            }
        }
        ran.push(line);
    }
    assert_eq!(ran.len(), lines.len());
    // What the commands claim to have done, they did.
    assert!(dir.join("acme-wiki/Cargo.toml").is_file(), "new connector");
    assert!(dir.join("tests/cassettes/sync.json").is_file(), "record");
    assert!(
        dir.join("tests/cassettes/c.json").is_file(),
        "conformance --record"
    );
}

#[test]
fn shell_blocks_join_continuations_and_drop_comments() {
    let md = "# x\n## Using it\n\n```sh\nairlock a '{\"q\":\"#1\"}'  # comment\n\n# only a comment\nairlock b \\\n    --c d   # more\n```\n";
    assert_eq!(
        shell_block(md, "## Using it"),
        vec!["airlock a '{\"q\":\"#1\"}'", "airlock b --c d"]
    );
    assert_eq!(
        fill("airlock tokens create [--groups a,b] [--admin] NAME"),
        "airlock tokens create --groups a,b --admin acme-wiki"
    );
}
