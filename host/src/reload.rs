//! Hot reload for `airlock serve`: SIGHUP, or a change to the config file, a configured
//! component or a `.wasm` in `server.connectors_dir`, re-reads the config and rebuilds only the
//! connectors that changed ([`Airlock::reload`]); the sync scheduler picks up the new ones.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use crate::app::Airlock;
use crate::config::Config;

/// Writers (editors, `cargo build`, `cp`) touch a file several times: wait for the burst to end.
const SETTLE: Duration = Duration::from_millis(400);

/// Starts the SIGHUP listener and the file watcher. A watcher that cannot start is logged and
/// SIGHUP still works.
pub fn spawn(a: Arc<Airlock>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();

    #[cfg(unix)]
    {
        let tx = tx.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        if tx.send("SIGHUP").is_err() {
                            return;
                        }
                    }
                });
            }
            Err(e) => tracing::warn!("hot reload: cannot listen for SIGHUP: {e}"),
        }
    }

    let watched = Arc::new(std::sync::Mutex::new(Watched::default()));
    let watcher = {
        let tx = tx.clone();
        let watched = watched.clone();
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            if !matters(&ev.kind) {
                return;
            }
            let w = watched.lock().unwrap_or_else(|e| e.into_inner());
            if ev.paths.iter().any(|p| w.is_relevant(p)) {
                let _ = tx.send("file change");
            }
        })
    };
    let mut watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("hot reload: no file watch ({e}); SIGHUP still reloads");
            None
        }
    };
    if let Some(w) = watcher.as_mut() {
        rewatch(w, &watched, &a.config());
    }

    tokio::spawn(async move {
        while let Some(why) = rx.recv().await {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            tracing::info!("hot reload ({why})");
            match a.reload().await {
                Ok(report) => {
                    let mut ids = report.added.clone();
                    ids.extend(report.reloaded.iter().cloned());
                    crate::scheduler::spawn_scheduler_for(a.clone(), &ids);
                }
                Err(e) => tracing::error!("hot reload failed: {e:#}"),
            }
            if let Some(w) = watcher.as_mut() {
                rewatch(w, &watched, &a.config());
            }
        }
    });
}

/// Creations, writes, renames and deletions; not reads.
fn matters(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_)
            | EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write
            ))
    )
}

/// The files a reload depends on, and the directories watched for them (a directory, not the
/// file, because editors and build tools replace files by renaming over them).
#[derive(Default)]
struct Watched {
    dirs: BTreeSet<PathBuf>,
    config: PathBuf,
    components: BTreeSet<PathBuf>,
    drop_in: Option<PathBuf>,
}

impl Watched {
    fn is_relevant(&self, p: &Path) -> bool {
        p == self.config
            || self.components.contains(p)
            // A component's signature (`NAME.wasm.minisig`) next to it.
            || p.to_str()
                .and_then(|s| s.strip_suffix(".minisig"))
                .is_some_and(|c| self.components.contains(Path::new(c)))
            || (p.extension().is_some_and(|x| x == "wasm")
                && self
                    .drop_in
                    .as_deref()
                    .is_some_and(|d| p.parent() == Some(d)))
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn rewatch(w: &mut notify::RecommendedWatcher, watched: &std::sync::Mutex<Watched>, c: &Config) {
    let mut want = Watched {
        config: absolute(&c.path),
        components: c
            .connectors
            .iter()
            .map(|c| absolute(&c.component))
            .collect(),
        drop_in: c.server.connectors_dir.as_deref().map(absolute),
        dirs: BTreeSet::new(),
    };
    let mut dirs: BTreeSet<PathBuf> = want
        .components
        .iter()
        .chain([&want.config])
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    dirs.extend(want.drop_in.clone());
    // Never hold the lock across watch()/unwatch(): notify's thread may be waiting for it in
    // the event callback while watch() waits for that thread.
    let had = watched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .dirs
        .clone();
    for d in had.difference(&dirs) {
        let _ = w.unwatch(d);
    }
    for d in &dirs {
        if had.contains(d) {
            want.dirs.insert(d.clone());
            continue;
        }
        match w.watch(d, RecursiveMode::NonRecursive) {
            Ok(()) => {
                want.dirs.insert(d.clone());
            }
            // A directory that does not exist yet is retried after the next reload.
            Err(e) => tracing::warn!("hot reload: cannot watch {}: {e}", d.display()),
        }
    }
    *watched.lock().unwrap_or_else(|e| e.into_inner()) = want;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_config_components_and_drop_in_wasm_files_trigger_a_reload() {
        let w = Watched {
            dirs: BTreeSet::new(),
            config: PathBuf::from("/etc/airlock/airlock.toml"),
            components: [PathBuf::from("/build/zendesk.wasm")].into(),
            drop_in: Some(PathBuf::from("/srv/connectors")),
        };
        assert!(w.is_relevant(Path::new("/etc/airlock/airlock.toml")));
        assert!(w.is_relevant(Path::new("/build/zendesk.wasm")));
        assert!(w.is_relevant(Path::new("/build/zendesk.wasm.minisig")));
        assert!(!w.is_relevant(Path::new("/build/other.wasm.minisig")));
        assert!(w.is_relevant(Path::new("/srv/connectors/new.wasm")));
        assert!(!w.is_relevant(Path::new("/build/zendesk.d")));
        assert!(!w.is_relevant(Path::new("/build/other.wasm")));
        assert!(!w.is_relevant(Path::new("/etc/airlock/.airlock.toml.swp")));
        assert!(!w.is_relevant(Path::new("/srv/connectors/sub/x.wasm")));
    }
}
