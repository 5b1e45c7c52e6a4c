//! Where the things these tests run were built: the `airlock` binary beside the test binary
//! (same target directory, same profile), the wasm components under the target directory.
//!
//! `make test` builds everything first, and so does `cargo test --workspace` for the binary
//! (cargo builds a package's binaries for its integration tests, and `airlock` has some);
//! `cargo test -p airlock-tests` alone does not, so the binary is built here when it is missing
//! or stale, with the profile of the tests. The components need the wasm target and `make`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The target directory this test binary was built into (`target/` or `CARGO_TARGET_DIR`): the
/// nearest ancestor of `target/<profile>/deps/<test>` that cargo marked with its CACHEDIR.TAG.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::root().join("target"))
}

/// The directory of this test binary's profile (`target/release` under `make test`): its
/// `deps/` holds the test binary, and cargo puts the profile's binaries beside `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("test binary in <target>/<profile>/deps")
}

/// The `airlock` binary of the tests' own profile, built (once per test run) when it is missing
/// or older than this test binary: then the host may have changed since it was linked.
pub fn airlock_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = profile_dir().join("airlock");
        if older_than_tests(&bin) {
            build_airlock(&bin);
        }
        bin
    })
    .clone()
}

/// True when `bin` is missing or was written before the running test binary.
fn older_than_tests(bin: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let tests = std::env::current_exe().ok().and_then(|exe| modified(&exe));
    match (modified(bin), tests) {
        (Some(bin), Some(tests)) => bin < tests,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// `cargo build -p airlock` with the profile of the running tests, into the same target
/// directory: every package set gives `airlock` the same features (`make one-build`), so this
/// reuses what the tests' own build compiled and at most links the binary. (Cargo releases its
/// lock on the target directory while the tests run.)
fn build_airlock(bin: &Path) {
    let profile = profile_dir();
    let profile = profile
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name");
    // target/debug is cargo's `dev` profile; every other directory is named after its profile.
    let profile = if profile == "debug" { "dev" } else { profile };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "{} missing or older than the tests: `cargo build --profile {profile} -p airlock`",
        bin.display()
    );
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--profile",
            profile,
            "-p",
            "airlock",
            "--bin",
            "airlock",
        ])
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(crate::root());
    // Cargo gives the running tests their package's variables (CARGO_PKG_NAME, OUT_DIR, ...).
    // Build scripts (ring's, through cc) ask to rerun when one of these changes, so passed on
    // they would rebuild ring and everything above it here, and again in the next `make`.
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| CARGO_TEST_VARS.iter().any(|v| n.starts_with(v)))
        {
            build.env_remove(name);
        }
    }
    let status = build.status().expect("run cargo");
    assert!(
        status.success() && bin.exists(),
        "{}: `cargo build --profile {profile} -p airlock` failed (above); `make test` builds \
         the binary, the components and the test tools first",
        bin.display()
    );
}

/// What cargo sets for a test binary of this package (prefixes): none of it belongs to a build.
const CARGO_TEST_VARS: &[&str] = &[
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_CRATE_",
    "CARGO_BIN_",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "OUT_DIR",
];

/// A component built for wasm32-wasip2 (by `make test`, or `make connectors test-components`).
pub fn component(name: &str) -> PathBuf {
    let p = target_dir().join(format!("wasm32-wasip2/release/{name}.wasm"));
    assert!(
        p.exists(),
        "{} missing: the wasm components are built by `make test` \
         (or `make connectors test-components`), not by `cargo test`",
        p.display()
    );
    p
}
