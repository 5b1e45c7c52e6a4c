//! Typed connector settings: a connector declares its `[connector.settings]` as a struct and the
//! SDK reads each field from the host, parses it (numbers, booleans, `Option`s, defaults) and
//! reports a missing or malformed value as `invalid-input` naming the key.
//!
//! ```ignore
//! #[derive(serde::Deserialize)]
//! struct Settings {
//!     base_url: BaseUrl,              // http(s) only, trailing `/` dropped
//!     #[serde(default)]
//!     space_keys: List,               // "ENG, OPS" -> ["ENG", "OPS"]
//!     page_size: Option<u32>,
//! }
//! let s: Settings = airlock_sdk::settings::load()?;
//! Request::get(s.base_url.join("/rest/api/space")).send()?;
//! ```
//!
//! Parsing string values into typed fields is the [`envy`] crate's (it does the same for
//! environment variables); the SDK only asks the host for the struct's own field names, so
//! `#[serde(flatten)]` is not supported.

use std::ops::RangeInclusive;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, url};

/// Reads the struct `T` from the host's settings: one `setting(field)` per field.
pub fn load<T: DeserializeOwned>() -> Result<T> {
    from_lookup(crate::host::setting)
}

/// [`load`] over any lookup, so mapping code can be unit-tested natively.
pub fn from_lookup<T: DeserializeOwned>(lookup: impl Fn(&str) -> Option<String>) -> Result<T> {
    let present = field_names::<T>()
        .iter()
        .filter_map(|&key| lookup(key).map(|value| (key.to_owned(), value)));
    envy::from_iter(present).map_err(|e| match e {
        envy::Error::MissingValue(key) => {
            Error::invalid_input(format!("setting `{key}` is required but not set"))
        }
        envy::Error::Custom(message) => {
            Error::invalid_input(format!("invalid connector settings: {message}"))
        }
    })
}

/// [`load`] for settings whose `base_url` is a site root that an operator may paste with the
/// API's path (`https://acme.zendesk.com/api/v2`): a trailing `api_path` is dropped
/// ([`BaseUrl::without_suffix`]), so requests can put it back where they need it.
pub fn load_site<T: DeserializeOwned>(api_path: &str) -> Result<T> {
    site_from_lookup(api_path, crate::host::setting)
}

/// [`load_site`] over any lookup.
pub fn site_from_lookup<T: DeserializeOwned>(
    api_path: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<T> {
    from_lookup(|key| {
        let value = lookup(key)?;
        Some(match (key, BaseUrl::parse(&value)) {
            ("base_url", Ok(base)) => base.without_suffix(api_path).0,
            _ => value,
        })
    })
}

/// The field names serde uses for `T` (a struct), asked of its `Deserialize` impl.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Names<'a>(&'a mut &'static [&'static str]);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names read")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for Names<'_> {
        type Error = Stop;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> std::result::Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, Stop> {
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Names(&mut fields));
    fields
}

