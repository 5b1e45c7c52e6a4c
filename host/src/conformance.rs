//! The conformance kit (`airlock conformance FILE.wasm --config FILE`): runs a connector
//! component in the real host against the upstream its config points at (in tests, a fake) and
//! checks the contract rules the host relies on. Each rule ends as one [`Outcome`] line
//! (`PASS`, `FAIL`, or `SKIP` when a rule it depends on failed first).
//!
//! Rules, in the order they run:
//!
//! - `load`: the file is a component of a supported contract version and `info()` answers.
//! - `info.well-formed`: name (lowercase letters, digits, `-`, `_`), semver version, description;
//!   stream and action names non-empty and unique; descriptions non-empty.
//! - `info.action-schemas`: each action's `input-schema` is JSON, an object with
//!   `"type": "object"`, valid against its JSON Schema metaschema, and compiles.
//! - `health`: `health()` answers `ok = true`. The SDK's default answer (`ok`, no request) passes,
//!   and the rule's message says that reachability and credentials were not checked.
//! - `sync.terminates[S]`: from no cursor, stream S reaches `done` within the page cap; a page
//!   that is not done carries a next cursor that was not handed to any earlier page of the run.
//! - `sync.documents[S]`: every upsert has a non-empty id, kind and title, an RFC 3339
//!   `updated-at` and a JSON-object `metadata`; every delete has an id and kind.
//! - `sync.resume[S]`: resuming from a saved cursor returns nothing already committed and loses
//!   nothing. Precisely, with `c_k` the cursor committed after page k and `V_k` the record
//!   versions (kind, id, updated-at) upserted by pages 1..=k: (a) the page fetched with `c_k`
//!   upserts no version in `V_k`, for every k; (b) a fresh run started from the middle cursor
//!   `c_m` (m = n/2) reaches `done`, upserts no version in `V_m`, and upserts every version the
//!   full run upserted after page m. The kit never changes the upstream, so every repeat is a
//!   duplicate. (A call with the final cursor after `done` starts the *next* incremental run;
//!   full-refresh streams legitimately return everything again there, so it is not checked.)
//! - `search.well-formed`: `search(q, limit 5)` answers at most 5 well-formed documents, or
//!   the SDK's `invalid-input` "does not support `search`" of a connector without search (then
//!   the rule says it checked nothing); any other `invalid-input` fails. `q` is the longest word of
//!   the first synced document's title (so there is something to find), or `test`.
//! - `errors.unknown-stream`, `errors.unknown-action`, `errors.get-unknown-id`: the connector
//!   answers with the contract's `invalid-input` or `not-found`, not a trap, `internal` or
//!   `upstream`.
//! - `errors.invalid-input[A]`: action A called with an input its own schema rejects answers
//!   `invalid-input`.
//! - `grants.no-denied-requests`: the gate denied none of the connector's outbound requests
//!   during the run (read back from the audit log).
//!
//! The kit calls `sync` page by page itself and commits nothing: the documents and sync cursors
//! of the config's data directory are left untouched. It does make real upstream requests, which
//! are audited like any others.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::{Airlock, StartOptions};
use crate::config::Config;
use crate::model::{self, Stall, SyncPage};
use crate::runtime::connector::{CONTRACT_PACKAGE, InvokeError, LoadedConnector};
use crate::scrub::Scrubber;
use crate::store::audit;

/// Tuning of a conformance run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pages per stream before `sync.terminates` gives up.
    pub max_pages: usize,
    /// A `rate-limited` answer asking to wait at most this long is waited out and retried;
    /// a longer one fails the rule.
    pub max_rate_limit_wait: Duration,
    /// Connectors that record to, or replay from, a cassette during the run.
    pub cassettes: crate::cassette::Cassettes,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_pages: 1000,
            max_rate_limit_wait: Duration::from_secs(60),
            cassettes: Default::default(),
        }
    }
}

/// How a rule ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Fail,
    /// Not checked because a rule it depends on failed.
    Skip,
}

/// One rule's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub rule: String,
    pub status: Status,
    pub reason: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        write!(f, "{s} {}: {}", self.rule, self.reason)
    }
}

