//! Shared by the benchmarks: built artifacts and the fake upstream as its own process.

use std::path::PathBuf;

/// A built artifact under the workspace's `target/` (made by `make bench`).
pub fn artifact(rel: &str) -> anyhow::Result<PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(rel);
    anyhow::ensure!(p.exists(), "{} missing: run `make bench`", p.display());
    Ok(p)
}

/// A fake upstream process, killed on drop.
pub struct Fake {
    child: std::process::Child,
    pub base_url: String,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fake-saas ARGS --listen 127.0.0.1:0` as its own process (so it does not share the
/// measured process's async runtime) and waits for its "listening on URL" line.
pub fn spawn_fake(args: &[&str]) -> anyhow::Result<Fake> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(artifact("release/fake-saas")?)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("fake has no stdout"))?;
    std::io::BufReader::new(out).read_line(&mut line)?;
    let base_url = line
        .split_whitespace()
        .last()
        .ok_or_else(|| anyhow::anyhow!("fake did not start: {line}"))?
        .to_string();
    Ok(Fake { child, base_url })
}
