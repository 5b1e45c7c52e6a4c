//! The line budget of the Rust connectors (issue 12): each at most 300 code lines, msgraph at
//! most 525 (450 for its seven record kinds, 75 more for `resolve-identity` and group grants,
//! issue 15), zendesk at most 330 (issue 17: its tickets are read into a typed record), counted
//! exactly as `make connector-lines` counts them (`sdk/count-lines.sh`: no blanks, comments or
//! unit-test module). Plumbing a connector would grow past its budget for belongs in the SDK,
//! where every connector shares it.

use std::path::Path;
use std::process::Command;

/// The budget of connector `name`, in code lines.
fn budget(name: &str) -> usize {
    match name {
        // Seven record kinds (450), then a user's transitive groups and drive items' group
        // grants (issue 15).
        "msgraph" => 525,
        // The 16 fields of a ticket a sync reads, declared as a typed record (a `Value` of all
        // 35 an export sends was most of an unchanged re-sync's time): issue 17.
        "zendesk" => 330,
        _ => 300,
    }
}

/// `(connector, code lines)` of every Rust connector, from `sdk/count-lines.sh`.
fn counts() -> Vec<(String, usize)> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(sdk.join("count-lines.sh"))
        .output()
        .expect("run sdk/count-lines.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "count-lines.sh failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 counts");
    let rows = stdout.lines().filter_map(|line| {
        let (name, n) = line.split_once(char::is_whitespace)?;
        Some((name.to_owned(), n.trim().parse().ok()?))
    });
    rows.filter(|(name, _)| name != "total").collect()
}

#[test]
fn every_rust_connector_stays_within_its_line_budget() {
    let counts = counts();
    let connectors = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors"))
        .expect("connectors/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .count();
    assert_eq!(
        counts.len(),
        connectors,
        "every Rust connector is counted: {counts:?}"
    );
    assert!(
        counts.len() >= 7,
        "the count found the connectors: {counts:?}"
    );
    let over: Vec<String> = counts
        .iter()
        .filter(|(name, n)| *n > budget(name))
        .map(|(name, n)| format!("{name}: {n} code lines (budget {})", budget(name)))
        .collect();
    assert!(
        over.is_empty(),
        "over budget (move shared plumbing into the SDK): {over:?}"
    );
}
