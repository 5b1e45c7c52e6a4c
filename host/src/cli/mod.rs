//! The `airlock` command line: the top-level parser and one module per subcommand, each with its
//! arguments and its `run`.

mod approvals;
mod audit;
mod changes;
mod check;
mod common;
mod completions;
mod config_check;
mod conformance;
mod invoke;
mod man;
mod mcp;
mod new;
mod oauth;
mod record;
mod search;
mod secrets;
mod serve;
mod sign;
mod store;
mod store_copy;
mod sync;
mod tokens;
mod verify;

use std::process::ExitCode;

/// The exit codes every command shares (README "Exit codes"); clap exits 2 on a usage error,
/// and `audit verify` uses 3..=7 for what it found (see `store::audit::Tamper`).
pub mod exit {
    use std::process::ExitCode;

    /// The command, or the operation it ran, failed.
    pub const FAILED: ExitCode = ExitCode::FAILURE;

    /// A write action was queued for approval: nothing ran yet.
    pub fn pending_approval() -> ExitCode {
        ExitCode::from(10)
    }
}

use clap::{Parser, Subcommand};

use crate::scrub::Scrubber;

/// Airlock runs integration connectors as sandboxed WebAssembly components. Each connector gets
/// exactly the outbound HTTP destinations its grants allow; credentials are injected at the
/// gate, so connector code never holds a secret. Every invocation and outbound decision is
/// audited in a hash-chained log. The daemon's `/v1` API needs a bearer token from
/// `airlock tokens create`.
#[derive(Parser)]
// `about` is the crate description (`-h`); `long_about` the text above (`--help`, and the man
// page's DESCRIPTION).
#[command(name = "airlock", version, about, long_about)]
pub struct Cli {
    /// Log filter (e.g. `info`, `debug`, `airlock=debug`); RUST_LOG overrides it. Default:
    /// `info` for `serve`, `warn` for the other commands (they print their own
    /// results), `off` for `check`, `config check` and `conformance` (their report says it all).
    #[arg(long, global = true, env = "AIRLOCK_LOG")]
    pub log_level: Option<String>,
    /// Write logs as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "AIRLOCK_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

// The doc comment of each variant is its `--help` text; the arguments live in its module.
#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon: load every connector and serve the HTTP API on loopback.
    Serve(serve::ServeArgs),
    /// Serve MCP (Model Context Protocol) on stdin/stdout for one token's principal: tools
    /// `search`, `get_document`, `list_connectors` and one per action of the tenant's connectors
    /// and routes (`CONNECTOR__ACTION`). The daemon serves the same at `/mcp` over HTTP.
    Mcp(mcp::McpArgs),
    /// Run one operation on a connector and print the JSON result.
    ///
    /// OP is info, health, search, get, check-permission, sync (one page) or an action name.
    /// INPUT is a JSON object: search {"query": "...", "limit": 20}, get {"id": "..."},
    /// check-permission {"principal": "...", "id": "..."}, sync {"stream": "...", "cursor": null},
    /// or the action's input.
    Invoke(invoke::InvokeArgs),
    /// Sync streams into the local store (all connectors and streams unless narrowed), or show
    /// sync status with --status. A run resumes from the last committed page.
    Sync(sync::SyncArgs),
    /// Record a connector's upstream exchanges to a cassette, for offline tests (`--replay`).
    ///
    /// Runs the connector against the upstream its config points at: health, a full sync of
    /// every stream (from no cursor; nothing is committed to the store), then each --search,
    /// --get and --invoke in that order. Every exchange the connector saw is written to --out as
    /// JSON with every credential header and every secret value the config or the vault knows
    /// removed; the gate's own OAuth token requests are not recorded at all.
    /// Replay it with `airlock invoke|sync|conformance --replay FILE` or `replay = "FILE"`.
    Record(record::RecordArgs),
    /// Search the local store across every connector (bm25-ranked, with snippets).
    Search(search::SearchArgs),
    /// Sign a component with a minisign (Ed25519) secret key: writes FILE.minisig beside it,
    /// which `[trust] keys` / `require_signature` check at load. `--generate-key KEY` makes a key
    /// pair instead (KEY, mode 0600, and KEY.pub; encrypted when AIRLOCK_SIGN_PASSWORD is set).
    /// Keys and signatures are minisign's format: `minisign -S`/`-V` work on them too.
    Sign(sign::SignArgs),
    /// Verify a component as `airlock serve` will: its FILE.minisig against --key (or the
    /// config's `[trust] keys`), and the `sha256` pin of each configured connector that loads
    /// this file (or --sha256). Exits non-zero when it would be refused.
    Verify(verify::VerifyArgs),
    /// Check that a .wasm file is a loadable connector: contract version, streams, actions.
    Check(check::CheckArgs),
    /// Check a configuration as `serve` would load it (`airlock config check`): the file, its
    /// secret references (by name) and every component, all problems at once; exit 1 if any.
    Config(config_check::ConfigArgs),
    /// Manage the encrypted secret vault (values are read from stdin, never from arguments).
    Secrets(secrets::SecretsArgs),
    /// Manage API tokens. Every `/v1` route of `airlock serve` needs `Authorization: Bearer
    /// <token>`; a token names a principal, its tenant, its groups (matched against document
    /// ACLs) and whether it is an admin (sync triggers, audit). Only a hash is stored.
    Tokens(tokens::TokensArgs),
    /// Sign-ins of Airlock's own OAuth authorization server (`[oauth] authorization_server =
    /// "self"`), by which MCP clients act for a person: `grants` lists them, `revoke` ends one
    /// (by grant id) or all of a person's (by principal) at once.
    #[command(name = "oauth")]
    OAuth(oauth::OAuthArgs),
    /// The store: `status` (which database, reachable, sync job leases) and `migrate` (apply
    /// pending schema migrations; idempotent). By default the store is the SQLite file in the
    /// data directory; `[store] url = "postgres://…"` or AIRLOCK_STORE_URL names a PostgreSQL
    /// database that several daemons share.
    Store(store::StoreArgs),
    /// Write approvals: an action marked `writes`, asked for with `airlock invoke` or the API,
    /// waits here until approved (it then runs once) or denied, unless its grant says
    /// `writes_preapproved = true`.
    Approvals(approvals::ApprovalsArgs),
    /// Read and verify the audit log.
    Audit(audit::AuditArgs),
    /// Print the change feed of the local store (every committed upsert and delete, in commit
    /// order) as JSON lines; `--follow` keeps waiting for new ones. The API serves the same,
    /// filtered by the caller's tenant and ACLs, at `GET /v1/changes`.
    Changes(changes::ChangesArgs),
    /// Generate a new project from a template (`airlock new connector NAME`).
    New(new::NewArgs),
    /// Print the shell completion script: `airlock completions bash > /etc/bash_completion.d/airlock`
    /// (or zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the manual page airlock(1) as roff: `airlock man | man -l -`; `--out-dir DIR`
    /// writes it with one page per subcommand (airlock-serve.1, ...).
    Man(man::ManArgs),
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
    Conformance(conformance::ConformanceArgs),
}

