//! `airlock record`: the plan of a recording (which streams to sync, which operations to run)
//! and the run that writes a connector's upstream exchanges to a cassette for offline tests.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::app::{Airlock, StartOptions};
use crate::cassette::{CassetteMode, Recorder};
use crate::config::Config;
use crate::runtime::connector::{LoadedConnector, Op};
use crate::scrub::Scrubber;
use crate::store::vault::Vault;

/// What `airlock record` runs.
pub struct RecordPlan {
    /// The connector to record.
    pub connector: String,
    /// The cassette file to write.
    pub out: PathBuf,
    /// The streams to sync (empty: every stream).
    pub streams: Vec<String>,
    /// Record no sync.
    pub no_sync: bool,
    /// Actions to run, for real.
    pub invokes: Vec<String>,
    /// The JSON input of the invoke at the same position (default `{}`).
    pub inputs: Vec<String>,
    /// Live search queries.
    pub searches: Vec<String>,
    /// Record ids to fetch with `get`.
    pub gets: Vec<String>,
    /// Pages per stream before the sync gives up.
    pub max_pages: usize,
}

/// How a recording ended.
pub struct Recorded {
    /// Exchanges written to the cassette.
    pub exchanges: usize,
    /// Streams whose sync did not finish (the cassette covers only what ran).
    pub sync_failures: usize,
}

impl RecordPlan {
    /// The explicit operations, labelled, in the order they run: every search, every get, then
    /// every invoke with its input. Refuses the whole plan on the first bad one.
    pub fn operations(&self) -> anyhow::Result<Vec<(String, Op)>> {
        if self.inputs.len() > self.invokes.len() {
            bail!(
                "--input given {} times but --invoke only {}: each --input belongs to the --invoke at its position",
                self.inputs.len(),
                self.invokes.len()
            );
        }
        let mut ops: Vec<(String, Op)> = Vec::new();
        for q in &self.searches {
            ops.push((
                format!("search {q:?}"),
                Op::parse("search", serde_json::json!({ "query": q }))?,
            ));
        }
        for g in &self.gets {
            ops.push((
                format!("get {g}"),
                Op::parse("get", serde_json::json!({ "id": g }))?,
            ));
        }
        for (i, action) in self.invokes.iter().enumerate() {
            let input: serde_json::Value = match self.inputs.get(i) {
                Some(s) => serde_json::from_str(s)
                    .with_context(|| format!("--input of --invoke {action} is not valid JSON"))?,
                None => serde_json::json!({}),
            };
            ops.push((format!("invoke {action}"), Op::parse(action, input)?));
        }
        Ok(ops)
    }
}