/// Every rule's result for one connector.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub connector: String,
    pub file: String,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// True when no rule failed.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.status != Status::Fail)
    }

    /// The failed rules.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.status == Status::Fail)
    }

    fn push(&mut self, rule: impl Into<String>, status: Status, reason: impl Into<String>) {
        self.outcomes.push(Outcome {
            rule: rule.into(),
            status,
            reason: reason.into(),
        });
    }

    fn pass(&mut self, rule: impl Into<String>, reason: impl Into<String>) {
        self.push(rule, Status::Pass, reason);
    }

    fn fail(&mut self, rule: impl Into<String>, reason: impl Into<String>) {
        self.push(rule, Status::Fail, reason);
    }

    fn check(&mut self, rule: impl Into<String>, result: Result<String, String>) {
        match result {
            Ok(r) => self.pass(rule, r),
            Err(r) => self.fail(rule, r),
        }
    }
}

/// The connector of `config` to test: `wanted`, or the only one configured.
pub fn select_connector(config: &Config, wanted: Option<&str>) -> anyhow::Result<String> {
    let ids: Vec<&str> = config.connectors.iter().map(|c| c.id.as_str()).collect();
    match wanted {
        Some(w) if ids.contains(&w) => Ok(w.to_string()),
        Some(w) => bail!(
            "{}: no connector `{w}` is configured (have: {})",
            config.path.display(),
            ids.join(", ")
        ),
        None if ids.len() == 1 => Ok(ids[0].to_string()),
        None if ids.is_empty() => bail!(
            "{}: configures no connector; add a [[connector]] with the settings and [[grant]]s to test with",
            config.path.display()
        ),
        None => bail!(
            "{}: configures several connectors ({}); choose one with --connector",
            config.path.display(),
            ids.join(", ")
        ),
    }
}

/// Runs every rule against `file`, loaded as connector `connector` of `config` (its settings,
/// grants, limits and data directory; its `component` is replaced by `file`).
pub async fn run(
    mut config: Config,
    file: &Path,
    connector: Option<&str>,
    scrubber: Scrubber,
    opts: &Options,
) -> anyhow::Result<Report> {
    let id = select_connector(&config, connector)?;
    if !file.is_file() {
        bail!("{}: no such file", file.display());
    }
    let file = std::fs::canonicalize(file)?;
    for c in config.connectors.iter_mut().filter(|c| c.id == id) {
        c.component = file.clone();
    }
    let data_dir = config.server.data_dir.clone();
    let first_seq = audit::last_seq(&crate::store::open(&data_dir)?)?;
    let only = [id.clone()];
    let a = Airlock::start(
        config,
        scrubber,
        StartOptions {
            only: Some(&only),
            max_instances: 8,
            cassettes: opts.cassettes.clone(),
        },
    )
    .await?;
    let mut report = Report {
        connector: id.clone(),
        file: file.display().to_string(),
        outcomes: Vec::new(),
    };
    let c = match a.connector(&id) {
        Ok(c) => c.clone(),
        Err(e) => {
            report.fail("load", e.to_string());
            a.flush();
            return Ok(report);
        }
    };
    report.pass(
        "load",
        format!(
            "{} {}, contract {CONTRACT_PACKAGE}@{}",
            c.info.name, c.info.version, c.contract
        ),
    );
    report.check("info.well-formed", info_well_formed(&c.info));
    report.check("info.action-schemas", action_schemas(&c.info));
    report.check("health", health(&c).await);
    let mut title = None;
    for s in &c.info.streams {
        let t = check_stream(&c, &s.name, opts, &mut report).await;
        title = title.or(t);
    }
    report.check("search.well-formed", search(&c, &query_from(title)).await);
    check_errors(&c, &mut report).await;
    a.flush();
    report.check(
        "grants.no-denied-requests",
        denied(&data_dir, first_seq, &id),
    );
    Ok(report)
}