/// An `http`/`https` base URL from a setting, without a trailing `/`, query or fragment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// `value` checked: scheme `http` or `https`, a host, no query or fragment.
    pub fn parse(value: &str) -> std::result::Result<BaseUrl, String> {
        let value = value.trim();
        let parts = url::split(value).filter(|p| matches!(p.scheme, "http" | "https"));
        match parts {
            Some(p) if !p.authority.is_empty() && !value.contains(['?', '#']) => {
                Ok(BaseUrl(value.trim_end_matches('/').to_owned()))
            }
            _ => Err(format!("`{value}` is not an http(s) base URL")),
        }
    }

    /// The URL as configured, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same URL without a trailing `suffix` an operator may have pasted (e.g. `/api/v3`).
    pub fn without_suffix(self, suffix: &str) -> BaseUrl {
        match self.0.strip_suffix(suffix) {
            Some(rest) if url::split(rest).is_some() => BaseUrl(rest.to_owned()),
            _ => self,
        }
    }

    /// `path` (starting with `/`) under this base.
    pub fn join(&self, path: &str) -> String {
        // Not `format!`: a link per synced record is made here.
        [self.0.as_str(), path].concat()
    }

    /// A GET of `path` (starting with `/`) under this base.
    pub fn get(&self, path: &str) -> crate::Request {
        crate::Request::get(self.join(path))
    }

    /// A POST to `path` (starting with `/`) under this base.
    pub fn post(&self, path: &str) -> crate::Request {
        crate::Request::post(self.join(path))
    }

    /// The API root `path` (a constant such as `/api/v2`, starting with `/`) under this base: a
    /// base of its own, so [`BaseUrl::follow`] keeps links under the API, not just the site.
    pub fn under(&self, path: &str) -> BaseUrl {
        BaseUrl(self.join(path.trim_end_matches('/')))
    }

    /// A link the upstream handed out (absolute, or relative to `path` under this base),
    /// resolved and accepted only when it stays under this base: a reply must not steer the
    /// connector to another host or outside the configured site. `upstream` error otherwise.
    pub fn follow(&self, path: &str, link: &str) -> Result<String> {
        let resolved = url::resolve(&self.join(path), link.trim());
        let inside = resolved
            .strip_prefix(&self.0)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
        if inside {
            Ok(resolved)
        } else {
            Err(Error::upstream(format!(
                "a next link leaves {}: {}",
                self.0,
                url::path(&resolved)
            )))
        }
    }

    /// A link into the upstream's web UI that it gives relative to the app mounted at `root`
    /// under this base (Confluence's `webui` paths are relative to `/wiki`): an absolute link as
    /// it is, a path already under `root` joined to this base, any other path to `root`.
    pub fn app_link(&self, root: &str, link: &str) -> String {
        let under_root = link
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'));
        match link {
            l if l.starts_with("http://") || l.starts_with("https://") => l.to_owned(),
            l if under_root => self.join(l),
            l => self.join(&format!("{root}{l}")),
        }
    }

    /// [`BaseUrl::follow`] for a link the upstream may leave out: `None` when it is absent or
    /// blank (the last page), the resolved link when it stays under this base, else an error.
    pub fn follow_opt(&self, path: &str, link: Option<&str>) -> Result<Option<String>> {
        let link = link.map(str::trim).filter(|l| !l.is_empty());
        link.map(|l| self.follow(path, l)).transpose()
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        BaseUrl::parse(&value).map_err(de::Error::custom)
    }
}

/// A comma-separated setting (`"ENG, OPS"`) as its trimmed, non-empty items.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct List(pub Vec<String>);

impl List {
    /// The items, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether the setting named no item.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The items of the setting `key` (this list; items may also be on lines of their own), each
    /// as `segments` ids separated by `/` (`teamId/channelId`: 2), each one URL path segment
    /// ([`crate::ids::is_segment`]); `invalid-input` naming the item otherwise.
    pub fn paths(&self, key: &str, segments: usize) -> Result<Vec<Vec<String>>> {
        let items = self.iter().flat_map(|s| s.split('\n')).map(str::trim);
        let parse = |item: &str| {
            let parts: Vec<String> = item.split('/').map(str::to_owned).collect();
            let ok = parts.len() == segments && parts.iter().all(|p| crate::ids::is_segment(p));
            ok.then_some(parts).ok_or_else(|| {
                let want = match segments {
                    1 => "an id".to_owned(),
                    n => format!("{n} ids separated by `/`"),
                };
                Error::invalid_input(format!("setting `{key}`: expected {want}, got {item:?}"))
            })
        };
        items.filter(|s| !s.is_empty()).map(parse).collect()
    }
}

/// The setting `key` (`value`, else `default`) when it can be one URL path segment
/// ([`crate::ids::is_segment`]), e.g. a folder name; `invalid-input` naming the key otherwise.
pub fn segment(key: &str, value: Option<String>, default: &str) -> Result<String> {
    let value = value.unwrap_or_else(|| default.to_owned());
    let bad = || format!("setting `{key}` is not usable as a URL path segment: {value:?}");
    match crate::ids::is_segment(&value) {
        true => Ok(value),
        false => Err(Error::invalid_input(bad())),
    }
}