/// Records `plan.connector`: health, a full sync of the chosen streams (from no cursor; nothing
/// is committed to the store), then the plan's operations; writes the cassette to `plan.out`.
/// Every progress and error line goes to `say`, in order. Runs in the caller's call context.
pub async fn run(
    config: Config,
    plan: &RecordPlan,
    scrubber: Scrubber,
    say: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<Recorded> {
    let id = plan.connector.clone();
    if config.connector(&id).is_none() {
        bail!(
            "{}: no connector `{id}` is configured",
            config.path.display()
        );
    }
    // Parse every operation first: a typo should not cost a recording.
    let ops = plan.operations()?;
    learn_all_secrets(&config, &scrubber)?;
    let rec = Arc::new(Recorder::new(scrubber.clone()));
    let only = [id.clone()];
    let cassettes = crate::cassette::for_each(&only, &CassetteMode::Record(rec.clone()));
    let a = Airlock::start(
        config,
        scrubber.clone(),
        StartOptions {
            only: Some(&only),
            max_instances: 4,
            cassettes,
        },
    )
    .await?;
    let c = a
        .connector(&id)
        .map_err(|e| anyhow::anyhow!(scrubber.scrub(&e.to_string())))?
        .clone();
    say(&format!("recording {id}: health"));
    if let Err(e) = c.health().await {
        say(&format!("  health: {}", scrubber.scrub(&e.to_string())));
    }
    let sync_failures = if plan.no_sync {
        0
    } else {
        record_streams(&c, plan, &scrubber, say).await?
    };
    // Explicit operations may fail on purpose (recording an error path): reported, not fatal.
    for (label, op) in ops {
        say(&format!("recording {id}: {label}"));
        if let Err(e) = c.invoke(op).await {
            say(&format!("  {label}: {}", scrubber.scrub(&e.to_string())));
        }
    }
    a.flush();
    let exchanges = rec.save(&plan.out, &id).map_err(anyhow::Error::msg)?;
    Ok(Recorded {
        exchanges,
        sync_failures,
    })
}

/// Syncs the plan's streams (every stream when it names none); returns how many did not finish.
async fn record_streams(
    c: &LoadedConnector,
    plan: &RecordPlan,
    scrubber: &Scrubber,
    say: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<usize> {
    let id = &plan.connector;
    let all: Vec<String> = c.info.streams.iter().map(|s| s.name.clone()).collect();
    for s in &plan.streams {
        if !all.contains(s) {
            bail!(
                "connector `{id}` has no stream `{s}` (it has: {})",
                all.join(", ")
            );
        }
    }
    let streams = if plan.streams.is_empty() {
        all
    } else {
        plan.streams.clone()
    };
    let mut failures = 0;
    for s in &streams {
        if !record_stream(c, id, s, plan.max_pages, scrubber, say).await {
            failures += 1;
        }
    }
    Ok(failures)
}

/// Syncs one stream page by page from no cursor, committing nothing: `sync --replay` into an
/// empty store then asks exactly these requests. False when it did not finish.
async fn record_stream(
    c: &LoadedConnector,
    id: &str,
    s: &str,
    max_pages: usize,
    scrubber: &Scrubber,
    say: &mut (dyn FnMut(&str) + Send),
) -> bool {
    let (mut cursor, mut pages, mut records) = (None::<String>, 0usize, 0usize);
    loop {
        match c.sync_page(s, cursor.clone()).await {
            Ok(p) => {
                pages += 1;
                records += p.upserts.len() + p.deletes.len();
                say(&format!(
                    "recording {id}/{s}: page {pages}, {records} records"
                ));
                if p.done {
                    return true;
                }
                if p.stall(|c| cursor.as_deref() == Some(c)).is_some() {
                    say(&format!(
                        "error: {id}/{s}: page is not done but has no new cursor; stopped"
                    ));
                    return false;
                }
                if pages >= max_pages {
                    say(&format!(
                        "error: {id}/{s}: not done after {pages} pages; stopped"
                    ));
                    return false;
                }
                cursor = p.next_cursor;
            }
            Err(e) => {
                say(&format!(
                    "error: {id}/{s}: {}",
                    scrubber.scrub(&e.to_string())
                ));
                return false;
            }
        }
    }
}

/// Teaches the scrubber every secret the config references and every vault secret, so a
/// cassette holds none of them, whichever connector used it.
pub fn learn_all_secrets(config: &Config, scrubber: &Scrubber) -> anyhow::Result<()> {
    let dir = &config.server.data_dir;
    let conn = crate::store::open(dir)?;
    let vault = Vault::open(dir)?;
    let refs = config.grants.iter().flat_map(|g| g.auth.secret_refs());
    // Unresolvable references fail the connector's own load later, with the reason.
    let _ = crate::capabilities::secrets::resolve_all(
        refs,
        &crate::capabilities::secrets::sqlite_vault(&vault, &conn),
        scrubber,
    );
    for (name, _) in Vault::list(&conn)? {
        if let Ok(Some(v)) = vault.get(&conn, &name) {
            scrubber.add(&v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RecordPlan {
        RecordPlan {
            connector: "wiki".into(),
            out: PathBuf::from("wiki.cassette.json"),
            streams: vec![],
            no_sync: true,
            invokes: vec![],
            inputs: vec![],
            searches: vec![],
            gets: vec![],
            max_pages: 1000,
        }
    }

    #[test]
    fn operations_run_searches_then_gets_then_invokes_with_their_inputs() {
        let p = RecordPlan {
            searches: vec!["vpn".into()],
            gets: vec!["42".into()],
            invokes: vec!["create".into(), "close".into()],
            inputs: vec![r#"{"title": "t"}"#.into()],
            ..plan()
        };
        let ops = p.operations().expect("a valid plan");
        let labels: Vec<&str> = ops.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            ["search \"vpn\"", "get 42", "invoke create", "invoke close"]
        );
        match &ops[2].1 {
            Op::Action { name, input } => {
                assert_eq!(name, "create");
                assert_eq!(input, &serde_json::json!({ "title": "t" }));
            }
            _ => panic!("--invoke create is not an action"),
        }
        match &ops[3].1 {
            Op::Action { input, .. } => assert_eq!(input, &serde_json::json!({})),
            _ => panic!("--invoke close is not an action"),
        }
    }

    #[test]
    fn an_input_without_its_invoke_is_refused() {
        let p = RecordPlan {
            inputs: vec!["{}".into()],
            ..plan()
        };
        let e = p.operations().expect_err("refused").to_string();
        assert!(
            e.contains("--input given 1 times but --invoke only 0"),
            "{e}"
        );
    }

    #[test]
    fn an_input_that_is_not_json_is_refused_naming_its_invoke() {
        let p = RecordPlan {
            invokes: vec!["create".into()],
            inputs: vec!["{title".into()],
            ..plan()
        };
        let e = format!("{:#}", p.operations().expect_err("refused"));
        assert!(
            e.starts_with("--input of --invoke create is not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn an_operation_the_connector_contract_rejects_is_refused() {
        // `sync` is an operation, not an action: without a `stream` it cannot run.
        let p = RecordPlan {
            invokes: vec!["sync".into()],
            ..plan()
        };
        let e = p.operations().expect_err("refused").to_string();
        assert!(e.contains("`sync` needs a string field `stream`"), "{e}");
        let p = RecordPlan {
            invokes: vec![String::new()],
            ..plan()
        };
        let e = p.operations().expect_err("refused").to_string();
        assert!(e.contains("empty action name"), "{e}");
    }
}
