//! `make dist`'s packing step (dist/build.sh) on what is already built: the archive holds the
//! binary, every connector the Makefile lists, man pages, completions, the systemd unit and an
//! example config that parses; the unit passes `systemd-analyze verify` where that exists.

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