/// The number setting `key`: `value`, or `default` when unset; `invalid-input` when it is outside
/// `range` (a setting the operator got wrong is reported, not silently clamped).
pub fn within<T>(key: &str, value: Option<T>, default: T, range: RangeInclusive<T>) -> Result<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    let n = value.unwrap_or(default);
    let (min, max) = (range.start(), range.end());
    let bad = || format!("setting `{key}` must be a whole number in {min}..={max}: {n}");
    range
        .contains(&n)
        .then_some(n)
        .ok_or_else(|| Error::invalid_input(bad()))
}

/// A page-size setting: `DEFAULT` when unset, else the number given brought into `1..=MAX`
/// (an upstream refuses a larger page; a smaller one only costs requests). A value that is not
/// a whole number is `invalid-input` like any other.
///
/// ```ignore
/// #[serde(default)]
/// page_size: PageSize<50, 100>,
/// // ...
/// .query("limit", s.page_size.get().to_string())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize<const DEFAULT: u32, const MAX: u32>(u32);

impl<const DEFAULT: u32, const MAX: u32> PageSize<DEFAULT, MAX> {
    /// The page size to ask for.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<const DEFAULT: u32, const MAX: u32> Default for PageSize<DEFAULT, MAX> {
    fn default() -> Self {
        PageSize(DEFAULT.clamp(1, MAX))
    }
}

impl<'de, const DEFAULT: u32, const MAX: u32> Deserialize<'de> for PageSize<DEFAULT, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(PageSize(u32::deserialize(d)?.clamp(1, MAX)))
    }
}

