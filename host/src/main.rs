//! The `airlock` command: daemon and CLI.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};

use airlock::app::{Airlock, StartOptions};
use airlock::cassette::{CassetteMode, Recorder, Replay};
use airlock::config::Config;
use airlock::runtime::connector::{self, Op};
use airlock::runtime::context::CallContext;
use airlock::scrub::{MIN_SECRET_LEN, Scrubber};
use airlock::store::{audit, vault::Vault};

/// Airlock runs integration connectors as sandboxed WebAssembly components. Each connector gets
/// exactly the outbound HTTP destinations its grants allow; credentials are injected at the
/// gate, so connector code never holds a secret. Every invocation and outbound decision is
/// audited in a hash-chained log. The daemon's `/v1` API needs a bearer token from
/// `airlock tokens create`.
#[derive(Parser)]
#[command(name = "airlock", version, about, long_about = None)]
struct Cli {
    /// Log filter (e.g. `info`, `debug`, `airlock=debug`); RUST_LOG overrides it. Default:
    /// `info` for `serve`, `warn` for the other commands (they print their own
    /// results), `off` for `check` and `conformance` (their report says it all).
    #[arg(long, global = true, env = "AIRLOCK_LOG")]
    log_level: Option<String>,
    /// Write logs as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// The configuration file.
    #[arg(long, short, env = "AIRLOCK_CONFIG", default_value = "airlock.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: load every connector and serve the HTTP API on loopback.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Listen address (overrides `server.listen`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Serve MCP (Model Context Protocol) on stdin/stdout for one token's principal: tools
    /// `search`, `get_document`, `list_connectors` and one per action of the tenant's connectors
    /// and routes (`CONNECTOR__ACTION`). The daemon serves the same at `/mcp` over HTTP.
    Mcp {
        #[command(flatten)]
        config: ConfigArg,
        /// A file holding the API token (`airlock tokens create`), or give the token in the
        /// AIRLOCK_TOKEN environment variable; the tools see what it sees on REST. Never on the
        /// command line, where every local user can read it in the process list.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Removed: refused with a pointer to AIRLOCK_TOKEN and --token-file.
        #[arg(long, hide = true)]
        token: Option<String>,
    },
    /// Run one operation on a connector and print the JSON result.
    ///
    /// OP is info, health, search, get, check-permission, sync (one page) or an action name.
    /// INPUT is a JSON object: search {"query": "...", "limit": 20}, get {"id": "..."},
    /// check-permission {"principal": "...", "id": "..."}, sync {"stream": "...", "cursor": null},
    /// or the action's input.
    Invoke {
        #[command(flatten)]
        config: ConfigArg,
        connector: String,
        op: String,
        input: Option<String>,
        /// Answer the connector's upstream requests from this cassette (`airlock record`)
        /// instead of the network; grants still apply, no secret is needed.
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
    },
    /// Sync streams into the local store (all connectors and streams unless narrowed), or show
    /// sync status with --status. A run resumes from the last committed page.
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this connector.
        connector: Option<String>,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// Start from the beginning instead of the stored cursor.
        #[arg(long)]
        full: bool,
        /// Show the sync status of every stream instead of syncing.
        #[arg(long)]
        status: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Answer the upstream requests from this cassette instead of the network.
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
    },
    /// Record a connector's upstream exchanges to a cassette, for offline tests (`--replay`).
    ///
    /// Runs the connector against the upstream its config points at: health, a full sync of
    /// every stream (from no cursor; nothing is committed to the store), then each --search,
    /// --get and --invoke in that order. Every exchange the connector saw is written to --out as
    /// JSON with every credential header and every secret value the config or the vault knows
    /// removed; the gate's own OAuth token requests are not recorded at all.
    /// Replay it with `airlock invoke|sync|conformance --replay FILE` or `replay = "FILE"`.
    Record {
        #[command(flatten)]
        config: ConfigArg,
        /// The connector to record.
        #[arg(long)]
        connector: String,
        /// The cassette file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Sync only this stream (repeatable; default: every stream).
        #[arg(long = "stream", value_name = "S")]
        streams: Vec<String>,
        /// Record no sync.
        #[arg(long)]
        no_sync: bool,
        /// Run this action, for real (writes included) (repeatable).
        #[arg(long = "invoke", value_name = "ACTION")]
        invokes: Vec<String>,
        /// JSON input of the --invoke at the same position (default `{}`).
        #[arg(long = "input", value_name = "JSON")]
        inputs: Vec<String>,
        /// Run a live search for this query (repeatable).
        #[arg(long = "search", value_name = "Q")]
        searches: Vec<String>,
        /// Fetch this record with `get` (repeatable).
        #[arg(long = "get", value_name = "ID")]
        gets: Vec<String>,
        /// Pages per stream before the sync gives up.
        #[arg(long, default_value_t = 1000)]
        max_pages: usize,
    },
    /// Search the local store across every connector (bm25-ranked, with snippets).
    Search {
        #[command(flatten)]
        config: ConfigArg,
        query: String,
        /// Only this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Only this kind of document (e.g. page, ticket).
        #[arg(long)]
        kind: Option<String>,
        /// At most this many hits.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Also ask every connector live, in parallel, and merge the results.
        #[arg(long)]
        live: bool,
        /// Per-connector timeout of --live.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        live_timeout: std::time::Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a component with a minisign (Ed25519) secret key: writes FILE.minisig beside it,
    /// which `[trust] keys` / `require_signature` check at load. `--generate-key KEY` makes a key
    /// pair instead (KEY, mode 0600, and KEY.pub; encrypted when AIRLOCK_SIGN_PASSWORD is set).
    /// Keys and signatures are minisign's format: `minisign -S`/`-V` work on them too.
    Sign {
        /// The secret key file (an encrypted one needs its password in AIRLOCK_SIGN_PASSWORD).
        #[arg(long, value_name = "KEY", required_unless_present = "generate_key")]
        key: Option<PathBuf>,
        /// Make a new key pair at KEY and KEY.pub, and print the public key for `[trust] keys`.
        #[arg(long, value_name = "KEY", conflicts_with_all = ["key", "file"])]
        generate_key: Option<PathBuf>,
        /// The component to sign.
        #[arg(required_unless_present = "generate_key")]
        file: Option<PathBuf>,
    },
    /// Verify a component as `airlock serve` will: its FILE.minisig against --key (or the
    /// config's `[trust] keys`), and the `sha256` pin of each configured connector that loads
    /// this file (or --sha256). Exits non-zero when it would be refused.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        file: PathBuf,
        /// A trusted public key: the `RW...` line or a minisign .pub file (repeatable).
        #[arg(long = "key", value_name = "KEY")]
        keys: Vec<String>,
        /// The digest the file must have.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Check that a .wasm file is a loadable connector: contract version, streams, actions.
    Check {
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage the encrypted secret vault (values are read from stdin, never from arguments).
    Secrets {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: SecretsCmd,
    },
    /// Manage API tokens. Every `/v1` route of `airlock serve` needs `Authorization: Bearer
    /// <token>`; a token names a principal, its tenant, its groups (matched against document
    /// ACLs) and whether it is an admin (sync triggers, audit). Only a hash is stored.
    Tokens {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: TokensCmd,
    },
    /// Write approvals: an action marked `writes`, asked for with `airlock invoke` or the API,
    /// waits here until approved (it then runs once) or denied, unless its grant says
    /// `writes_preapproved = true`.
    Approvals {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: ApprovalsCmd,
    },
    /// Read and verify the audit log.
    Audit {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// Generate a new project from a template (`airlock new connector NAME`).
    New {
        #[command(subcommand)]
        what: NewCmd,
    },
    /// Check a connector component against the contract rules the host relies on
    ///
    /// Loads FILE as the connector of --config (its settings, grants, limits and data directory
    /// are used; its `component` is replaced by FILE) and runs it against the upstream that config
    /// points at. Nothing is committed to the store; upstream requests are real and audited.
    ///
    /// Rules (one PASS/FAIL/SKIP line each; exit 1 if any fails):
    ///   load                       a component of a supported contract version; info() answers
    ///   info.well-formed           machine name, semver, descriptions, unique stream/action names
    ///   info.action-schemas        every input-schema is a valid JSON Schema of an object
    ///   health                     health() answers ok
    ///   sync.terminates[S]         stream S pages to `done` within --max-pages, no cursor repeated
    ///   sync.documents[S]          ids, kinds, titles, RFC 3339 updated-at, object metadata
    ///   sync.resume[S]             a page fetched with a committed cursor returns no record version
    ///                              already committed; resuming mid-run repeats and loses nothing
    ///   search.well-formed         at most `limit` well-formed hits, or invalid-input if unsupported
    ///   errors.unknown-stream      invalid-input or not-found
    ///   errors.unknown-action      not-found or invalid-input
    ///   errors.get-unknown-id      not-found or invalid-input
    ///   errors.invalid-input[A]    action A rejects input its own schema rejects with invalid-input
    ///   grants.no-denied-requests  the gate denied none of its requests (from the audit log)
    ///
    /// See docs/connector-guide.md.
    #[command(verbatim_doc_comment)]
    Conformance {
        /// The connector component (.wasm, built for wasm32-wasip2).
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
        /// The connector of the config to test as (needed when it configures several).
        #[arg(long)]
        connector: Option<String>,
        /// Pages per stream before sync.terminates gives up.
        #[arg(long, default_value_t = 1000)]
        max_pages: usize,
        /// Wait out a `rate-limited` answer up to this long, then retry the page.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        max_rate_limit_wait: std::time::Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Answer the connector's upstream requests from this cassette instead of the network
        /// (record one with --record).
        #[arg(long, value_name = "FILE", conflicts_with = "record")]
        replay: Option<PathBuf>,
        /// Record every upstream exchange of the run to this cassette (secrets removed), so
        /// `--replay FILE` repeats the run offline.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum NewCmd {
    /// Generate a connector crate: Cargo.toml (depends on airlock-sdk by path), src/lib.rs with
    /// a synced stream with a cursor, search, get and a writing action, unit tests that pass
    /// natively, a README and an example config. Never overwrites: fails if the directory exists.
    ///
    /// Then: `cd NAME && cargo test --release && cargo build --release --target wasm32-wasip2`.
    Connector {
        /// Connector name: lowercase letters, digits and hyphens (e.g. `acme-wiki`).
        name: String,
        /// Directory to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The `sdk` directory of an Airlock checkout to depend on (default: the one this
        /// binary was built from).
        #[arg(long, env = "AIRLOCK_SDK_PATH")]
        sdk_path: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SecretsCmd {
    /// Store a secret; the value is read from stdin (e.g. `printf %s "$TOKEN" | airlock secrets set NAME`).
    Set { name: String },
    /// List secret names (never values).
    List,
    /// Remove a secret.
    Rm { name: String },
}

#[derive(Subcommand)]
enum ApprovalsCmd {
    /// List approvals, newest first: id, status, connector, action, who asked.
    List {
        /// Only this status: pending, denied, approved (running), executed, failed.
        #[arg(long)]
        status: Option<String>,
        /// Print JSON (with inputs and results).
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending write action and run it once; prints the result.
    Approve { id: String },
    /// Deny a pending write action; it never runs.
    Deny { id: String },
}

#[derive(Subcommand)]
enum TokensCmd {
    /// Create a token and print it once on stdout (it cannot be shown again; store it now).
    Create {
        /// The principal's name (matched against document ACLs).
        #[arg(long)]
        principal: String,
        /// The tenant whose connectors, documents and audit rows the token may reach.
        #[arg(long, default_value = airlock::config::DEFAULT_TENANT)]
        tenant: String,
        /// Groups of the principal, comma-separated (matched against document ACLs).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// May trigger syncs and read the audit log (of its tenant).
        #[arg(long)]
        admin: bool,
    },
    /// List tokens: id, principal, tenant, groups, admin, created, revoked (never the token).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (`tok_...`), or every token of a principal by its name.
    Revoke {
        #[arg(value_name = "ID|PRINCIPAL")]
        target: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Show the latest rows.
    Tail {
        /// How many rows.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Only rows of this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain and its signed checkpoints. Exit codes: 0 intact, 3 chain broken
    /// (a row edited, inserted or deleted inside it), 4 truncated (rows cut from the tail), 5
    /// rewritten (a row differs from a signed checkpoint or --expect, or a checkpoint is forged),
    /// 6 checkpoint missing. The most serious finding decides the code.
    Verify {
        /// A head kept elsewhere (`SEQ:HASH`, e.g. from the checkpoint log line): the log must
        /// still hold row SEQ with this hash.
        #[arg(long, value_name = "SEQ:HASH", value_parser = audit::parse_expected_head)]
        expect: Option<(i64, String)>,
        /// The checkpoint public key (hex, as in audit-signing.pub) kept elsewhere; without
        /// it the data directory's own key is trusted.
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // CLI commands behave like other Unix tools when their output pipe closes (`| head`):
    // exit quietly instead of panicking on EPIPE. The daemon keeps Rust's default (ignored).
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve { .. }) {
        // SAFETY: called before any other thread exists; restores the default disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let scrubber = Scrubber::new();
    // `check` and `conformance` report their own outcome; their load log would only repeat it.
    // The CLI commands print their own results: only the daemon logs at info by default.
    // A level given on the command line (or AIRLOCK_LOG) is always honoured.
    let level = match (&cli.log_level, &cli.command) {
        (Some(level), _) => level.as_str(),
        (None, Command::Check { .. } | Command::Conformance { .. }) => "off",
        (None, Command::Serve { .. }) => "info",
        (None, _) => "warn",
    };
    airlock::logging::init(level, cli.log_json, scrubber.clone());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command, scrubber.clone())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", scrubber.scrub(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The token of `airlock mcp`: from `--token-file` or AIRLOCK_TOKEN, never from argv.
fn mcp_token(file: Option<&Path>, on_argv: bool) -> anyhow::Result<String> {
    if on_argv {
        bail!(
            "--token is no longer accepted: a token on the command line is visible to every local user; put it in AIRLOCK_TOKEN or in a file given with --token-file"
        );
    }
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?,
        None => std::env::var("AIRLOCK_TOKEN").unwrap_or_default(),
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!(
            "no token: set AIRLOCK_TOKEN or give --token-file FILE (make a token with `airlock tokens create`)"
        );
    }
    Ok(token)
}

fn load_config(c: &ConfigArg) -> anyhow::Result<Config> {
    Ok(Config::load(&c.config)?)
}

async fn run(cmd: Command, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Serve { config, listen } => {
            let config = load_config(&config)?;
            serve(config, listen, scrubber).await
        }
        Command::Mcp {
            config,
            token_file,
            token,
        } => {
            let token = mcp_token(token_file.as_deref(), token.is_some())?;
            let config = load_config(&config)?;
            airlock::mcp::serve_stdio(config, token, scrubber).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke {
            config,
            connector,
            op,
            input,
            replay,
        } => {
            let mut config = load_config(&config)?;
            let only: Vec<String> = match (config.connector(&connector), config.route(&connector)) {
                (Some(_), _) => vec![connector.clone()],
                (None, Some(r)) => r.connectors.clone(),
                (None, None) => bail!(
                    "{}: no connector or route `{connector}` is configured (have: {})",
                    config.path.display(),
                    config
                        .connectors
                        .iter()
                        .map(|c| c.id.as_str())
                        .chain(config.routes.iter().map(|r| r.name.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let input: serde_json::Value = match input.as_deref() {
                None => serde_json::json!({}),
                Some(s) => serde_json::from_str(s).context("INPUT is not valid JSON")?,
            };
            let op = Op::parse(&op, input)?;
            if let Some(file) = replay {
                replay_from(&mut config, &only, &file)?;
            }
            let a = Airlock::start(
                config,
                scrubber.clone(),
                StartOptions {
                    only: Some(&only),
                    max_instances: 16,
                },
            )
            .await?;
            let tenant = a
                .config()
                .tenant_of(&connector)
                .unwrap_or(airlock::config::DEFAULT_TENANT)
                .to_string();
            let result =
                airlock::approvals::request(&a, &cli_user(), &tenant, &connector, op).await;
            a.flush();
            match result {
                Ok(airlock::approvals::Requested::Done(v)) => {
                    println!("{}", scrubber.scrub(&serde_json::to_string_pretty(&v)?));
                    Ok(ExitCode::SUCCESS)
                }
                Ok(airlock::approvals::Requested::Pending(ap)) => {
                    eprintln!(
                        "`{}` writes: approval {} is pending; run `airlock approvals approve {}` (or deny) to decide",
                        ap.action, ap.id, ap.id
                    );
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({ "approval": ap }))?
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {}", scrubber.scrub(&e.to_string()));
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Check { file, json } => check(&file, json, scrubber).await,
        Command::Sign {
            key,
            generate_key,
            file,
        } => {
            use airlock::integrity_cli;
            if let Some(k) = generate_key {
                let line = integrity_cli::generate_key(&k)?;
                println!("[trust]\nkeys = [\"{line}\"]");
            } else if let (Some(k), Some(f)) = (key, file) {
                let out = integrity_cli::sign(&k, &f)?;
                eprintln!("signed {}: {}", f.display(), out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            config,
            file,
            keys,
            sha256,
        } => {
            // The config is optional when keys are given on the command line.
            let config = if keys.is_empty() || config.config.exists() {
                Some(load_config(&config)?)
            } else {
                None
            };
            let v =
                airlock::integrity_cli::verify(&file, &keys, sha256.as_deref(), config.as_ref())?;
            println!(
                "{}: signature OK (key {}), sha256 {}",
                file.display(),
                v.signer,
                v.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync {
            config,
            connector,
            stream,
            full,
            status,
            json,
            replay,
        } => {
            let mut config = load_config(&config)?;
            if status {
                return sync_status(&config, json);
            }
            if let Some(file) = replay {
                let ids: Vec<String> = match &connector {
                    Some(c) => vec![c.clone()],
                    None => config.connectors.iter().map(|c| c.id.clone()).collect(),
                };
                replay_from(&mut config, &ids, &file)?;
            }
            sync_cmd(config, connector, stream, full, json, scrubber).await
        }
        Command::Search {
            config,
            query,
            connector,
            kind,
            limit,
            live,
            live_timeout,
            json,
        } => {
            let config = load_config(&config)?;
            let only: Vec<String> = match &connector {
                Some(c) => vec![c.clone()],
                None => config.connectors.iter().map(|c| c.id.clone()).collect(),
            };
            let a = Airlock::start(
                config,
                scrubber.clone(),
                StartOptions {
                    only: if live { Some(&only) } else { Some(&[]) },
                    max_instances: 64,
                },
            )
            .await?;
            let req = airlock::search::SearchRequest {
                query,
                connector,
                kind,
                limit,
                live,
                live_timeout,
                scope: None,
            };
            let ctx = CallContext::requested().by(&cli_user());
            let r = airlock::runtime::context::with(ctx, a.search(&req)).await?;
            a.flush();
            if json {
                println!("{}", scrubber.scrub(&serde_json::to_string_pretty(&r)?));
            } else {
                for h in &r.hits {
                    println!(
                        "{} {}/{}/{}  {}",
                        h.source, h.connector, h.kind, h.id, h.title
                    );
                    let snippet = h.snippet.split_whitespace().collect::<Vec<_>>().join(" ");
                    println!("    {}", scrubber.scrub(&snippet));
                    if let Some(u) = &h.url {
                        println!("    {u}");
                    }
                }
                if r.hits.is_empty() {
                    println!("no results");
                }
                for f in &r.failed {
                    eprintln!(
                        "partial results: {} failed: {}",
                        f.connector,
                        scrubber.scrub(&f.error)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Secrets { config, action } => {
            let config = load_config(&config)?;
            secrets(&config, action)
        }
        Command::Audit { config, action } => {
            let config = load_config(&config)?;
            audit_cmd(&config, action)
        }
        Command::Approvals { config, action } => {
            let config = load_config(&config)?;
            approvals_cmd(config, action, scrubber).await
        }
        Command::Tokens { config, action } => {
            let config = load_config(&config)?;
            tokens_cmd(&config, action, scrubber)
        }
        Command::New { what } => new_cmd(what),
        Command::Conformance {
            file,
            config,
            connector,
            max_pages,
            max_rate_limit_wait,
            json,
            replay,
            record,
        } => {
            let mut config = load_config(&config)?;
            let opts = airlock::conformance::Options {
                max_pages,
                max_rate_limit_wait,
            };
            // The cassette goes on the connector under test, or on every one when the kit is
            // left to pick (only the one it tests is loaded).
            let ids: Vec<String> = match &connector {
                Some(c) => vec![c.clone()],
                None => config.connectors.iter().map(|c| c.id.clone()).collect(),
            };
            if let Some(f) = replay {
                replay_from(&mut config, &ids, &f)?;
            }
            let recorder = match &record {
                Some(_) => {
                    learn_all_secrets(&config, &scrubber)?;
                    let rec = Arc::new(Recorder::new(scrubber.clone()));
                    set_cassette(&mut config, &ids, CassetteMode::Record(rec.clone()));
                    Some(rec)
                }
                None => None,
            };
            // The operator's own check: named in the audit, no writes (a context is required).
            let (code, tested) = airlock::runtime::context::with(
                CallContext::requested().by(&cli_user()),
                conformance_cmd(
                    config,
                    &file,
                    connector.as_deref(),
                    &opts,
                    json,
                    scrubber.clone(),
                ),
            )
            .await?;
            if let (Some(out), Some(rec)) = (record, recorder) {
                let n = rec.save(&out, &tested).map_err(anyhow::Error::msg)?;
                eprintln!("recorded {n} exchanges to {}", out.display());
            }
            Ok(code)
        }
        Command::Record {
            config,
            connector,
            out,
            streams,
            no_sync,
            invokes,
            inputs,
            searches,
            gets,
            max_pages,
        } => {
            let config = load_config(&config)?;
            let plan = RecordPlan {
                connector,
                out,
                streams,
                no_sync,
                invokes,
                inputs,
                searches,
                gets,
                max_pages,
            };
            // The operator recording their own connector: trusted, writes included.
            airlock::runtime::context::with(
                CallContext::trusted().by(&cli_user()),
                record_cmd(config, plan, scrubber),
            )
            .await
        }
    }
}

/// Who asks, when the CLI asks: the OS user running the process (from the user database, not
/// `$USER`, which the caller can set to anything and which is unset under sudo, cron or
/// systemd); `uid:N` when the user database has no name for it.
fn cli_user() -> String {
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

async fn approvals_cmd(
    config: Config,
    action: ApprovalsCmd,
    scrubber: Scrubber,
) -> anyhow::Result<ExitCode> {
    use airlock::approvals;
    let show = |ap: &approvals::Approval| -> anyhow::Result<()> {
        println!(
            "{}",
            scrubber.scrub(&serde_json::to_string_pretty(
                &serde_json::json!({ "approval": ap })
            )?)
        );
        Ok(())
    };
    let pending_connector = |id: &str| -> anyhow::Result<approvals::Approval> {
        let conn = airlock::store::open(&config.server.data_dir)?;
        approvals::get(&conn, id)?.ok_or_else(|| anyhow::anyhow!("no approval `{id}`"))
    };
    match action {
        ApprovalsCmd::List { status, json } => {
            let conn = airlock::store::open(&config.server.data_dir)?;
            let list = approvals::list(&conn, None, status.as_deref())?;
            if json {
                println!("{}", scrubber.scrub(&serde_json::to_string_pretty(&list)?));
            } else if list.is_empty() {
                println!("no approvals");
            } else {
                for ap in list {
                    println!(
                        "{}\t{}\t{}\t{}\tasked by {} at {}",
                        ap.id, ap.status, ap.connector, ap.action, ap.requested_by, ap.created_at
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCmd::Approve { id } => {
            let ap = pending_connector(&id)?;
            let only: Vec<String> = match config.route(&ap.connector) {
                Some(r) => r.connectors.clone(),
                None => vec![ap.connector.clone()],
            };
            let a = Airlock::start(
                config,
                scrubber.clone(),
                StartOptions {
                    only: Some(&only),
                    max_instances: 4,
                },
            )
            .await?;
            let r = approvals::approve(&a, &id, &cli_user()).await;
            a.flush();
            let ap = r?;
            show(&ap)?;
            Ok(if ap.status == "executed" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        ApprovalsCmd::Deny { id } => {
            pending_connector(&id)?;
            let a = Airlock::start(
                config,
                scrubber.clone(),
                StartOptions {
                    only: Some(&[]),
                    max_instances: 1,
                },
            )
            .await?;
            let r = approvals::deny(&a, &id, &cli_user()).await;
            a.flush();
            show(&r?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A `token` audit row, written by the CLI user: which token (id, principal, tenant, admin),
/// never its value.
fn token_audit(log: &audit::AuditLog, decision: &str, t: &airlock::store::tokens::TokenInfo) {
    log.record(audit::AuditEvent {
        // Tokens belong to no connector.
        connector: String::new(),
        invocation: t.id.clone(),
        event: "token".into(),
        decision: decision.into(),
        reason: format!(
            "token {} {decision} for principal `{}` in tenant `{}` (admin: {}, groups: [{}])",
            t.id,
            t.principal,
            t.tenant,
            t.admin,
            t.groups.join(",")
        ),
        principal: Some(cli_user()),
        ..Default::default()
    });
}

fn tokens_cmd(config: &Config, action: TokensCmd, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
    use airlock::store::tokens;
    let mut conn = airlock::store::open(&config.server.data_dir)?;
    // Dropped at the end of the command, which flushes the rows.
    let writer = audit::AuditWriter::start_with(&config.server.data_dir, scrubber, &config.audit)?;
    match action {
        TokensCmd::Create {
            principal,
            tenant,
            groups,
            admin,
        } => {
            let groups: Vec<String> = groups
                .into_iter()
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .collect();
            if !config.connectors.iter().any(|c| c.tenant == tenant) {
                eprintln!(
                    "warning: no connector in {} belongs to tenant `{tenant}`",
                    config.path.display()
                );
            }
            let (info, token) = tokens::create(&mut conn, &principal, &tenant, &groups, admin)?;
            token_audit(&writer.log(), "created", &info);
            eprintln!(
                "created {} for principal `{}` in tenant `{}`{}{}; the token is shown only now:",
                info.id,
                info.principal,
                info.tenant,
                if info.groups.is_empty() {
                    String::new()
                } else {
                    format!(", groups {}", info.groups.join(","))
                },
                if info.admin { ", admin" } else { "" },
            );
            println!("{token}");
        }
        TokensCmd::List { json } => {
            let list = tokens::list(&conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no tokens; create one with `airlock tokens create --principal NAME`");
            } else {
                for t in list {
                    println!(
                        "{}\t{}\ttenant={}\tgroups={}\t{}\tcreated {}{}",
                        t.id,
                        t.principal,
                        t.tenant,
                        t.groups.join(","),
                        if t.admin { "admin" } else { "-" },
                        t.created_at,
                        t.revoked_at
                            .map(|r| format!("\trevoked {r}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        TokensCmd::Revoke { target } => {
            let ids = tokens::revoke(&mut conn, &target)?;
            if ids.is_empty() {
                bail!("no live token has the id or principal `{target}`");
            }
            let all = tokens::list(&conn)?;
            for id in ids {
                if let Some(info) = all.iter().find(|t| t.id == id) {
                    token_audit(&writer.log(), "revoked", info);
                }
                println!("revoked {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn new_cmd(what: NewCmd) -> anyhow::Result<ExitCode> {
    match what {
        NewCmd::Connector {
            name,
            dir,
            sdk_path,
        } => {
            let g = airlock::scaffold::new_connector(&name, dir.as_deref(), sdk_path.as_deref())?;
            println!("created connector `{name}` in {}", g.dir.display());
            for f in &g.files {
                println!("  {}", f.display());
            }
            println!("  (airlock-sdk from {})", g.sdk_dependency);
            println!("next:");
            println!("  cd {}", g.dir.display());
            println!("  cargo test --release");
            println!("  cargo build --release --target wasm32-wasip2");
            println!(
                "  airlock check target/wasm32-wasip2/release/{}",
                g.wasm_name
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn conformance_cmd(
    config: Config,
    file: &Path,
    connector: Option<&str>,
    opts: &airlock::conformance::Options,
    json: bool,
    scrubber: Scrubber,
) -> anyhow::Result<(ExitCode, String)> {
    let report = airlock::conformance::run(config, file, connector, scrubber.clone(), opts).await?;
    if json {
        println!(
            "{}",
            scrubber.scrub(&serde_json::to_string_pretty(&report)?)
        );
    } else {
        println!(
            "conformance of {} as connector `{}`",
            report.file, report.connector
        );
        for o in &report.outcomes {
            println!("{}", scrubber.scrub(&o.to_string()));
        }
        let failed = report.failures().count();
        let skipped = report
            .outcomes
            .iter()
            .filter(|o| o.status == airlock::conformance::Status::Skip)
            .count();
        println!(
            "{} rule(s): {} passed, {failed} failed, {skipped} skipped",
            report.outcomes.len(),
            report.outcomes.len() - failed - skipped
        );
    }
    let code = if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    Ok((code, report.connector))
}

/// Points `ids` at a cassette to replay, after checking it reads (a CLI path is relative to the
/// working directory).
fn replay_from(config: &mut Config, ids: &[String], file: &Path) -> anyhow::Result<()> {
    let file =
        std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))?;
    Replay::load(&file).map_err(anyhow::Error::msg)?;
    set_cassette(config, ids, CassetteMode::Replay(file));
    Ok(())
}

fn set_cassette(config: &mut Config, ids: &[String], mode: CassetteMode) {
    for c in config.connectors.iter_mut().filter(|c| ids.contains(&c.id)) {
        c.cassette = Some(mode.clone());
    }
}

/// Teaches the scrubber every secret the config references and every vault secret, so a
/// cassette holds none of them, whichever connector used it.
fn learn_all_secrets(config: &Config, scrubber: &Scrubber) -> anyhow::Result<()> {
    let dir = &config.server.data_dir;
    let conn = airlock::store::open(dir)?;
    let vault = Vault::open(dir)?;
    let refs = config.grants.iter().flat_map(|g| g.auth.secret_refs());
    // Unresolvable references fail the connector's own load later, with the reason.
    let _ = airlock::capabilities::secrets::resolve_all(refs, &vault, &conn, scrubber);
    for (name, _) in Vault::list(&conn)? {
        if let Ok(Some(v)) = vault.get(&conn, &name) {
            scrubber.add(&v);
        }
    }
    Ok(())
}

/// What `airlock record` runs.
struct RecordPlan {
    connector: String,
    out: PathBuf,
    streams: Vec<String>,
    no_sync: bool,
    invokes: Vec<String>,
    inputs: Vec<String>,
    searches: Vec<String>,
    gets: Vec<String>,
    max_pages: usize,
}

async fn record_cmd(
    mut config: Config,
    plan: RecordPlan,
    scrubber: Scrubber,
) -> anyhow::Result<ExitCode> {
    let id = plan.connector.clone();
    if config.connector(&id).is_none() {
        bail!(
            "{}: no connector `{id}` is configured",
            config.path.display()
        );
    }
    if plan.inputs.len() > plan.invokes.len() {
        bail!(
            "--input given {} times but --invoke only {}: each --input belongs to the --invoke at its position",
            plan.inputs.len(),
            plan.invokes.len()
        );
    }
    // Parse every operation first: a typo should not cost a recording.
    let mut ops: Vec<(String, Op)> = Vec::new();
    for q in &plan.searches {
        ops.push((
            format!("search {q:?}"),
            Op::parse("search", serde_json::json!({ "query": q }))?,
        ));
    }
    for g in &plan.gets {
        ops.push((
            format!("get {g}"),
            Op::parse("get", serde_json::json!({ "id": g }))?,
        ));
    }
    for (i, action) in plan.invokes.iter().enumerate() {
        let input: serde_json::Value = match plan.inputs.get(i) {
            Some(s) => serde_json::from_str(s)
                .with_context(|| format!("--input of --invoke {action} is not valid JSON"))?,
            None => serde_json::json!({}),
        };
        ops.push((format!("invoke {action}"), Op::parse(action, input)?));
    }
    learn_all_secrets(&config, &scrubber)?;
    let rec = Arc::new(Recorder::new(scrubber.clone()));
    set_cassette(
        &mut config,
        std::slice::from_ref(&id),
        CassetteMode::Record(rec.clone()),
    );
    let only = [id.clone()];
    let a = Airlock::start(
        config,
        scrubber.clone(),
        StartOptions {
            only: Some(&only),
            max_instances: 4,
        },
    )
    .await?;
    let c = a
        .connector(&id)
        .map_err(|e| anyhow::anyhow!(scrubber.scrub(&e.to_string())))?
        .clone();
    let mut failures = 0;
    eprintln!("recording {id}: health");
    if let Err(e) = c.invoke(Op::Health).await {
        eprintln!("  health: {}", scrubber.scrub(&e.to_string()));
    }
    if !plan.no_sync {
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
        for s in &streams {
            // Page by page from no cursor, committing nothing: `sync --replay` into an empty
            // store then asks exactly these requests.
            let (mut cursor, mut pages, mut records) = (None::<String>, 0usize, 0usize);
            loop {
                match c.sync_page(s, cursor.clone()).await {
                    Ok(p) => {
                        pages += 1;
                        records += p.upserts.len() + p.deletes.len();
                        eprintln!("recording {id}/{s}: page {pages}, {records} records");
                        if p.done {
                            break;
                        }
                        if p.stall(|c| cursor.as_deref() == Some(c)).is_some() {
                            eprintln!(
                                "error: {id}/{s}: page is not done but has no new cursor; stopped"
                            );
                            failures += 1;
                            break;
                        }
                        if pages >= plan.max_pages {
                            eprintln!("error: {id}/{s}: not done after {pages} pages; stopped");
                            failures += 1;
                            break;
                        }
                        cursor = p.next_cursor;
                    }
                    Err(e) => {
                        eprintln!("error: {id}/{s}: {}", scrubber.scrub(&e.to_string()));
                        failures += 1;
                        break;
                    }
                }
            }
        }
    }
    // Explicit operations may fail on purpose (recording an error path): reported, not fatal.
    for (label, op) in ops {
        eprintln!("recording {id}: {label}");
        if let Err(e) = c.invoke(op).await {
            eprintln!("  {label}: {}", scrubber.scrub(&e.to_string()));
        }
    }
    a.flush();
    let n = rec.save(&plan.out, &id).map_err(anyhow::Error::msg)?;
    println!("recorded {n} exchanges to {}", plan.out.display());
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("the sync did not finish: the cassette covers only what ran");
        ExitCode::from(2)
    })
}

async fn serve(
    config: Config,
    listen: Option<std::net::SocketAddr>,
    scrubber: Scrubber,
) -> anyhow::Result<ExitCode> {
    let addr = listen.unwrap_or(config.server.listen);
    let path = config.path.clone();
    let a = Arc::new(Airlock::start(config, scrubber, StartOptions::default()).await?);
    let ready = a.statuses().iter().filter(|s| s.status == "ready").count();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        "airlock serving {} connector(s) ({} ready) from {} on http://{local}",
        a.slots().len(),
        ready,
        path.display()
    );
    airlock::scheduler::spawn_scheduler(a.clone());
    airlock::reload::spawn(a.clone());
    // The address really listened on (`--listen` overrides the config) decides whether
    // `/metrics` may stay open.
    let app = airlock::server::router(a.clone())
        .layer(axum::Extension(airlock::api::auth::Listening(local)));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
        })
        .await?;
    tracing::info!("shutting down");
    // A clean stop anchors the newest rows with a signed checkpoint.
    a.flush_and_checkpoint();
    Ok(ExitCode::SUCCESS)
}

async fn check(file: &Path, json: bool, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
    // A throwaway host: no grants, audit and cache in a temporary directory.
    let tmp = tempdir()?;
    let text = format!(
        "[server]\ndata_dir = \"data\"\n[[connector]]\nid = \"check\"\ncomponent = {:?}\n",
        std::fs::canonicalize(file)
            .unwrap_or_else(|_| file.to_path_buf())
            .display()
            .to_string()
    );
    let config = Config::parse(&text, &tmp.join("check.toml"))?;
    let a = Airlock::start(
        config,
        scrubber,
        StartOptions {
            only: None,
            max_instances: 4,
        },
    )
    .await?;
    let result = match a.connector("check") {
        Ok(c) => Ok(c.clone()),
        Err(e) => Err(e.to_string()),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let c = match result {
        Ok(c) => c,
        Err(e) => {
            let e = e.replace(
                "connector is not available: connector `check` failed to load: ",
                "",
            );
            if json {
                println!("{}", serde_json::json!({ "ok": false, "error": e }));
            } else {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": true,
                "file": file.display().to_string(),
                "contract": format!("{}@{}", connector::CONTRACT_PACKAGE, c.contract),
                "info": c.info,
                "compile": c.compile,
            }))?
        );
    } else {
        let i = &c.info;
        println!("{}: ok", file.display());
        println!(
            "  contract   {}@{}",
            connector::CONTRACT_PACKAGE,
            c.contract
        );
        println!("  connector  {} {} — {}", i.name, i.version, i.description);
        println!(
            "  size       {} KiB, compiled in {:.0} ms",
            c.compile.size_bytes / 1024,
            c.compile.millis
        );
        println!(
            "  streams    {}",
            if i.streams.is_empty() {
                "(none)".into()
            } else {
                i.streams
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        println!(
            "  actions    {}",
            if i.actions.is_empty() {
                "(none)".into()
            } else {
                i.actions
                    .iter()
                    .map(|a| {
                        if a.writes {
                            format!("{} (writes)", a.name)
                        } else {
                            a.name.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn sync_cmd(
    config: Config,
    connector: Option<String>,
    stream: Option<String>,
    full: bool,
    json: bool,
    scrubber: Scrubber,
) -> anyhow::Result<ExitCode> {
    let ids: Vec<String> = match &connector {
        Some(c) => {
            if config.connector(c).is_none() {
                bail!(
                    "{}: no connector `{c}` is configured",
                    config.path.display()
                );
            }
            vec![c.clone()]
        }
        None => config.connectors.iter().map(|c| c.id.clone()).collect(),
    };
    let a = Airlock::start(
        config,
        scrubber.clone(),
        StartOptions {
            only: Some(&ids),
            max_instances: 16,
        },
    )
    .await?;
    let tty = std::io::stderr().is_terminal();
    let mut failures = 0;
    for id in &ids {
        let streams = match a.streams_of(id, stream.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {}", scrubber.scrub(&e.to_string()));
                failures += 1;
                continue;
            }
        };
        for s in streams {
            let bar = tty.then(|| {
                let pb = indicatif::ProgressBar::new_spinner();
                pb.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                pb.enable_steady_tick(std::time::Duration::from_millis(120));
                pb
            });
            let mut last_line = std::time::Instant::now();
            let run = a.sync_stream(id, &s, full, |p| {
                let msg = format!(
                    "{}/{}: {} pages, {} records, {:.0} records/s",
                    p.connector,
                    p.stream,
                    p.pages,
                    p.records,
                    p.records_per_sec()
                );
                match &bar {
                    Some(pb) => pb.set_message(msg),
                    // Plain lines when not on a terminal, at most one a second.
                    None if last_line.elapsed().as_secs_f64() >= 1.0 => {
                        eprintln!("{msg}");
                        last_line = std::time::Instant::now();
                    }
                    None => {}
                }
            });
            let ctx = CallContext::trusted().by(&cli_user());
            let result = airlock::runtime::context::with(ctx, run).await;
            if let Some(pb) = bar {
                pb.finish_and_clear();
            }
            match result {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string(&r)?);
                    } else {
                        let end = match r.end {
                            airlock::sync::RunEnd::Done => "caught up".to_string(),
                            airlock::sync::RunEnd::RateLimited { retry_after_secs } => {
                                format!("rate-limited, resume in {retry_after_secs}s")
                            }
                        };
                        println!(
                            "{id}/{s}: {} pages, {} upserts, {} deletes in {:.1}s ({:.0} records/s), {end}",
                            r.pages,
                            r.upserts,
                            r.deletes,
                            r.seconds,
                            (r.upserts + r.deletes) as f64 / r.seconds.max(1e-6)
                        );
                    }
                }
                Err(e) => {
                    eprintln!("error: {id}/{s}: {}", scrubber.scrub(&e.to_string()));
                    failures += 1;
                }
            }
        }
    }
    a.flush();
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn sync_status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let conn = airlock::store::open(&config.server.data_dir)?;
    let states = airlock::store::sync_state::all(&conn)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&states)?);
        return Ok(ExitCode::SUCCESS);
    }
    if states.is_empty() {
        println!("no stream has been synced yet");
    }
    for s in states {
        println!(
            "{}/{}: {} records stored (last run: {} upserts, {} deletes), last success {}, cursor age {}{}{}",
            s.connector,
            s.stream,
            s.records,
            s.last_run_upserts,
            s.last_run_deletes,
            s.last_success_at.as_deref().unwrap_or("never"),
            age(s.cursor_updated_at.as_deref()),
            s.last_error
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default(),
            s.resume_after
                .map(|r| format!(", rate-limited until {r}"))
                .unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn age(ts: Option<&str>) -> String {
    ts.and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .map(|d| {
            humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("airlock-check-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

fn secrets(config: &Config, action: SecretsCmd) -> anyhow::Result<ExitCode> {
    let dir = &config.server.data_dir;
    let conn = airlock::store::open(dir)?;
    match action {
        SecretsCmd::Set { name } => {
            airlock::store::vault::validate_name(&name).map_err(anyhow::Error::msg)?;
            let vault = Vault::open(dir)?;
            if std::io::stdin().is_terminal() {
                eprintln!(
                    "Enter the value for `{name}` and press Ctrl-D (it is read from stdin, not echoed to logs):"
                );
            }
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("cannot read the value from stdin")?;
            let value = value.trim_end_matches(['\r', '\n']);
            if value.len() < MIN_SECRET_LEN {
                bail!(
                    "the value is too short to be a credential (at least {MIN_SECRET_LEN} characters)"
                );
            }
            vault.set(&conn, &name, value)?;
            println!(
                "stored secret `{name}` in {}",
                airlock::store::db_path(dir).display()
            );
        }
        SecretsCmd::List => {
            for (name, updated) in Vault::list(&conn)? {
                println!("{name}\t{updated}");
            }
        }
        SecretsCmd::Rm { name } => {
            if Vault::remove(&conn, &name)? {
                println!("removed secret `{name}`");
            } else {
                bail!("no secret named `{name}`");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_cmd(config: &Config, action: AuditCmd) -> anyhow::Result<ExitCode> {
    let conn = airlock::store::open(&config.server.data_dir)?;
    match action {
        AuditCmd::Tail {
            lines,
            connector,
            json,
        } => {
            for r in audit::tail(&conn, lines, connector.as_deref())? {
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    let e = &r.event;
                    let target = match (&e.method, &e.host, &e.path) {
                        (Some(m), Some(h), Some(p)) => format!(
                            " {m} {}://{h}{}{p}",
                            e.scheme.as_deref().unwrap_or("?"),
                            e.port.map(|p| format!(":{p}")).unwrap_or_default()
                        ),
                        _ => String::new(),
                    };
                    let status = e.status.map(|s| format!(" -> {s}")).unwrap_or_default();
                    let latency = e
                        .latency_ms
                        .map(|l| format!(" {l:.1}ms"))
                        .unwrap_or_default();
                    let bytes = e.bytes.map(|b| format!(" {b}B")).unwrap_or_default();
                    let by = e
                        .principal
                        .as_deref()
                        .map(|p| format!("  [by {p}]"))
                        .unwrap_or_default();
                    println!(
                        "{:>6} {} {:<12} {:<7} {:<5}{target}{status}{latency}{bytes}  {}{by}",
                        r.seq, r.ts, e.connector, e.event, e.decision, e.reason
                    );
                }
            }
        }
        AuditCmd::Verify { expect, public_key } => {
            let pinned = public_key
                .as_deref()
                .map(airlock::store::checkpoint::parse_public_key)
                .transpose()
                .context("--public-key")?;
            let v = audit::verify(&conn)?;
            let anchor = audit::check_anchor(
                &conn,
                &config.server.data_dir,
                pinned,
                expect.as_ref().map(|(s, h)| (*s, h.as_str())),
            )?;
            let mut problems: Vec<(audit::Tamper, String)> = v
                .problems
                .iter()
                .map(|p| (audit::Tamper::ChainBroken, p.clone()))
                .collect();
            problems.extend(anchor.problems.iter().cloned());
            if problems.is_empty() {
                println!("audit log intact: {} rows verified", v.rows);
                if let Some(cp) = &anchor.newest {
                    println!(
                        "anchored: {} valid checkpoint(s); the newest signs row {} ({}) at {}; {} row(s) since",
                        anchor.valid_checkpoints, cp.seq, cp.hash, cp.time, anchor.unanchored_rows
                    );
                }
            } else {
                for (kind, p) in &problems {
                    let tag = match kind {
                        audit::Tamper::ChainBroken => "TAMPERED",
                        audit::Tamper::Truncated => "TRUNCATED",
                        audit::Tamper::Rewritten => "REWRITTEN",
                        audit::Tamper::CheckpointMissing => "UNANCHORED",
                    };
                    println!("{tag}: {p}");
                }
                eprintln!(
                    "audit log verification FAILED: {} problem(s) in {} rows",
                    problems.len(),
                    v.rows
                );
                let worst = problems
                    .iter()
                    .map(|(k, _)| *k)
                    .max()
                    .unwrap_or(audit::Tamper::ChainBroken);
                return Ok(ExitCode::from(worst.exit_code()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
