//! Connector settings, read from the host on every call (instances are stateless).

use std::ops::RangeInclusive;

use airlock_sdk::{BaseUrl, Error, List, Result};
use serde::Deserialize;

use crate::documents::safe_segment;

/// The settings as the operator writes them (see docs/connectors/msgraph.md); blank is unset.
#[derive(Deserialize)]
struct Settings {
    base_url: Option<BaseUrl>,
    #[serde(default)]
    mailboxes: List,
    mail_folder: Option<String>,
    events_past_days: Option<i64>,
    events_future_days: Option<i64>,
    #[serde(default)]
    chats: List,
    #[serde(default)]
    channels: List,
    page_size: Option<i64>,
    search_region: Option<String>,
}

pub struct Config {
    /// Service root without `/v1.0`, e.g. `https://graph.microsoft.com`.
    pub base: BaseUrl,
    /// `{base}/v1.0`: every request and every followed link stays under it.
    api: BaseUrl,
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
        let api = base.under("/v1.0");
        let mail_folder = s.mail_folder.unwrap_or_else(|| "inbox".into());
        if !safe_segment(&mail_folder) {
            return Err(Error::invalid_input(format!(
                "setting `mail_folder` is not a folder id or well-known name: {mail_folder:?}"
            )));
        }
        Ok(Config {
            base,
            api,
            mailboxes: ids("mailboxes", &s.mailboxes, 1)?,
            mail_folder,
            past_days: number("events_past_days", s.events_past_days, 30, 0..=3650)?,
            future_days: number("events_future_days", s.events_future_days, 90, 0..=3650)?,
            chats: ids("chats", &s.chats, 1)?,
            channels: ids("channels", &s.channels, 2)?,
            page_size: number("page_size", s.page_size, 100, 1..=999)?,
            region: s.search_region.unwrap_or_else(|| "NAM".into()),
        })
    }

    pub fn api(&self, path: &str) -> String {
        self.api.join(path)
    }

    /// A link from the upstream (`@odata.nextLink`/`@odata.deltaLink`), accepted only under the
    /// configured service root so a reply cannot steer the connector elsewhere; `None` if absent.
    pub fn link(&self, link: Option<&str>) -> Result<Option<String>> {
        self.api.follow_opt("/", link)
    }
}

const GRAPH: &str = "https://graph.microsoft.com";

/// The items of a list setting (comma- or newline-separated), each as `segments` ids joined by
/// `/` (`teamId/channelId` for channels); an id unusable in a URL path is refused.
fn ids(key: &str, list: &List, segments: usize) -> Result<Vec<Vec<String>>> {
    let items = list.iter().flat_map(|s| s.split('\n')).map(str::trim);
    let parse = |item: &str| {
        let parts: Vec<String> = item.split('/').map(str::to_owned).collect();
        let ok = parts.len() == segments && parts.iter().all(|p| safe_segment(p));
        ok.then_some(parts).ok_or_else(|| {
            let want = ["an id", "`teamId/channelId`"][segments - 1];
            Error::invalid_input(format!("setting `{key}`: expected {want}, got {item:?}"))
        })
    };
    items.filter(|s| !s.is_empty()).map(parse).collect()
}

fn number(key: &str, value: Option<i64>, default: i64, range: RangeInclusive<i64>) -> Result<i64> {
    let n = value.unwrap_or(default);
    let (min, max) = range.clone().into_inner();
    let bad = format!("setting `{key}` must be a whole number in {min}..={max}: {n}");
    range
        .contains(&n)
        .then_some(n)
        .ok_or(Error::invalid_input(bad))
}