fn is_machine_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_semver(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn info_well_formed(i: &model::ConnectorInfo) -> Result<String, String> {
    let mut problems = Vec::new();
    if !is_machine_name(&i.name) {
        problems.push(format!(
            "name {:?} is not a machine name (lowercase letter first, then a-z 0-9 - _)",
            i.name
        ));
    }
    if !is_semver(&i.version) {
        problems.push(format!(
            "version {:?} is not semver (MAJOR.MINOR.PATCH)",
            i.version
        ));
    }
    if i.description.trim().is_empty() {
        problems.push("description is empty".into());
    }
    let mut seen = HashSet::new();
    for s in &i.streams {
        if s.name.trim().is_empty() {
            problems.push("a stream has an empty name".into());
        } else if !seen.insert(s.name.as_str()) {
            problems.push(format!("stream `{}` is declared twice", s.name));
        }
        if s.description.trim().is_empty() {
            problems.push(format!("stream `{}` has no description", s.name));
        }
    }
    let mut seen = HashSet::new();
    for a in &i.actions {
        if a.name.trim().is_empty() {
            problems.push("an action has an empty name".into());
        } else if !seen.insert(a.name.as_str()) {
            problems.push(format!("action `{}` is declared twice", a.name));
        }
        if a.description.trim().is_empty() {
            problems.push(format!("action `{}` has no description", a.name));
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{} {}: {} stream(s), {} action(s)",
            i.name,
            i.version,
            i.streams.len(),
            i.actions.len()
        ))
    } else {
        Err(problems.join("; "))
    }
}

/// The schema as JSON: the host keeps an unparseable schema as the original string.
fn schema_json(raw: &Value) -> Result<Value, String> {
    match raw {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => Ok(v),
            Err(e) => Err(format!("is not valid JSON ({e})")),
        },
        v => Ok(v.clone()),
    }
}

/// Checks one action's input schema.
pub fn check_schema(raw: &Value) -> Result<(), String> {
    let schema = schema_json(raw)?;
    if !schema.is_object() {
        return Err(format!("is not a JSON Schema object: {schema}"));
    }
    if let Err(e) = jsonschema::meta::validate(&schema) {
        let at = e.instance_path().to_string();
        let at = if at.is_empty() { "/".into() } else { at };
        return Err(format!("is not a valid JSON Schema: at {at}: {e}"));
    }
    if let Err(e) = jsonschema::validator_for(&schema) {
        return Err(format!("cannot be compiled: {e}"));
    }
    if schema.get("type") != Some(&json!("object")) {
        return Err(format!(
            "must describe a JSON object (\"type\": \"object\"), has \"type\": {}",
            schema.get("type").unwrap_or(&Value::Null)
        ));
    }
    Ok(())
}

fn action_schemas(i: &model::ConnectorInfo) -> Result<String, String> {
    let problems: Vec<String> = i
        .actions
        .iter()
        .filter_map(|a| {
            check_schema(&a.input_schema)
                .err()
                .map(|e| format!("action `{}`: input-schema {e}", a.name))
        })
        .collect();
    if problems.is_empty() {
        Ok(match i.actions.len() {
            0 => "no actions".into(),
            n => format!("{n} schema(s) valid"),
        })
    } else {
        Err(problems.join("; "))
    }
}

/// What the SDK's default `health()` answers: `ok` without asking the upstream anything.
const SDK_DEFAULT_HEALTH: &str = "ok";

async fn health(c: &LoadedConnector) -> Result<String, String> {
    match c.health().await {
        Ok(h) if h.ok => {
            let message = h.message;
            if message == SDK_DEFAULT_HEALTH {
                // The rule can only check the answer; say what it did not check.
                Ok(format!(
                    "ok: `{message}`, the SDK's default answer, which asks the upstream nothing \
                     (not checked: reachability and credentials; implement health() with a cheap \
                     authenticated request)"
                ))
            } else {
                Ok(format!("ok: {message}"))
            }
        }
        Ok(h) => Err(format!("health answered not ok: {}", h.message)),
        Err(e) => Err(format!("health failed: {e}")),
    }
}

/// The longest alphanumeric word of `title`, or `test`.
fn query_from(title: Option<String>) -> String {
    title
        .as_deref()
        .unwrap_or("")
        .split(|c: char| !c.is_alphanumeric())
        .max_by_key(|w| w.chars().count())
        .filter(|w| w.chars().count() >= 3)
        .unwrap_or("test")
        .to_string()
}

