//! `make dist`'s packing step (dist/build.sh) on what is already built: the archive holds the
//! binary, every connector the Makefile lists, man pages, completions, the systemd unit and an
//! example config that parses; the unit passes `systemd-analyze verify` where that exists; the
//! container image's run stage serves and passes its own health check.

use std::path::Path;
use std::process::Command;

use airlock_tests::*;

/// The Makefile's `CONNECTORS := ...` list, so the archive and the build agree on it.
fn makefile_connectors() -> Vec<String> {
    let makefile = std::fs::read_to_string(root().join("Makefile")).expect("Makefile");
    let line = makefile
        .lines()
        .find_map(|l| l.strip_prefix("CONNECTORS :="))
        .expect("CONNECTORS in the Makefile");
    line.split_whitespace().map(str::to_string).collect()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_release_archive_holds_what_an_install_needs() {
    let bin = airlock_bin();
    let connectors = makefile_connectors();
    for c in &connectors {
        component(&c.replace('-', "_"));
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let out_dir = tmp.path().join("out");
    let printed = run(Command::new(root().join("dist/build.sh"))
        .arg(&out_dir)
        .env("CONNECTORS", connectors.join(" "))
        .env("BIN", &bin));
    let archive = Path::new(printed.trim());
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .expect("an archive name");
    let version = run(Command::new(&bin).arg("--version"));
    assert!(
        name.starts_with(&format!(
            "airlock-{}-",
            version.trim().replace("airlock ", "")
        )),
        "{name}"
    );
    assert!(
        archive.starts_with(&out_dir) && archive.is_file(),
        "{printed}"
    );

    let listing = run(Command::new("tar").arg("tzf").arg(archive));
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{name}/")))
        .collect();
    let mut expected: Vec<String> = [
        "bin/airlock",
        "man/man1/airlock.1",
        "man/man1/airlock-serve.1",
        "completions/airlock.bash",
        "completions/_airlock",
        "completions/airlock.fish",
        "systemd/airlock.service",
        "systemd/airlock.sysusers",
        "airlock.example.toml",
        "README.md",
        "INSTALL.md",
        "docs/configuration.md",
        "docs/security.md",
        "connectors/SHA256SUMS",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.extend(
        connectors
            .iter()
            .map(|c| format!("connectors/{}.wasm", c.replace('-', "_"))),
    );
    for f in &expected {
        assert!(files.contains(&f.as_str()), "{f} missing from:\n{listing}");
    }
    // Only the listed connectors: no test components.
    let wasm = files.iter().filter(|f| f.ends_with(".wasm")).count();
    assert_eq!(wasm, connectors.len(), "{listing}");

    run(Command::new("tar")
        .arg("xzf")
        .arg(archive)
        .arg("-C")
        .arg(tmp.path()));
    let unpacked = tmp.path().join(name);
    let unit = std::fs::read_to_string(unpacked.join("systemd/airlock.service")).expect("unit");
    for line in [
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=airlock",
        "LoadCredential=master-key:/etc/airlock/master.key",
        "Environment=AIRLOCK_MASTER_KEY_FILE=%d/master-key",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
    // wasmtime maps compiled code executable: that setting would stop every connector.
    assert!(
        !unit
            .lines()
            .any(|l| l.trim_start().starts_with("MemoryDenyWriteExecute")),
        "MemoryDenyWriteExecute must stay unset"
    );
    verify_unit(&unit, &unpacked.join("bin/airlock"), tmp.path());

    // The example config parses as shipped, and names the archive's connectors (each file name
    // under connectors/); nothing is loaded from it here, its upstreams are examples.
    let example = unpacked.join("airlock.example.toml");
    let out = Command::new(unpacked.join("bin/airlock"))
        .args(["config", "check", "--config"])
        .arg(&example)
        .env("AIRLOCK_DATA_DIR", tmp.path().join("data"))
        .output()
        .expect("config check");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.starts_with("ok   config "), "{report}");
    let text = std::fs::read_to_string(&example).expect("example");
    for line in text.lines().filter(|l| l.starts_with("component = ")) {
        let file = line
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches('"');
        assert!(
            files.contains(&format!("connectors/{file}").as_str()),
            "{line}: not in the archive"
        );
    }
    // The binary in the archive runs and prints its man page.
    let page = run(Command::new(unpacked.join("bin/airlock")).arg("man"));
    assert!(page.contains(".TH airlock 1"));
}

/// `systemd-analyze verify` on the unit, its ExecStart pointed at the unpacked binary (verify
/// checks that the program exists); skipped where systemd-analyze is absent.
fn verify_unit(unit: &str, bin: &Path, dir: &Path) {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    if !probe.status.success() {
        eprintln!("skipped: systemd-analyze does not run here");
        return;
    }
    let unit = unit.replace("/usr/local/bin/airlock", &bin.display().to_string());
    let file = dir.join("airlock.service");
    std::fs::write(&file, unit).expect("write unit");
    // --man=no: the pages it documents are in the archive, not installed on this machine.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .expect("systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !said.contains("airlock.service"),
        "systemd-analyze verify: {said}"
    );
}

/// What the Dockerfile's run stage says: its `ENV` values, the config it copies in and its
/// `HEALTHCHECK` command. Read from the file so the test follows it.
struct RunStage {
    env: Vec<(String, String)>,
    healthcheck: Vec<String>,
}

fn run_stage(dockerfile: &str) -> RunStage {
    // Instructions continue over lines ending in a backslash.
    let joined = dockerfile.replace("\\\n", " ");
    let stage = joined
        .rsplit_once("\nFROM ")
        .map(|(_, run)| run)
        .expect("a second FROM: the run stage");
    let mut env = Vec::new();
    let mut healthcheck = Vec::new();
    for line in stage.lines() {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV key=value");
                env.push((k.to_string(), v.to_string()));
            }
        } else if let Some(rest) = line.strip_prefix("HEALTHCHECK ") {
            let cmd = &rest[rest.find("CMD [").expect("HEALTHCHECK CMD [...]") + 4..];
            healthcheck = serde_json::from_str(cmd).expect("HEALTHCHECK CMD is a JSON array");
        }
    }
    RunStage { env, healthcheck }
}