/// Serde `deserialize_with` for a setting read in any case (`flavor = "Azure"`): the value is
/// lowercased, then read as `T`, typically an enum with `#[serde(rename_all = "lowercase")]`
/// or `"kebab-case"`. A value that is none of them is `invalid-input` naming the choices.
///
/// ```ignore
/// #[serde(default, deserialize_with = "airlock_sdk::settings::any_case")]
/// flavor: Flavor,
/// ```
pub fn any_case<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> std::result::Result<T, D::Error> {
    use serde::de::IntoDeserializer;
    let value = String::deserialize(d)?.trim().to_lowercase();
    let lower: de::value::StringDeserializer<D::Error> = value.into_deserializer();
    T::deserialize(lower)
}

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        let items = value.split(',').map(str::trim).filter(|s| !s.is_empty());
        Ok(List(items.map(str::to_owned).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Settings {
        base_url: BaseUrl,
        #[serde(default)]
        spaces: List,
        page_size: Option<u32>,
        #[serde(default = "yes")]
        follow: bool,
    }

    fn yes() -> bool {
        true
    }

    #[test]
    fn a_site_root_loses_a_pasted_api_path_and_other_settings_stay() {
        #[derive(Deserialize)]
        struct Site {
            base_url: BaseUrl,
            path: Option<String>,
        }
        let site = |url: &str| {
            let pairs = [("base_url", url), ("path", "/api/v2")];
            site_from_lookup::<Site>("/api/v2", lookup(&pairs)).unwrap()
        };
        let s = site("https://acme.zendesk.com/api/v2/");
        assert_eq!(s.base_url.as_str(), "https://acme.zendesk.com");
        assert_eq!(
            s.path.as_deref(),
            Some("/api/v2"),
            "only `base_url` is trimmed"
        );
        let kept = site("https://acme.zendesk.com/help/api/v3");
        assert_eq!(
            kept.base_url.as_str(),
            "https://acme.zendesk.com/help/api/v3"
        );
        let bad = site_from_lookup::<Site>("/api/v2", lookup(&[("base_url", "ftp://x/api/v2")]));
        assert!(matches!(bad, Err(Error::InvalidInput(m)) if m.contains("ftp://x/api/v2")));
    }

    #[test]
    fn app_links_are_joined_under_their_root_unless_absolute() {
        let base = BaseUrl::parse("https://acme.atlassian.net").unwrap();
        let link = |l: &str| base.app_link("/wiki", l);
        assert_eq!(
            link("/spaces/ENG/pages/1/X"),
            "https://acme.atlassian.net/wiki/spaces/ENG/pages/1/X"
        );
        assert_eq!(link("/wiki/x"), "https://acme.atlassian.net/wiki/x");
        assert_eq!(link("/wikis"), "https://acme.atlassian.net/wiki/wikis");
        assert_eq!(link("https://elsewhere/x"), "https://elsewhere/x");
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn settings_are_typed_defaulted_and_checked_by_field() {
        let s: Settings = from_lookup(lookup(&[
            ("base_url", "https://x.example.com/"),
            ("spaces", " ENG, ,OPS "),
            ("page_size", "50"),
            ("unrelated", "1"),
        ]))
        .unwrap();
        assert_eq!(s.base_url.as_str(), "https://x.example.com");
        assert_eq!(s.spaces.iter().collect::<Vec<_>>(), ["ENG", "OPS"]);
        assert_eq!((s.page_size, s.follow), (Some(50), true));

        let Err(Error::InvalidInput(m)) = from_lookup::<Settings>(lookup(&[])) else {
            panic!("a missing base URL must be refused")
        };
        assert_eq!(m, "setting `base_url` is required but not set");
        let Err(Error::InvalidInput(m)) =
            from_lookup::<Settings>(lookup(&[("base_url", "http://h"), ("page_size", "fifty")]))
        else {
            panic!("a non-number page size must be refused")
        };
        assert!(m.contains("page_size"), "{m}");
    }

    #[test]
    fn a_page_size_defaults_and_is_brought_into_range() {
        #[derive(Deserialize)]
        struct S {
            #[serde(default)]
            page_size: PageSize<50, 100>,
        }
        let size = |v: &[(&str, &str)]| from_lookup::<S>(lookup(v)).map(|s| s.page_size.get());
        assert_eq!(size(&[]).unwrap(), 50);
        assert_eq!(size(&[("page_size", "7")]).unwrap(), 7);
        assert_eq!(size(&[("page_size", "0")]).unwrap(), 1);
        assert_eq!(size(&[("page_size", "5000")]).unwrap(), 100);
        assert!(matches!(
            size(&[("page_size", "many")]),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn a_choice_is_read_in_any_case_and_an_unknown_one_refused() {
        #[derive(Deserialize, Debug, PartialEq, Default)]
        #[serde(rename_all = "kebab-case")]
        enum Mode {
            #[default]
            EveryRun,
            Off,
        }
        #[derive(Deserialize)]
        struct S {
            #[serde(default, deserialize_with = "any_case")]
            mode: Mode,
        }
        let mode = |v: &str| from_lookup::<S>(lookup(&[("mode", v)])).map(|s| s.mode);
        assert_eq!(mode(" Every-Run ").unwrap(), Mode::EveryRun);
        assert_eq!(mode("OFF").unwrap(), Mode::Off);
        assert_eq!(from_lookup::<S>(lookup(&[])).unwrap().mode, Mode::EveryRun);
        let Err(Error::InvalidInput(m)) = mode("sometimes") else {
            panic!("an unknown choice must be refused")
        };
        assert!(m.contains("sometimes") && m.contains("every-run"), "{m}");
    }

    #[test]
    fn list_items_as_paths_and_numbers_within_a_range() {
        let list = List(vec!["t1/c1".into(), "t2/c2\n t3/c3 ".into()]);
        let paths = list.paths("channels", 2).unwrap();
        assert_eq!(paths, [["t1", "c1"], ["t2", "c2"], ["t3", "c3"]]);
        let Err(Error::InvalidInput(m)) = list.paths("chats", 1) else {
            panic!("two segments where one is wanted")
        };
        assert_eq!(m, "setting `chats`: expected an id, got \"t1/c1\"");
        for bad in ["t/..", "t/", "t/c?x"] {
            assert!(
                List(vec![bad.into()]).paths("channels", 2).is_err(),
                "{bad}"
            );
        }
        assert!(List::default().paths("chats", 1).unwrap().is_empty());
        assert_eq!(segment("folder", None, "inbox").unwrap(), "inbox");
        assert_eq!(
            segment("folder", Some("AQMk=".into()), "inbox").unwrap(),
            "AQMk="
        );
        for bad in ["..", "a/b", "a?b"] {
            let e = segment("folder", Some(bad.into()), "inbox");
            assert!(
                matches!(&e, Err(Error::InvalidInput(m)) if m.contains("`folder`")),
                "{bad}"
            );
        }
        assert_eq!(within("page_size", None, 100, 1..=999).unwrap(), 100);
        assert_eq!(within("page_size", Some(999), 100, 1..=999).unwrap(), 999);
        let Err(Error::InvalidInput(m)) = within("page_size", Some(0), 100, 1..=999) else {
            panic!("0 is outside 1..=999")
        };
        assert_eq!(
            m,
            "setting `page_size` must be a whole number in 1..=999: 0"
        );
    }

    #[test]
    fn a_base_url_is_http_without_query_and_links_must_stay_under_it() {
        for bad in [
            "ftp://h",
            "h.example.com",
            "https://",
            "https://h/?a=1",
            "https://h/#x",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
        let Err(Error::InvalidInput(m)) =
            from_lookup::<Settings>(lookup(&[("base_url", "file:///etc")]))
        else {
            panic!("a file URL must be refused")
        };
        assert!(m.contains("file:///etc"), "{m}");

        let base = BaseUrl::parse("https://h.example.com/api/v3/").unwrap();
        let base = base.without_suffix("/api/v3");
        assert_eq!(
            base.join("/api/v3/tickets"),
            "https://h.example.com/api/v3/tickets"
        );
        assert_eq!(
            base.follow("/api/v3/tickets", "?page=2").unwrap(),
            "https://h.example.com/api/v3/tickets?page=2"
        );
        assert_eq!(
            base.follow("/", "https://h.example.com/api/v3/x?page=2")
                .unwrap(),
            "https://h.example.com/api/v3/x?page=2"
        );
        assert_eq!(base.get("/x").url(), "https://h.example.com/x");
        assert_eq!(base.post("/y").method(), crate::Method::Post);
        let api = base.under("/api/v3/");
        assert_eq!(api.join("/x"), "https://h.example.com/api/v3/x");
        assert!(
            api.follow("/x", "/other/y").is_err(),
            "a link must stay under the API root"
        );
        assert_eq!(
            api.follow_opt("/x", Some("?page=3")).unwrap().as_deref(),
            Some("https://h.example.com/api/v3/x?page=3")
        );
        assert_eq!(
            api.follow_opt("/x", Some("  ")).unwrap(),
            None,
            "blank: no next page"
        );
        assert_eq!(api.follow_opt("/x", None).unwrap(), None);
        assert!(
            api.follow_opt("/x", Some("https://evil.example.com/"))
                .is_err()
        );
        for bad in [
            "https://evil.example.com/api/v3/x",
            "https://h.example.com.evil/x",
        ] {
            assert!(
                matches!(base.follow("/", bad), Err(Error::Upstream(_))),
                "{bad}"
            );
        }
        let sub = BaseUrl::parse("https://h.example.com/wiki").unwrap();
        assert!(sub.follow("/", "/other/x").is_err());
        assert!(sub.follow("/", "/wiki-evil/x").is_err());
        assert!(
            sub.follow("/rest/api/content", "/wiki/rest/api/content?start=25")
                .is_ok()
        );
    }
}
