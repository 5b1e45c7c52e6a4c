//! Connector settings, read from the host on every call (instances are stateless).

use airlock_sdk::settings::{segment, within};
use airlock_sdk::{BaseUrl, Error, List, Result};
use serde::Deserialize;

/// The settings as the operator writes them (see docs/connectors/msgraph.md); blank is unset.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Settings {
    base_url: Option<BaseUrl>,
    mailboxes: List,
    mail_folder: Option<String>,
    events_past_days: Option<i64>,
    events_future_days: Option<i64>,
    chats: List,
    channels: List,
    page_size: Option<i64>,
    search_region: Option<String>,
}

pub struct Config {
    /// `{base}/v1.0`: every request and every followed link stays under it.
    pub api: BaseUrl,
    /// Mailboxes, chats and channels as the path segments of their listings (`[team, channel]`).
    pub mailboxes: Vec<Vec<String>>,
    pub mail_folder: String,
    pub past_days: i64,
    pub future_days: i64,
    pub chats: Vec<Vec<String>>,
    pub channels: Vec<Vec<String>>,
    pub page_size: i64,
    pub region: String,
}

impl Config {
    pub fn load() -> Result<Config> {
        let s: Settings = airlock_sdk::settings::load()?;
        let root = s.base_url.map_or_else(|| BaseUrl::parse(GRAPH), Ok);
        let base = root.map_err(Error::internal)?.without_suffix("/v1.0");
        Ok(Config {
            api: base.under("/v1.0"),
            mailboxes: s.mailboxes.paths("mailboxes", 1)?,
            mail_folder: segment("mail_folder", s.mail_folder, "inbox")?,
            past_days: within("events_past_days", s.events_past_days, 30, 0..=3650)?,
            future_days: within("events_future_days", s.events_future_days, 90, 0..=3650)?,
            chats: s.chats.paths("chats", 1)?,
            channels: s.channels.paths("channels", 2)?,
            page_size: within("page_size", s.page_size, 100, 1..=999)?,
            region: s.search_region.unwrap_or_else(|| "NAM".into()),
        })
    }

    /// A link from the upstream (`@odata.nextLink`/`@odata.deltaLink`), accepted only under the
    /// configured service root so a reply cannot steer the connector elsewhere; `None` if absent.
    pub fn link(&self, link: Option<&str>) -> Result<Option<String>> {
        self.api.follow_opt("/", link)
    }
}

const GRAPH: &str = "https://graph.microsoft.com";