impl Command {
    /// Runs the command; an error is printed (scrubbed) by the caller, with exit code 1.
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        match self {
            Command::Serve(args) => args.run(scrubber).await,
            Command::Mcp(args) => args.run(scrubber).await,
            Command::Invoke(args) => args.run(scrubber).await,
            Command::Sync(args) => args.run(scrubber).await,
            Command::Record(args) => args.run(scrubber).await,
            Command::Search(args) => args.run(scrubber).await,
            Command::Sign(args) => args.run(),
            Command::Verify(args) => args.run(),
            Command::Check(args) => args.run(scrubber).await,
            Command::Config(args) => args.run(scrubber).await,
            Command::Secrets(args) => args.run().await,
            Command::Tokens(args) => args.run(scrubber).await,
            Command::OAuth(args) => args.run(scrubber).await,
            Command::Store(args) => args.run().await,
            Command::Approvals(args) => args.run(scrubber).await,
            Command::Audit(args) => args.run().await,
            Command::Changes(args) => args.run().await,
            Command::New(args) => args.run(),
            Command::Completions(args) => args.run(),
            Command::Man(args) => args.run(),
            Command::Conformance(args) => args.run(scrubber).await,
        }
    }
}

/// The whole `airlock` command: parse the arguments, set up logging and the runtime, run the
/// command. It lives in the library (the binary only calls it) so the library's generic code is
/// compiled once, not again for a second crate.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // CLI commands behave like other Unix tools when their output pipe closes (`| head`):
    // exit quietly instead of panicking on EPIPE. The daemon keeps Rust's default (ignored).
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_)) {
        // SAFETY: the binary calls this first thing, before any other thread exists; it
        // restores the default disposition.
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
        (None, Command::Check(_) | Command::Conformance(_) | Command::Config(_)) => "off",
        (None, Command::Serve(_)) => "info",
        (None, _) => "warn",
    };
    crate::logging::init(level, cli.log_json, scrubber.clone());
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
    match rt.block_on(cli.command.run(scrubber.clone())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", scrubber.scrub(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
