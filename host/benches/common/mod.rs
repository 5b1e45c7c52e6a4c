//! Shared by the benchmarks: built artifacts, the fake upstream as its own process, and a
//! deterministic text corpus.
// Each bench uses only some of these.
#![allow(dead_code)]

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

impl Fake {
    /// CPU seconds the fake's process has used so far (user + system; Linux, from
    /// `/proc/PID/stat` in its 100 Hz ticks), so a bench can tell the upstream's own work from
    /// Airlock's on a machine both share. None elsewhere.
    pub fn cpu_secs(&self) -> Option<f64> {
        proc_cpu_secs(&self.child.id().to_string())
    }
}

/// CPU seconds a process has used so far (user + system, all its threads), read from
/// `/proc/PID/stat` (`self` for this process) in its 100 Hz ticks. None off Linux.
pub fn proc_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses: utime and stime are
    // the 12th and 13th of them.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds this process has used so far (user + system, all its threads, ended ones too),
/// to the microsecond: `getrusage`, finer than `/proc`'s 100 Hz ticks for runs of a second.
pub fn self_cpu_secs() -> Option<f64> {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
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

/// Starts `airlock serve` with `config` and waits for its "on http://ADDR" line; returns the
/// child (kill it when done) and the address.
pub fn serve(
    bin: &std::path::Path,
    config: &std::path::Path,
) -> anyhow::Result<(std::process::Child, String)> {
    serve_within(bin, config, std::time::Duration::from_secs(60), &[])
}

/// [`serve`] with a start-up deadline and extra environment variables.
pub fn serve_within(
    bin: &std::path::Path,
    config: &std::path::Path,
    deadline: std::time::Duration,
    env: &[(String, String)],
) -> anyhow::Result<(std::process::Child, String)> {
    let (mut child, listening) = spawn_serve(bin, config, env)?;
    match wait_listening(&listening, deadline) {
        Ok(addr) => Ok((child, addr)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Starts `airlock serve` without waiting: the receiver gets the address from its "on
/// http://ADDR" line (see [`wait_listening`]), so several daemons can start together.
pub fn spawn_serve(
    bin: &std::path::Path,
    config: &std::path::Path,
    env: &[(String, String)],
) -> anyhow::Result<(std::process::Child, std::sync::mpsc::Receiver<String>)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin)
        .args(["serve"])
        .env("AIRLOCK_CONFIG", config)
        .env_remove("RUST_LOG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("stderr"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(pos) = line.find("on http://")
                && let Some(t) = tx.take()
            {
                let _ = t.send(line[pos + 10..].trim().to_string());
            }
        }
    });
    Ok((child, rx))
}

/// Waits for a daemon started by [`spawn_serve`] to listen; its address.
pub fn wait_listening(
    listening: &std::sync::mpsc::Receiver<String>,
    deadline: std::time::Duration,
) -> anyhow::Result<String> {
    listening
        .recv_timeout(deadline)
        .map_err(|_| anyhow::anyhow!("the daemon did not start"))
}

// ---- A deterministic corpus of pronounceable words with a text-like (Zipf) frequency, so
// queries are as selective as people's.

/// Distinct words in the corpus.
pub const VOCAB: usize = 30_000;

/// A small deterministic PRNG (splitmix64): the same corpus every run.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Roughly Zipf-distributed word rank: common words are much more frequent, like text.
    pub fn word(&mut self) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((VOCAB as f64).powf(u) as usize)
            .saturating_sub(1)
            .min(VOCAB - 1)
    }
}

pub fn word(i: usize) -> String {
    // Pronounceable, distinct words: base-20 syllables.
    const SYL: [&str; 20] = [
        "ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "be", "da", "fu", "ge", "ho", "ji", "pa",
        "qu", "se", "ti", "wa", "zo",
    ];
    let mut n = i + 20;
    let mut s = String::new();
    while n > 0 {
        s.push_str(SYL[n % 20]);
        n /= 20;
    }
    s
}
