//! The `fake-saas` command: run the upstream fakes as standalone servers. It lives in the
//! library (the binary only calls [`main`]) so the generic code both share is compiled once.

use std::io::Write;
use std::net::SocketAddr;

use crate::{ConfluenceOptions, ServingFake, ZendeskOptions, spawn_confluence, spawn_zendesk};
use crate::{JiraOptions, spawn_jira};
use crate::{OpenAiMode, OpenAiOptions, spawn_openai};
use clap::{Parser, Subcommand};

use crate::{AteraOptions, AzureOptions, spawn_atera, spawn_azure};
use crate::{MsGraphOptions, spawn_msgraph};

type Fake = Box<dyn ServingFake>;

/// A fake once it listens, with its name, or why it could not (its name and address in the
/// error).
async fn started<F: ServingFake + 'static>(
    name: &'static str,
    listen: SocketAddr,
    spawn: impl Future<Output = std::io::Result<F>>,
) -> std::io::Result<(&'static str, Fake)> {
    let fake = spawn.await.map_err(|e| listen_error(name, listen, e))?;
    Ok((name, Box::new(fake)))
}

fn listen_error(name: &str, listen: SocketAddr, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{name}: cannot listen on {listen}: {e}"))
}

#[derive(Parser)]
#[command(
    name = "fake-saas",
    version,
    about = "Local, deterministic fakes of the SaaS APIs Airlock connectors talk to"
)]
#[command(
    after_help = "Every fake also serves unauthenticated control routes under /_fake/ (truth, mutate, requests, config, shutdown)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Confluence Cloud: REST v2 pages and spaces, v1 CQL search, v1 permission check.
    Confluence {
        /// Address to listen on; port 0 picks a free port (the real one is printed).
        #[arg(long, default_value = "127.0.0.1:8781")]
        listen: SocketAddr,
        /// Account email expected in HTTP Basic auth.
        #[arg(long, default_value = "demo@example.com")]
        email: String,
        /// API token expected in HTTP Basic auth.
        #[arg(
            long,
            default_value = "demo-confluence-token",
            hide_default_value = true
        )]
        api_token: String,
        /// Number of seeded pages (the first one of each space is its homepage).
        #[arg(long, default_value_t = 120)]
        pages: usize,
        /// Number of seeded spaces.
        #[arg(long, default_value_t = 3)]
        spaces: usize,
        /// Seed of the generated data set: the same seed gives the same data.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Answer every N-th request with 429 + Retry-After (off unless given).
        #[arg(long, value_name = "N")]
        rate_limit_every: Option<u64>,
    },
    /// Zendesk Support and Help Center: incremental ticket/event/article exports, tickets, comments,
    /// articles, search, and the per-minute limit on incremental exports.
    Zendesk {
        /// Address to listen on; port 0 picks a free port (the real one is printed).
        #[arg(long, default_value = "127.0.0.1:8782")]
        listen: SocketAddr,
        /// Agent email; HTTP Basic auth expects `{email}/token` and the API token.
        #[arg(long, default_value = "agent@example.com")]
        email: String,
        /// API token (HTTP Basic password, or `Authorization: Bearer <token>`).
        #[arg(long, default_value = "demo-zendesk-token", hide_default_value = true)]
        api_token: String,
        /// Number of seeded tickets.
        #[arg(long, default_value_t = 500)]
        tickets: usize,
        /// Number of seeded Help Center articles.
        #[arg(long, default_value_t = 40)]
        articles: usize,
        /// Seed of the generated data set: the same seed gives the same data.
        #[arg(long, default_value_t = 11)]
        seed: u64,
        /// Requests per minute allowed on the incremental endpoints (the real limit is 10; off unless given).
        #[arg(long, value_name = "N")]
        incremental_limit: Option<u32>,
        /// Ticket exports leave out changes younger than this many seconds (0: none).
        #[arg(long, default_value_t = 60, value_name = "S")]
        recent_exclusion_secs: u64,
    },
    /// Jira Cloud + Service Management: JQL search (`/rest/api/3/search/jql`), issues, JSM
    /// requests, comments (read and add) and knowledge-base articles.
    Jira {
        /// Address to listen on; port 0 picks a free port (the real one is printed).
        #[arg(long, default_value = "127.0.0.1:8783")]
        listen: SocketAddr,
        /// Account email expected in HTTP Basic auth.
        #[arg(long, default_value = "demo@example.com")]
        email: String,
        /// API token expected in HTTP Basic auth.
        #[arg(long, default_value = "demo-jira-token", hide_default_value = true)]
        api_token: String,
        /// Number of seeded requests (issues).
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Number of seeded knowledge-base articles.
        #[arg(long, default_value_t = 30)]
        articles: usize,
        /// Seed of the generated data set: the same seed gives the same data.
        #[arg(long, default_value_t = 13)]
        seed: u64,
        /// Answer every N-th request with 429 + Retry-After (off unless given).
        #[arg(long, value_name = "N")]
        rate_limit_every: Option<u64>,
    },
    /// OpenAI-compatible chat completions: OpenAI (Bearer), Azure OpenAI (`api-key`) or LM Studio
    /// (no auth), deterministic `echo: <last user message>` replies.
    Openai {
        /// Address to listen on; port 0 picks a free port (the real one is printed).
        #[arg(long, default_value = "127.0.0.1:8786")]
        listen: SocketAddr,
        /// Flavour to play: openai, azure or lmstudio.
        #[arg(long, default_value = "openai")]
        mode: OpenAiMode,
        /// Expected Bearer token (openai) or `api-key` value (azure).
        #[arg(long, default_value = "demo-openai-key", hide_default_value = true)]
        api_key: String,
    },
    /// Atera API v3: tickets (paged, last-modified), ticket comments (read and add); `X-API-KEY`
    /// or `Authorization: Bearer` with the same key.
    Atera {
        /// Address to listen on; port 0 picks a free port (the real one is printed).
        #[arg(long, default_value = "127.0.0.1:8784")]
        listen: SocketAddr,
        /// API key (`X-API-KEY: <key>` or `Authorization: Bearer <key>`).
        #[arg(long, default_value = "demo-atera-key", hide_default_value = true)]
        api_key: String,
        /// Number of seeded tickets.
        #[arg(long, default_value_t = 120)]
        tickets: usize,
        /// Seed of the generated data set: the same seed gives the same data.
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// Answer every N-th request with 429 + Retry-After (off unless given).
        #[arg(long, value_name = "N")]
        rate_limit_every: Option<u64>,
    },
    /// Azure: the AD v2 client-credentials token endpoint (`/{tenant}/oauth2/v2.0/token`) and ARM's
    /// virtual machine listing of one subscription.
    Azure {
        /// Address to listen on; port 0 picks a free port (the real one is printed).
        #[arg(long, default_value = "127.0.0.1:8785")]
        listen: SocketAddr,
        /// Tenant in the token endpoint's path.
        #[arg(long, default_value = "demo-tenant")]
        tenant: String,
        /// Client id expected by the token endpoint.
        #[arg(long, default_value = "demo-azure-client")]
        client_id: String,
        /// Client secret expected by the token endpoint.
        #[arg(long, default_value = "demo-azure-secret", hide_default_value = true)]
        client_secret: String,
        /// Subscription id.
        #[arg(long, default_value = "2f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0")]
        subscription: String,
        /// Number of seeded virtual machines.
        #[arg(long, default_value_t = 57)]
        vms: usize,
        /// Seed of the generated data set: the same seed gives the same data.
        #[arg(long, default_value_t = 23)]
        seed: u64,
        /// Answer every N-th ARM request with 429 + Retry-After (off unless given).
        #[arg(long, value_name = "N")]
        rate_limit_every: Option<u64>,
    },
    /// Microsoft Graph v1.0: the Azure AD v2 token endpoint (`/{tenant}/oauth2/v2.0/token`),
    /// users (with delta), devices, managed devices, mail (delta), calendarView, Teams chat and
    /// channel messages, drive items and `POST /search/query`.
    Msgraph {
        /// Address to listen on; port 0 picks a free port (the real one is printed).
        #[arg(long, default_value = "127.0.0.1:8789")]
        listen: SocketAddr,
        /// Tenant in the token endpoint's path.
        #[arg(long, default_value = "demo-tenant")]
        tenant: String,
        /// Client id expected by the token endpoint.
        #[arg(long, default_value = "demo-graph-client")]
        client_id: String,
        /// Client secret expected by the token endpoint.
        #[arg(long, default_value = "demo-graph-secret", hide_default_value = true)]
        client_secret: String,
        /// Number of seeded users (the first three have mailboxes).
        #[arg(long, default_value_t = 140)]
        users: usize,
        /// Number of seeded Entra devices.
        #[arg(long, default_value_t = 75)]
        devices: usize,
        /// Seed of the generated data set: the same seed gives the same data.
        #[arg(long, default_value_t = 29)]
        seed: u64,
        /// Lifetime (`expires_in`) of issued tokens, in seconds.
        #[arg(long, default_value_t = 3599)]
        token_lifetime_secs: u64,
        /// Answer every N-th Graph request with 429 + Retry-After (off unless given).
        #[arg(long, value_name = "N")]
        rate_limit_every: Option<u64>,
    },
    /// Start every fake on its default port with demo credentials (used by `make run`).
    Demo,
}