async fn search(c: &LoadedConnector, query: &str) -> Result<String, String> {
    const LIMIT: u32 = 5;
    let r = match c.search(query.into(), LIMIT, None).await {
        // Only the SDK's "does not support" answer means the connector has no search; any
        // other invalid-input to a plain word is a search that does not work.
        Err(InvokeError::Connector(e))
            if e.code == "invalid-input" && e.message.contains("does not support") =>
        {
            return Ok(format!(
                "not checked: the connector has no live search (invalid-input: {})",
                e.message
            ));
        }
        Err(InvokeError::Connector(e)) if e.code == "invalid-input" => {
            return Err(format!(
                "search for the plain word {query:?} answered invalid-input: {}",
                e.message
            ));
        }
        Err(e) => return Err(format!("search for {query:?} failed: {e}")),
        Ok(r) => r,
    };
    let mut problems = Vec::new();
    if r.hits.len() > LIMIT as usize {
        problems.push(format!(
            "{} hits for limit {LIMIT} (the limit is a maximum)",
            r.hits.len()
        ));
    }
    let page = SyncPage {
        upserts: r.hits,
        deletes: vec![],
        next_cursor: None,
        done: true,
    };
    document_problems(1, &page, &mut problems);
    if problems.is_empty() {
        Ok(format!(
            "{} hit(s) for {query:?} (limit {LIMIT}), well-formed",
            page.upserts.len()
        ))
    } else {
        Err(summarize(&problems).replace("page 1: upsert", "hit"))
    }
}

/// One sync page; a short `rate-limited` is waited out and the page retried, like the host's
/// scheduler would.
async fn page(
    c: &LoadedConnector,
    stream: &str,
    cursor: Option<String>,
    opts: &Options,
) -> Result<SyncPage, InvokeError> {
    let mut attempts = 0;
    loop {
        match c.sync_page(stream, cursor.clone()).await {
            Err(InvokeError::Connector(e))
                if e.code == "rate-limited"
                    && attempts < 5
                    && u64::from(e.retry_after.unwrap_or(u32::MAX))
                        <= opts.max_rate_limit_wait.as_secs() =>
            {
                attempts += 1;
                let secs = e.retry_after.unwrap_or(1).max(1);
                tokio::time::sleep(Duration::from_secs(secs.into())).await;
            }
            other => return other,
        }
    }
}

type Version = (String, String, String);

fn version(d: &model::Document) -> Version {
    (d.kind.clone(), d.id.clone(), d.updated_at.clone())
}

fn show(v: &Version) -> String {
    format!("{}/{} updated {}", v.0, v.1, v.2)
}

fn cursor_text(c: &Option<String>) -> String {
    match c {
        None => "none".into(),
        Some(c) if c.chars().count() > 60 => {
            format!("{:?}…", c.chars().take(60).collect::<String>())
        }
        Some(c) => format!("{c:?}"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with plausible field ranges.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|x| x.iter().all(u8::is_ascii_digit))
    };
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let ranges_ok = matches!(num(5..7), Some(1..=12))
        && matches!(num(8..10), Some(1..=31))
        && matches!(num(11..13), Some(0..=23))
        && matches!(num(14..16), Some(0..=59))
        && matches!(num(17..19), Some(0..=60));
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    let zone_ok = match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    };
    ranges_ok && zone_ok
}

fn document_problems(page_no: usize, p: &SyncPage, out: &mut Vec<String>) {
    for d in &p.upserts {
        let mut bad = Vec::new();
        if d.id.trim().is_empty() {
            bad.push("empty id".to_string());
        }
        if d.kind.trim().is_empty() {
            bad.push("empty kind".to_string());
        }
        if d.title.trim().is_empty() {
            bad.push("empty title".to_string());
        }
        if !is_rfc3339(&d.updated_at) {
            bad.push(format!("updated-at {:?} is not RFC 3339", d.updated_at));
        }
        if !d.metadata.is_object() {
            bad.push("metadata is not a JSON object".to_string());
        }
        if !bad.is_empty() {
            out.push(format!(
                "page {page_no}: upsert {}/{}: {}",
                d.kind,
                d.id,
                bad.join(", ")
            ));
        }
    }
    for r in &p.deletes {
        if r.id.trim().is_empty() || r.kind.trim().is_empty() {
            out.push(format!(
                "page {page_no}: delete with an empty id or kind ({:?}/{:?})",
                r.kind, r.id
            ));
        }
    }
}

