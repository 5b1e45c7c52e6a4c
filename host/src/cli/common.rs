//! What several commands share: the `--config` argument, who the CLI user is, and pointing
//! connectors at a cassette to replay.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::cassette::{CassetteMode, Cassettes, Replay};
use crate::config::Config;

#[derive(Args, Clone)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(long, short, env = "AIRLOCK_CONFIG", default_value = "airlock.toml")]
    pub config: PathBuf,
}

impl ConfigArg {
    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config)?)
    }
}

/// The connector named on the command line, or every configured one.
pub fn named_or_all(config: &Config, connector: Option<&str>) -> Vec<String> {
    match connector {
        Some(c) => vec![c.to_string()],
        None => config.connectors.iter().map(|c| c.id.clone()).collect(),
    }
}

/// `ids` replaying the cassette `file`, after checking it reads (a CLI path is relative to the
/// working directory).
pub fn replay_from(ids: &[String], file: &Path) -> anyhow::Result<Cassettes> {
    let file =
        std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))?;
    Replay::load(&file).map_err(anyhow::Error::msg)?;
    Ok(crate::cassette::for_each(ids, &CassetteMode::Replay(file)))
}

/// Who asks, when the CLI asks: the OS user running the process (from the user database, not
/// `$USER`, which the caller can set to anything and which is unset under sudo, cron or
/// systemd); `uid:N` when the user database has no name for it.
pub fn cli_user() -> String {
    format!("cli:{}", os_user_name())
}

#[cfg(unix)]
fn os_user_name() -> String {
    let uid = unsafe { libc::getuid() };
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes only into `pwd` and `buf` (whose length it is given) and sets
    // `found` to `&pwd` on success; the name is read before either goes out of scope.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        if let Ok(n) = name.to_str()
            && !n.is_empty()
        {
            return n.to_string();
        }
    }
    format!("uid:{uid}")
}

#[cfg(not(unix))]
fn os_user_name() -> String {
    std::env::var("USERNAME").unwrap_or_else(|_| "unknown".into())
}