/// The whole `fake-saas` command.
#[tokio::main]
pub async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-saas: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> std::io::Result<()> {
    let fakes = match cli.command {
        Command::Confluence {
            listen,
            email,
            api_token,
            pages,
            spaces,
            seed,
            rate_limit_every,
        } => {
            let opts = ConfluenceOptions {
                email,
                api_token,
                pages,
                spaces,
                seed,
                rate_limit_every,
            };
            vec![started("confluence", listen, spawn_confluence(listen, opts)).await?]
        }
        Command::Zendesk {
            listen,
            email,
            api_token,
            tickets,
            articles,
            seed,
            incremental_limit,
            recent_exclusion_secs,
        } => {
            let opts = ZendeskOptions {
                email,
                api_token,
                tickets,
                articles,
                seed,
                incremental_limit_per_minute: incremental_limit,
                recent_exclusion_secs,
                ..ZendeskOptions::default()
            };
            vec![started("zendesk", listen, spawn_zendesk(listen, opts)).await?]
        }
        Command::Jira {
            listen,
            email,
            api_token,
            requests,
            articles,
            seed,
            rate_limit_every,
        } => {
            let opts = JiraOptions {
                email,
                api_token,
                requests,
                articles,
                seed,
                rate_limit_every,
                ..JiraOptions::default()
            };
            vec![started("jira", listen, spawn_jira(listen, opts)).await?]
        }
        Command::Openai {
            listen,
            mode,
            api_key,
        } => {
            let opts = OpenAiOptions {
                mode,
                api_key,
                ..OpenAiOptions::default()
            };
            vec![started("openai", listen, spawn_openai(listen, opts)).await?]
        }
        Command::Atera {
            listen,
            api_key,
            tickets,
            seed,
            rate_limit_every,
        } => {
            let opts = AteraOptions {
                api_key,
                tickets,
                seed,
                rate_limit_every,
            };
            vec![started("atera", listen, spawn_atera(listen, opts)).await?]
        }
        Command::Azure {
            listen,
            tenant,
            client_id,
            client_secret,
            subscription,
            vms,
            seed,
            rate_limit_every,
        } => {
            let opts = AzureOptions {
                tenant,
                client_id,
                client_secret,
                subscription,
                vms,
                seed,
                rate_limit_every,
                ..AzureOptions::default()
            };
            vec![started("azure", listen, spawn_azure(listen, opts)).await?]
        }
        Command::Msgraph {
            listen,
            tenant,
            client_id,
            client_secret,
            users,
            devices,
            seed,
            token_lifetime_secs,
            rate_limit_every,
        } => {
            let opts = MsGraphOptions {
                tenant,
                client_id,
                client_secret,
                users,
                devices,
                seed,
                token_lifetime_secs,
                rate_limit_every,
                ..MsGraphOptions::default()
            };
            vec![started("msgraph", listen, spawn_msgraph(listen, opts)).await?]
        }
        Command::Demo => {
            let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
            let lmstudio = OpenAiOptions {
                mode: OpenAiMode::LmStudio,
                ..OpenAiOptions::default()
            };
            let azure_openai = OpenAiOptions {
                mode: OpenAiMode::Azure,
                api_key: "demo-azure-openai-key".into(),
                ..OpenAiOptions::default()
            };
            vec![
                started(
                    "confluence",
                    at(8781),
                    spawn_confluence(at(8781), Default::default()),
                )
                .await?,
                started(
                    "zendesk",
                    at(8782),
                    spawn_zendesk(at(8782), Default::default()),
                )
                .await?,
                started("jira", at(8783), spawn_jira(at(8783), Default::default())).await?,
                started("atera", at(8784), spawn_atera(at(8784), Default::default())).await?,
                started("azure", at(8785), spawn_azure(at(8785), Default::default())).await?,
                started(
                    "openai",
                    at(8786),
                    spawn_openai(at(8786), Default::default()),
                )
                .await?,
                started("lmstudio", at(8787), spawn_openai(at(8787), lmstudio)).await?,
                started(
                    "azure-openai",
                    at(8788),
                    spawn_openai(at(8788), azure_openai),
                )
                .await?,
                started(
                    "msgraph",
                    at(8789),
                    spawn_msgraph(at(8789), Default::default()),
                )
                .await?,
            ]
        }
    };
    let mut out = std::io::stdout().lock();
    for (name, fake) in &fakes {
        writeln!(out, "{name} listening on {}", fake.base_url())?;
    }
    out.flush()?;
    drop(out);
    // Run until Ctrl-C, or until every fake was stopped through `POST /_fake/shutdown`.
    let all_stopped = async {
        for (_, fake) in &fakes {
            fake.stopped().await;
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        () = all_stopped => {}
    }
    for (_, fake) in &fakes {
        fake.shutdown().await;
    }
    Ok(())
}