/// No container engine runs here, so the image's run stage is replayed on the host: the binary
/// with the image's `ENV` (its paths moved under a temporary root, its port a free loopback one),
/// the example config it copies in, and its `HEALTHCHECK` command, which must fail before the
/// daemon is ready and pass once it is (what `docker run` would report as healthy).
#[test]
fn the_container_images_run_stage_serves_from_its_env_and_passes_its_healthcheck() {
    let dockerfile = std::fs::read_to_string(root().join("dist/Dockerfile")).expect("Dockerfile");
    let stage = run_stage(&dockerfile);
    let get = |k: &str| {
        stage
            .env
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("ENV {k} in the run stage"))
    };
    assert!(
        dockerfile.contains("COPY dist/airlock.toml /etc/airlock/airlock.toml"),
        "the image ships the example config"
    );
    assert_eq!(get("AIRLOCK_CONFIG"), "/etc/airlock/airlock.toml");
    let image_port = get("AIRLOCK_LISTEN")
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .expect("AIRLOCK_LISTEN host:port");
    assert!(
        stage.healthcheck.iter().any(|a| a.contains(&image_port)),
        "the health check asks the port the image listens on: {:?}",
        stage.healthcheck
    );

    // The image's file system under a temporary root.
    let tmp = tempfile::tempdir().expect("tmp");
    let image = |p: &str| tmp.path().join(p.trim_start_matches('/'));
    let connectors = image("/usr/local/lib/airlock/connectors");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    let config_text = std::fs::read_to_string(root().join("dist/airlock.toml")).expect("example");
    for line in config_text
        .lines()
        .filter(|l| l.starts_with("component = "))
    {
        let file = line
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches('"');
        let built = component(file.trim_end_matches(".wasm"));
        std::fs::copy(&built, connectors.join(file)).expect("copy connector");
    }
    let config = image(&get("AIRLOCK_CONFIG"));
    std::fs::create_dir_all(config.parent().expect("etc")).expect("etc dir");
    std::fs::write(
        &config,
        config_text.replace(
            "/usr/local/lib/airlock/connectors",
            &connectors.display().to_string(),
        ),
    )
    .expect("config");
    let data = image(&get("AIRLOCK_DATA_DIR"));
    std::fs::create_dir_all(&data).expect("data dir");

    // An operator's first step (`docker run … airlock secrets set NAME`): every secret the
    // example config names, through the CLI with the image's environment; until then the
    // required connector cannot load and the check rightly fails.
    let mut names: Vec<&str> = config_text
        .split("\"secret:")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(!names.is_empty(), "the example config names its secrets");
    for name in names {
        let mut set = Command::new(airlock_bin())
            .args(["secrets", "set", name])
            .env_remove("AIRLOCK_MASTER_KEY")
            .env("AIRLOCK_CONFIG", &config)
            .env("AIRLOCK_DATA_DIR", &data)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("secrets set");
        {
            use std::io::Write;
            let mut stdin = set.stdin.take().expect("stdin");
            stdin.write_all(b"example-value").expect("write secret");
        }
        assert!(
            set.wait().expect("secrets set").success(),
            "secrets set {name}"
        );
    }

    let port = free_port();
    let health = |port: u16| {
        let args: Vec<String> = stage
            .healthcheck
            .iter()
            .map(|a| a.replace(&image_port, &port.to_string()))
            .collect();
        // Docker stops a check after its --timeout (5 s); so does this one.
        Command::new("timeout")
            .arg("5")
            .args(&args)
            .status()
            .expect("run the health check")
            .success()
    };
    assert!(!health(port), "healthy before anything listens");

    let mut daemon = Command::new(airlock_bin())
        .env_remove("AIRLOCK_MASTER_KEY")
        .env("AIRLOCK_CONFIG", &config)
        .env("AIRLOCK_DATA_DIR", &data)
        .env("AIRLOCK_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(std::process::Stdio::null())
        // A file, not a pipe: nobody reads a pipe until the end, and a full one would stall
        // the daemon's logging.
        .stderr(std::fs::File::create(tmp.path().join("daemon.log")).expect("log file"))
        .spawn()
        .expect("start airlock");
    // A fresh data directory compiles every connector first (the image's --start-period).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let healthy = loop {
        if health(port) {
            break true;
        }
        if std::time::Instant::now() > deadline || daemon.try_wait().ok().flatten().is_some() {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        healthy,
        "the image's health check never passed: {}",
        std::fs::read_to_string(tmp.path().join("daemon.log")).unwrap_or_default()
    );
    // The state went where the image's volume is.
    assert!(
        std::fs::read_dir(&data).expect("data").next().is_some(),
        "nothing written under AIRLOCK_DATA_DIR"
    );
}