fn summarize(problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    let more = problems.len().saturating_sub(3);
    if more > 0 {
        format!("{} (and {more} more)", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

/// Runs the sync rules of one stream; returns the title of its first upsert (a search query).
async fn check_stream(
    c: &LoadedConnector,
    stream: &str,
    opts: &Options,
    report: &mut Report,
) -> Option<String> {
    let terminates = format!("sync.terminates[{stream}]");
    let documents = format!("sync.documents[{stream}]");
    let resume = format!("sync.resume[{stream}]");
    // cursors[k] is the cursor committed after page k (cursors[0]: the start, none).
    let mut cursors: Vec<Option<String>> = vec![None];
    let mut given: HashMap<Option<String>, usize> = HashMap::from([(None, 1)]);
    // Version -> the page that first committed it.
    let mut committed: HashMap<Version, usize> = HashMap::new();
    let mut doc_problems = Vec::new();
    let mut duplicates = Vec::new();
    let (mut upserts, mut deletes) = (0usize, 0usize);
    let mut failure = None;
    let mut first_title = None;
    loop {
        let page_no = cursors.len();
        if page_no > opts.max_pages {
            failure = Some(format!(
                "not done after {} pages (the cap; raise it with --max-pages if the data set is that large)",
                opts.max_pages
            ));
            break;
        }
        let cursor = cursors[page_no - 1].clone();
        let p = match page(c, stream, cursor.clone(), opts).await {
            Ok(p) => p,
            Err(e) => {
                failure = Some(format!(
                    "page {page_no} (cursor {}) failed: {e}",
                    cursor_text(&cursor)
                ));
                break;
            }
        };
        document_problems(page_no, &p, &mut doc_problems);
        if first_title.is_none() {
            first_title = p.upserts.first().map(|d| d.title.clone());
        }
        for d in &p.upserts {
            let v = version(d);
            match committed.get(&v) {
                Some(first) => duplicates.push(format!(
                    "page {page_no}, resumed from the cursor committed after page {}, returned {} already committed by page {first}",
                    page_no - 1,
                    show(&v)
                )),
                None => {
                    committed.insert(v, page_no);
                }
            }
        }
        upserts += p.upserts.len();
        deletes += p.deletes.len();
        if p.done {
            cursors.push(p.next_cursor);
            break;
        }
        match p.stall(|c| given.contains_key(&Some(c.to_string()))) {
            None => {}
            Some(Stall::NoCursor) => {
                failure = Some(format!(
                    "page {page_no} is not done but has no next cursor (the host could not continue)"
                ));
                break;
            }
            Some(Stall::RepeatedCursor) => {
                let first = given.get(&p.next_cursor).copied().unwrap_or(0);
                failure = Some(format!(
                    "page {page_no} is not done but returns cursor {} already given to page {first}: the run would never end",
                    cursor_text(&p.next_cursor)
                ));
                break;
            }
        }
        given.insert(p.next_cursor.clone(), page_no + 1);
        cursors.push(p.next_cursor);
    }
    let pages = cursors.len() - 1;
    match failure {
        Some(f) => {
            report.fail(&terminates, f);
            report.check(
                &documents,
                if doc_problems.is_empty() {
                    Ok(format!(
                        "{upserts} upserts in the pages fetched looked right"
                    ))
                } else {
                    Err(summarize(&doc_problems))
                },
            );
            report.push(
                &resume,
                Status::Skip,
                format!("not checked: {terminates} failed"),
            );
            return first_title;
        }
        None => report.pass(
            &terminates,
            format!("done after {pages} page(s): {upserts} upserts, {deletes} deletes"),
        ),
    }
    report.check(
        &documents,
        if doc_problems.is_empty() {
            Ok(format!(
                "{upserts} upserts and {deletes} deletes well-formed"
            ))
        } else {
            Err(summarize(&doc_problems))
        },
    );
    if !duplicates.is_empty() {
        report.fail(&resume, summarize(&duplicates));
        return first_title;
    }
    // (b) a fresh run from the middle cursor.
    let n = pages;
    if n < 2 {
        report.pass(
            &resume,
            "one page: no cursor was committed mid-run, nothing repeated",
        );
        return first_title;
    }
    let m = n / 2;
    let before: BTreeSet<&Version> = committed
        .iter()
        .filter(|(_, p)| **p <= m)
        .map(|(v, _)| v)
        .collect();
    let mut missing: BTreeSet<&Version> = committed
        .iter()
        .filter(|(_, p)| **p > m)
        .map(|(v, _)| v)
        .collect();
    let mut cursor = cursors[m].clone();
    let mut problems = Vec::new();
    let mut resumed_pages = 0;
    let mut seen_cursors: HashSet<Option<String>> = HashSet::from([cursor.clone()]);
    loop {
        resumed_pages += 1;
        if resumed_pages > opts.max_pages {
            problems.push(format!(
                "resuming from the cursor of page {m} was not done after {} pages",
                opts.max_pages
            ));
            break;
        }
        let p = match page(c, stream, cursor.clone(), opts).await {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!(
                    "resuming from the cursor committed after page {m} ({}) failed: {e}",
                    cursor_text(&cursor)
                ));
                break;
            }
        };
        for d in &p.upserts {
            let v = version(d);
            if before.contains(&v) {
                problems.push(format!(
                    "resuming from the cursor committed after page {m} returned {} already committed by page {}",
                    show(&v),
                    committed.get(&v).copied().unwrap_or(0)
                ));
            }
            missing.remove(&v);
        }
        if p.done {
            break;
        }
        if p.stall(|c| seen_cursors.contains(&Some(c.to_string())))
            .is_some()
        {
            problems.push(format!(
                "resuming from the cursor committed after page {m}: page {resumed_pages} is not done but its next cursor is missing or repeated"
            ));
            break;
        }
        seen_cursors.insert(p.next_cursor.clone());
        cursor = p.next_cursor;
    }
    if problems.is_empty() && !missing.is_empty() {
        let first = missing.iter().next().map(|v| show(v)).unwrap_or_default();
        problems.push(format!(
            "resuming from the cursor committed after page {m} lost {} record version(s) the full run returned after it, e.g. {first}",
            missing.len()
        ));
    }
    report.check(
        &resume,
        if problems.is_empty() {
            Ok(format!(
                "no page repeated a committed record; resuming from the cursor after page {m} of {n} took {resumed_pages} page(s), repeated nothing and lost nothing"
            ))
        } else {
            Err(summarize(&problems))
        },
    );
    first_title
}

/// `Ok` when the call failed with one of `codes`.
fn expect_codes(
    what: &str,
    result: Result<impl serde::Serialize, InvokeError>,
    codes: &[&str],
) -> Result<String, String> {
    let wanted = codes.join(" or ");
    match result {
        Ok(v) => {
            let mut text = serde_json::to_string(&v).unwrap_or_default();
            if text.len() > 120 {
                text = format!("{}…", text.chars().take(120).collect::<String>());
            }
            Err(format!("{what} succeeded ({text}); expected {wanted}"))
        }
        Err(InvokeError::Connector(e)) if codes.contains(&e.code.as_str()) => {
            Ok(format!("{what}: {}: {}", e.code, e.message))
        }
        Err(InvokeError::Connector(e)) => Err(format!(
            "{what} answered {}: {}; expected {wanted}",
            e.code, e.message
        )),
        Err(e) => Err(format!(
            "{what} did not answer with a contract error ({e}); expected {wanted}"
        )),
    }
}

const UNKNOWN: &str = "airlock-conformance-unknown";

async fn check_errors(c: &LoadedConnector, report: &mut Report) {
    let r = c.sync_page(UNKNOWN, None).await;
    report.check(
        "errors.unknown-stream",
        expect_codes(
            &format!("sync of undeclared stream `{UNKNOWN}`"),
            r,
            &["invalid-input", "not-found"],
        ),
    );
    let r = c.action(UNKNOWN.into(), json!({})).await;
    report.check(
        "errors.unknown-action",
        expect_codes(
            &format!("invoke of undeclared action `{UNKNOWN}`"),
            r,
            &["not-found", "invalid-input"],
        ),
    );
    let r = c.get(UNKNOWN.into()).await;
    report.check(
        "errors.get-unknown-id",
        expect_codes(
            &format!("get of id `{UNKNOWN}`"),
            r,
            &["not-found", "invalid-input"],
        ),
    );
    for a in c.info.actions.clone() {
        let rule = format!("errors.invalid-input[{}]", a.name);
        let Ok(schema) = schema_json(&a.input_schema) else {
            report.push(
                rule,
                Status::Skip,
                "not checked: the input schema is invalid",
            );
            continue;
        };
        let Ok(validator) = jsonschema::validator_for(&schema) else {
            report.push(
                rule,
                Status::Skip,
                "not checked: the input schema is invalid",
            );
            continue;
        };
        let candidates = [json!([]), json!("not an object"), json!(42), json!({})];
        let Some(bad) = candidates.into_iter().find(|v| !validator.is_valid(v)) else {
            report.pass(rule, "the schema accepts any input: nothing to reject");
            continue;
        };
        let r = c.action(a.name.clone(), bad.clone()).await;
        report.check(
            rule,
            expect_codes(
                &format!("`{}` with input {bad} (rejected by its schema)", a.name),
                r,
                &["invalid-input"],
            ),
        );
    }
}

fn denied(data_dir: &Path, after: i64, id: &str) -> Result<String, String> {
    let rows = crate::store::open(data_dir)
        .and_then(|conn| audit::after(&conn, after, Some(id)))
        .map_err(|e| format!("cannot read the audit log: {e:#}"))?;
    let requests = rows.iter().filter(|r| r.event.event == "http").count();
    let denials: Vec<String> = rows
        .iter()
        .filter(|r| r.event.decision == "deny")
        .map(|r| {
            let e = &r.event;
            let target = match (&e.method, &e.host, &e.path) {
                (Some(m), Some(h), Some(p)) => format!(
                    "{m} {}://{h}{}{p}",
                    e.scheme.as_deref().unwrap_or("?"),
                    e.port.map(|p| format!(":{p}")).unwrap_or_default()
                ),
                _ => e.event.clone(),
            };
            format!("{target} denied: {}", e.reason)
        })
        .collect();
    if denials.is_empty() {
        Ok(format!(
            "{requests} outbound request(s), none outside the grants"
        ))
    } else {
        Err(format!(
            "{} of {requests} outbound request(s) denied by the gate: {}",
            denials.len(),
            summarize(&denials)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_accepts_offsets_and_fractions_and_rejects_other_dates() {
        assert!(is_rfc3339("2024-05-01T10:00:00Z"));
        assert!(is_rfc3339("2024-05-01T10:00:00.123+02:00"));
        assert!(!is_rfc3339("2024-05-01"));
        assert!(!is_rfc3339("2024-13-01T10:00:00Z"));
        assert!(!is_rfc3339("2024-05-01T10:00:00+0000"));
        assert!(!is_rfc3339("1714557600"));
    }

    #[test]
    fn schema_check_names_the_problem() {
        assert!(check_schema(&json!({"type": "object"})).is_ok());
        let e = check_schema(&json!({"type": "objekt"})).unwrap_err();
        assert!(e.contains("not a valid JSON Schema"), "{e}");
        let e = check_schema(&json!("{\"type\": ")).unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = check_schema(&json!({"type": "string"})).unwrap_err();
        assert!(e.contains("JSON object"), "{e}");
        let e = check_schema(&json!({"type": "object", "properties": {"a": {"pattern": "("}}}))
            .unwrap_err();
        assert!(e.contains("JSON Schema") || e.contains("compiled"), "{e}");
    }

    #[test]
    fn names_and_versions() {
        assert!(is_machine_name("jira-servicedesk"));
        assert!(!is_machine_name("Jira"));
        assert!(!is_machine_name(""));
        assert!(is_semver("0.1.0"));
        assert!(is_semver("1.2.3-beta.1"));
        assert!(!is_semver("1.2"));
    }
}
