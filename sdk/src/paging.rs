//! Pagination helpers for the three common styles: a next link in the body (absolute or
//! relative), a `Link: <...>; rel="next"` header, and a cursor field in the body that goes back
//! as a query parameter.
//!
//! Inside one call, iterate with [`Pages`]:
//!
//! ```ignore
//! for page in Pages::new(Request::get(url), Next::BodyLink("/_links/next")).take(20) {
//!     let page = page?; // serde_json::Value
//! }
//! ```
//!
//! Across `sync` calls, store the next link or cursor in your own cursor and use [`next_link`],
//! [`link_header_next`] or [`cursor`] directly.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Request, Response, Result, url};

/// How a paged API points at its next page.
#[derive(Clone, Debug)]
pub enum Next {
    /// A URL (absolute or relative to the current request) at this JSON pointer, e.g.
    /// `/_links/next` or `/@odata.nextLink`.
    BodyLink(&'static str),
    /// The `Link` header's `rel="next"` target.
    LinkHeader,
    /// A cursor at JSON pointer `field`, sent back as query parameter `param` on the first request.
    Cursor {
        /// JSON pointer of the cursor in the body, e.g. `/nextPageToken`.
        field: &'static str,
        /// Query parameter that carries it, e.g. `nextPageToken`.
        param: &'static str,
    },
    /// [`Next::Cursor`] for an API that sends a cursor on its last page too and says whether
    /// there is more with a boolean at JSON pointer `more` (Zendesk's `meta.has_more` beside
    /// `meta.after_cursor`): the listing ends unless that is `true`.
    CursorWhile {
        /// JSON pointer of the cursor in the body, e.g. `/meta/after_cursor`.
        field: &'static str,
        /// Query parameter that carries it, e.g. `page[after]`.
        param: &'static str,
        /// JSON pointer of the "more pages" flag, e.g. `/meta/has_more`.
        more: &'static str,
    },
}

impl Next {
    /// [`Next::CursorWhile`]: the cursor at JSON pointer `field` goes back as query parameter
    /// `param` while the flag at JSON pointer `more` is `true`.
    ///
    /// ```ignore
    /// let next = Next::cursor_while("/meta/after_cursor", "page[after]", "/meta/has_more");
    /// ```
    pub const fn cursor_while(
        field: &'static str,
        param: &'static str,
        more: &'static str,
    ) -> Self {
        Next::CursorWhile { field, param, more }
    }
}

/// The `rel="next"` target of a `Link` header value (RFC 8288), unresolved.
pub fn link_header_next(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let target = rest.strip_prefix('<')?;
        let close = target.find('>')?;
        let link = &target[..close];
        rest = &target[close + 1..];
        // Parameters run to the next comma outside quotes.
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                quoted ^= c == '"';
                c == ',' && !quoted
            })
            .map_or(rest.len(), |(i, _)| i);
        let is_next = rest[..end].split(';').any(|param| {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            key.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(link.to_owned());
        }
        rest = &rest[end..];
    }
}

/// The next-page URL at JSON pointer `pointer` in `body`, resolved against `base` (the URL of the
/// request that returned `body`, or the API's root). `None` when absent, null or empty.
pub fn next_link(body: &Value, pointer: &str, base: &str) -> Option<String> {
    let link = body.pointer(pointer)?.as_str()?.trim();
    (!link.is_empty()).then(|| url::resolve(base, link))
}

/// The cursor at JSON pointer `pointer` in `body` (a non-empty string, or a number).
pub fn cursor(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The request for the page after the one `current` fetched, if any. `first` is the first
/// request (cursor style re-sends it with the cursor). Returns `None` when the API points back
/// at the same URL, so a misbehaving upstream cannot loop forever.
pub fn next_request(
    first: &Request,
    current: &Request,
    headers: &[(String, String)],
    body: &Value,
    next: &Next,
) -> Option<Request> {
    let request = match next {
        Next::BodyLink(pointer) => current.with_url(next_link(body, pointer, current.url())?),
        Next::LinkHeader => {
            let (_, value) = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("link"))?;
            current.with_url(url::resolve(current.url(), &link_header_next(value)?))
        }
        Next::Cursor { field, param } => first.clone().query(param, cursor(body, field)?),
        Next::CursorWhile { field, param, more } => {
            let more = body.pointer(more).and_then(Value::as_bool) == Some(true);
            first
                .clone()
                .query(param, cursor(body, field).filter(|_| more)?)
        }
    };
    (request.url() != current.url()).then_some(request)
}

/// Every item of a listing read page by page within one call. `fetch(&at)` returns the items of
/// the page at `at` (starting with `first`) and where the next page is (`None` on the last). It
/// stops when the upstream points back at the page it just read (so it cannot loop), and after
/// `max_pages` pages with a warning naming `what`: one record's comments must not hold a sync
/// call forever. Items are typed, so a malformed record fails the call instead of vanishing.
///
/// ```ignore
/// let comments: Vec<Comment> = paging::collect("comments of SD-1", 50, 0, |&start| {
///     let page: JsmPage<Comment> = jsm(&path, start, 100)?;
///     let next = paging::next_offset(start, page.size, page.is_last_page);
///     Ok((page.values, next))
/// })?;
/// ```
pub fn collect<T, P: PartialEq>(
    what: &str,
    max_pages: usize,
    first: P,
    fetch: impl FnMut(&P) -> Result<(Vec<T>, Option<P>)>,
) -> Result<Vec<T>> {
    let (items, complete) = walk(max_pages, first, fetch)?;
    if !complete {
        crate::log::warn!("{what}: stopped after {max_pages} pages");
    }
    Ok(items)
}

/// [`collect`] for a listing that must be read whole (a group's members in an ACL): reaching
/// `max_pages` is an `upstream` error naming `what`, not a silently shortened list.
pub fn complete<T, P: PartialEq>(
    what: &str,
    max_pages: usize,
    first: P,
    fetch: impl FnMut(&P) -> Result<(Vec<T>, Option<P>)>,
) -> Result<Vec<T>> {
    match walk(max_pages, first, fetch)? {
        (items, true) => Ok(items),
        (_, false) => Err(Error::upstream(format!(
            "{what}: the listing does not end within {max_pages} pages"
        ))),
    }
}

/// [`collect`] without the log line (the host's log is not there in native tests); also says
/// whether the listing was read to its end.
fn walk<T, P: PartialEq>(
    max_pages: usize,
    first: P,
    mut fetch: impl FnMut(&P) -> Result<(Vec<T>, Option<P>)>,
) -> Result<(Vec<T>, bool)> {
    let (mut out, mut at) = (Vec::new(), first);
    for _ in 0..max_pages {
        let (items, next) = fetch(&at)?;
        out.extend(items);
        match next.filter(|next| *next != at) {
            Some(next) => at = next,
            None => return Ok((out, true)),
        }
    }
    Ok((out, false))
}

/// Records looked up in bulk by id (`show_many?ids=1,2,3` style): `ids` sorted and
/// deduplicated, asked `per` at a time as one comma-separated list; the replies' items in order.
///
/// ```ignore
/// let orgs = paging::by_ids(org_ids, 100, |ids| get("/organizations/show_many.json", ids))?;
/// ```
pub fn by_ids<T, I: Ord + std::fmt::Display>(
    ids: impl IntoIterator<Item = I>,
    per: usize,
    mut fetch: impl FnMut(&str) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut ids: Vec<I> = ids.into_iter().collect();
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for chunk in ids.chunks(per.max(1)) {
        let list: Vec<String> = chunk.iter().map(ToString::to_string).collect();
        out.extend(fetch(&list.join(","))?);
    }
    Ok(out)
}

/// [`by_ids`] for records a reply may already carry (sideloaded with a page, as Zendesk's
/// `include=organizations`): those `at_hand` (matched by their numeric `id`) are kept and only
/// the others are looked up; `at_hand` first, then the looked-up ones.
pub fn by_ids_besides(
    ids: impl IntoIterator<Item = u64>,
    mut at_hand: Vec<Value>,
    per: usize,
    fetch: impl FnMut(&str) -> Result<Vec<Value>>,
) -> Result<Vec<Value>> {
    let known: Vec<u64> = at_hand.iter().filter_map(|r| r["id"].as_u64()).collect();
    let missing = ids.into_iter().filter(|id| !known.contains(id));
    at_hand.extend(by_ids(missing, per, fetch)?);
    Ok(at_hand)
}

/// The offset of the page after an offset/limit page (`start`, `limit`, `isLastPage` style) that
/// began at `start` and held `count` items; `None` after the last page or an empty one.
pub fn next_offset(start: u32, count: u32, last: bool) -> Option<u32> {
    (!last && count > 0).then(|| start.saturating_add(count))
}

/// One page of a listing as Atlassian's APIs answer one: the items under `values` (or
/// `results`), `size`, and `isLastPage` or, without it, a `_links.next` on every page but the
/// last. Offset listings (`start` and `limit` in the query) go on with [`ListPage::next`],
/// cursor listings with the link of [`ListPage::next_link`].
///
/// ```ignore
/// let comments = paging::collect(&path, 50, 0, |&start| {
///     let page: ListPage<Value> = get(&path).query("start", start.to_string()).send()?.json()?;
///     Ok(page.items_and_next(start))
/// })?;
/// ```
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage<T> {
    /// The items of this page.
    #[serde(default = "Vec::new", alias = "results")]
    pub values: Vec<T>,
    /// How many items the page holds (the length of `values` when absent).
    #[serde(default)]
    pub size: u32,
    /// Whether this is the last page, when the API says.
    #[serde(default)]
    pub is_last_page: Option<bool>,
    #[serde(default, rename = "_links")]
    links: NextLink,
}

#[derive(Debug, Default, serde::Deserialize)]
struct NextLink {
    next: Option<Value>,
}

impl<T: DeserializeOwned> ListPage<T> {
    /// The page `response` holds. A cursor listing that puts its next link in the `Link` header
    /// rather than in `_links.next` (Confluence v2 may do either) gets it from there
    /// ([`Response::next_link`]: resolved, and only on the API's origin).
    pub fn of(response: &Response) -> Result<Self> {
        let mut page: Self = response.json()?;
        if page.next_link().is_none() {
            page.links.next = response.next_link().map(Value::String);
        }
        Ok(page)
    }
}

impl<T: DeserializeOwned> ListPage<T> {
    /// The page that continues a cursor listing from `link`, the next link a sync cursor kept
    /// (followed only under `path` of `base`: [`crate::BaseUrl::follow_opt`]), or, when there
    /// is none or the upstream refuses it as stale ([`resume_or`], which logs `what`), the
    /// first page from `first()`; and whether it continued.
    ///
    /// ```ignore
    /// let (list, resumed) = ListPage::<Page>::resume(&base, PAGES, next.as_deref(), "pages", first)?;
    /// ```
    pub fn resume(
        base: &crate::BaseUrl,
        path: &str,
        link: Option<&str>,
        what: &str,
        first: impl FnOnce() -> Result<Response>,
    ) -> Result<(Self, bool)> {
        let link = base.follow_opt(path, link)?.map(Request::get);
        let (response, resumed) = resume_or(link, what, first)?;
        Ok((Self::of(&response)?, resumed))
    }
}

impl<T> ListPage<T> {
    /// The offset of the next page of a listing whose page began at `start` ([`next_offset`]):
    /// `None` after the last page (by `isLastPage`, else by the absence of `_links.next`) or
    /// an empty one.
    pub fn next(&self, start: u32) -> Option<u32> {
        let no_link = self.links.next.as_ref().is_none_or(Value::is_null);
        let last = self.is_last_page.unwrap_or(no_link);
        let count = self.size.max(self.values.len() as u32);
        next_offset(start, count, last)
    }

    /// The `_links.next` link (relative, as sent), when there is one.
    pub fn next_link(&self) -> Option<String> {
        let link = self.links.next.as_ref().and_then(Value::as_str);
        link.filter(|l| !l.trim().is_empty()).map(str::to_owned)
    }

    /// The items and the next offset, as [`collect`] takes them.
    pub fn items_and_next(self, start: u32) -> (Vec<T>, Option<u32>) {
        let next = self.next(start);
        (self.values, next)
    }
}

/// The page number after `page` of a page-number listing (`page`, `per_page`), when the upstream
/// says there is `more` and that page still ends within the first `max_results` results (search
/// APIs serve only so many and refuse the pages beyond).
pub fn next_page_number(page: u32, per_page: u32, more: bool, max_results: u32) -> Option<u32> {
    let next = page.checked_add(1)?;
    (more && next.saturating_mul(per_page) <= max_results).then_some(next)
}

/// One page of a live search over a page-number listing (`page`, `per_page`) that serves only
/// its first `max_results` results, as search APIs do (they refuse the pages beyond): the page
/// the search cursor names, and its [`crate::SearchResult`] with the next page's number as the
/// cursor.
///
/// ```ignore
/// PageNumber::of(&request, 25, 100, 1000)?.search(|at| {
///     let reply = search(query, at.page, at.per_page)?;
///     Ok((hits(&reply), reply.next_page.is_some()))
/// })
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageNumber {
    /// The page to ask for, from 1.
    pub page: u32,
    /// Hits per page: the request's limit ([`crate::SearchRequest::limit_or`]).
    pub per_page: u32,
    max_results: u32,
}

impl PageNumber {
    /// The page `request`'s cursor names (1 without one; `invalid-input` for one that is not a
    /// page number) with `request.limit_or(default, max)` hits, under a cap of `max_results`.
    pub fn of(
        request: &crate::SearchRequest,
        default: u32,
        max: u32,
        max_results: u32,
    ) -> Result<PageNumber> {
        let per_page = request.limit_or(default, max);
        let page = crate::cursor::number(request.cursor.as_deref(), 1)?;
        Ok(PageNumber {
            page,
            per_page,
            max_results,
        })
    }

    /// The search result of this page from `fetch(self)` (its hits, and whether the upstream
    /// has more), or no hits without asking when the page would end past the cap.
    pub fn search(
        self,
        fetch: impl FnOnce(&PageNumber) -> Result<(Vec<crate::Document>, bool)>,
    ) -> Result<crate::SearchResult> {
        if self.page.saturating_mul(self.per_page) > self.max_results {
            let hits = Vec::new();
            return Ok(crate::SearchResult {
                hits,
                next_cursor: None,
            });
        }
        let (hits, more) = fetch(&self)?;
        Ok(self.result(hits, more))
    }

    /// The search result of this page: `hits`, and as the cursor the next page's number when
    /// the upstream says there is `more` and that page still ends within the cap
    /// ([`next_page_number`]).
    pub fn result(&self, hits: Vec<crate::Document>, more: bool) -> crate::SearchResult {
        let next = next_page_number(self.page, self.per_page, more, self.max_results);
        let next_cursor = next.map(|p| p.to_string());
        crate::SearchResult { hits, next_cursor }
    }
}

/// The page token or cursor that moves a listing on from `previous`: `next` unless it is absent,
/// empty or the same again (an upstream that hands back the token it was given would make the
/// connector fetch one page forever). `None` means the listing cannot be continued.
pub fn fresh(next: Option<String>, previous: Option<&str>) -> Option<String> {
    next.filter(|n| !n.is_empty() && Some(n.as_str()) != previous)
}

/// The answer to `request`, which continues a listing from a link or cursor stored in a sync
/// cursor; `None` when the upstream refuses it as stale (`invalid-input`, e.g. the 400 of an
/// expired keyset cursor), logged with `what`: the caller then starts the listing over, which
/// re-reads records but skips none. Any other error is the caller's.
pub fn resume(request: Request, what: &str) -> Result<Option<Response>> {
    let (answer, stale) = unless_stale(request.send());
    if let Some(message) = stale {
        crate::log::warn!(
            "{what}: starting over, the upstream refused the stored cursor: {message}"
        );
    }
    answer
}

/// The answer that continues a listing from `link` (a [`Request`] for the link stored in a
/// sync cursor, if there is one) or, when there is none or the upstream refuses it as stale
/// ([`resume`]), the answer to `first()`, which starts the listing over; and whether it
/// continued.
///
/// ```ignore
/// let link = state.next.take().map(|l| Ok(Request::get(base.follow(PATH, &l)?))).transpose()?;
/// let (response, resumed) = paging::resume_or(link, "pages", || first_request().send())?;
/// ```
pub fn resume_or(
    link: Option<Request>,
    what: &str,
    first: impl FnOnce() -> Result<Response>,
) -> Result<(Response, bool)> {
    match link
        .map(|request| resume(request, what))
        .transpose()?
        .flatten()
    {
        Some(response) => Ok((response, true)),
        None => Ok((first()?, false)),
    }
}

/// [`resume`] without the log line: the answer, and the message of a stale-cursor refusal.
fn unless_stale<T>(result: Result<T>) -> (Result<Option<T>>, Option<String>) {
    match result {
        Err(Error::InvalidInput(message)) => (Ok(None), Some(message)),
        other => (other.map(Some), None),
    }
}

/// A listing in the OData style of Microsoft's APIs (Graph, Azure Resource Manager): the items
/// under `value`, the next page at `@odata.nextLink` (ARM: `nextLink`) and, on a delta query's
/// last page, the link that starts the next round at `@odata.deltaLink`. Follow the links with
/// [`crate::BaseUrl::follow_opt`].
#[derive(Debug, serde::Deserialize)]
pub struct ODataPage<T> {
    /// The items of this page.
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// The next page, absent on the last one.
    #[serde(rename = "@odata.nextLink", alias = "nextLink")]
    pub next_link: Option<String>,
    /// A delta query's next round, on its last page.
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

/// Iterator over the JSON bodies of a paged listing; stops after the last page or the first
/// error (which it yields). Bound it with `.take(n)`.
pub struct Pages {
    first: Request,
    pending: Option<Request>,
    next: Next,
}

impl Pages {
    /// Start at `first` and follow `next`.
    pub fn new(first: Request, next: Next) -> Self {
        Pages {
            pending: Some(first.clone()),
            first,
            next,
        }
    }
}

impl Pages {
    /// Every item of the array at JSON pointer `items` of each page (a page without it has
    /// none), at most `max_pages` pages, typed: an item that does not match `T` is an
    /// `upstream` error, as is any page's.
    pub fn items<T: DeserializeOwned>(self, items: &str, max_pages: usize) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for page in self.take(max_pages) {
            out.extend(items_at(page?, items)?);
        }
        Ok(out)
    }

    /// [`Pages::items`] for a listing that may run long (one record's comments): reaching
    /// `max_pages` with more to come logs a warning naming `what`, as [`collect`] does, and
    /// keeps what was read.
    pub fn collect<T: DeserializeOwned>(
        mut self,
        what: &str,
        items: &str,
        max_pages: usize,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for page in self.by_ref().take(max_pages) {
            out.extend(items_at(page?, items)?);
        }
        if self.pending.is_some() {
            crate::log::warn!("{what}: stopped after {max_pages} pages");
        }
        Ok(out)
    }
}

/// The items of the array at `pointer` in `page`, typed (none when it is missing or not an
/// array); an item that does not match `T` is an `upstream` error.
fn items_at<T: DeserializeOwned>(mut page: Value, pointer: &str) -> Result<Vec<T>> {
    let Some(Value::Array(list)) = page.pointer_mut(pointer).map(Value::take) else {
        return Ok(Vec::new());
    };
    let typed = list.into_iter().map(serde_json::from_value);
    let typed: Result<Vec<T>, _> = typed.collect();
    typed.map_err(|e| Error::upstream(format!("unexpected item at `{pointer}`: {e}")))
}

impl Iterator for Pages {
    type Item = Result<Value>;

    fn next(&mut self) -> Option<Self::Item> {
        let current = self.pending.take()?;
        let result = current.clone().send().and_then(|response| {
            let body: Value = response.json()?;
            self.pending =
                next_request(&self.first, &current, &response.headers, &body, &self.next);
            Ok(body)
        });
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_lookups_ask_each_id_once_in_chunks() {
        let mut asked = Vec::new();
        let got = by_ids([5, 1, 5, 3, 2], 2, |ids| {
            asked.push(ids.to_owned());
            Ok(vec![ids.len()])
        })
        .unwrap();
        assert_eq!(asked, ["1,2", "3,5"]);
        assert_eq!(got, [3, 3]);
        assert!(
            by_ids(Vec::<u64>::new(), 100, |_| Ok(vec![1]))
                .unwrap()
                .is_empty()
        );
    }
    use serde_json::json;

    #[test]
    fn records_at_hand_are_not_looked_up_again() {
        let mut asked = Vec::new();
        let at_hand = vec![json!({"id": 2, "name": "sideloaded"})];
        let got = by_ids_besides([3, 2, 1, 3], at_hand, 100, |ids| {
            asked.push(ids.to_owned());
            Ok(ids
                .split(',')
                .map(|id| json!({"id": id.parse::<u64>().unwrap()}))
                .collect())
        })
        .unwrap();
        assert_eq!(asked, ["1,3"]);
        let ids: Vec<u64> = got.iter().filter_map(|r| r["id"].as_u64()).collect();
        assert_eq!(ids, [2, 1, 3]);
        let none = by_ids_besides([2], vec![json!({"id": 2})], 100, |_| panic!("asked"));
        assert_eq!(none.unwrap().len(), 1);
    }

    #[test]
    fn link_headers() {
        let h = r#"</wiki/api/v2/pages?cursor=a,b>; rel="next", <https://x/prev>; rel="prev""#;
        assert_eq!(
            link_header_next(h).as_deref(),
            Some("/wiki/api/v2/pages?cursor=a,b")
        );
        let h = r#"<https://x/1>; rel="prev"; title="a, b", <https://x/3>; rel="last next""#;
        assert_eq!(link_header_next(h).as_deref(), Some("https://x/3"));
        assert_eq!(
            link_header_next("<https://x/3>; REL=next").as_deref(),
            Some("https://x/3")
        );
        assert_eq!(link_header_next(r#"<https://x/1>; rel="prev""#), None);
        assert_eq!(link_header_next("garbage"), None);
        assert_eq!(link_header_next(""), None);
    }

    #[test]
    fn body_links_and_cursors() {
        let body = json!({"_links": {"next": "/wiki/api/v2/pages?cursor=c1"}, "token": "t", "n": 5, "e": ""});
        let base = "https://acme.atlassian.net/wiki/api/v2/pages?limit=2";
        assert_eq!(
            next_link(&body, "/_links/next", base).as_deref(),
            Some("https://acme.atlassian.net/wiki/api/v2/pages?cursor=c1")
        );
        assert_eq!(next_link(&body, "/missing", base), None);
        assert_eq!(cursor(&body, "/token").as_deref(), Some("t"));
        assert_eq!(cursor(&body, "/n").as_deref(), Some("5"));
        assert_eq!(cursor(&body, "/e"), None);
    }

    #[test]
    fn collect_follows_pages_until_the_last_and_stops_at_a_repeat() {
        // Offsets 0, 2, 4 hold two, two and one items; the third page is the last.
        let pages = |&start: &u32| -> Result<(Vec<u32>, Option<u32>)> {
            let items: Vec<u32> = (start..(start + 2).min(5)).collect();
            let count = items.len() as u32;
            Ok((items, next_offset(start, count, start + count >= 5)))
        };
        assert_eq!(collect("items", 10, 0, pages).unwrap(), vec![0, 1, 2, 3, 4]);
        // A page cap keeps what was read (and `collect` logs that it stopped).
        assert_eq!(walk(2, 0, pages).unwrap(), (vec![0, 1, 2, 3], false));
        assert_eq!(walk(3, 0, pages).unwrap(), (vec![0, 1, 2, 3, 4], true));
        // An upstream that points at the same page again ends the listing.
        let stuck = |&at: &u32| -> Result<(Vec<u32>, Option<u32>)> { Ok((vec![at], Some(at))) };
        assert_eq!(collect("items", 10, 7, stuck).unwrap(), vec![7]);
        // An error is the caller's.
        let failing =
            |_: &u32| -> Result<(Vec<u32>, Option<u32>)> { Err(crate::Error::upstream("x")) };
        assert!(collect("items", 10, 0, failing).is_err());
        assert_eq!(
            next_offset(0, 0, false),
            None,
            "an empty page ends the listing"
        );
    }

    #[test]
    fn a_complete_listing_fails_at_its_page_cap_instead_of_shrinking() {
        let endless =
            |&at: &u32| -> Result<(Vec<u32>, Option<u32>)> { Ok((vec![at], Some(at + 1))) };
        let Err(Error::Upstream(m)) = complete("groups", 3, 0, endless) else {
            panic!("a listing cut at its cap must fail")
        };
        assert!(m.contains("groups") && m.contains('3'), "{m}");
        let two = |&at: &u32| -> Result<(Vec<u32>, Option<u32>)> {
            Ok((vec![at], (at == 0).then_some(1)))
        };
        assert_eq!(complete("groups", 2, 0, two).unwrap(), [0, 1]);
    }

    #[test]
    fn offset_pages_end_by_is_last_page_else_by_a_missing_next_link() {
        let page = |v: Value| serde_json::from_value::<ListPage<u32>>(v).unwrap();
        let jsm = page(json!({"size": 2, "values": [1, 2], "isLastPage": false}));
        assert_eq!(jsm.next(10), Some(12));
        assert_eq!(
            page(json!({"size": 2, "values": [1, 2], "isLastPage": true})).next(0),
            None
        );
        let v1 = page(json!({"results": [1, 2, 3], "_links": {"next": "/x?start=3"}}));
        assert_eq!(v1.items_and_next(0), (vec![1, 2, 3], Some(3)));
        assert_eq!(
            page(json!({"results": [1], "_links": {"next": null}})).next(0),
            None
        );
        assert_eq!(page(json!({"results": [1], "_links": {}})).next(0), None);
        let v2 = page(json!({"results": [1], "_links": {"next": "/wiki/api/v2/pages?cursor=c"}}));
        assert_eq!(
            v2.next_link().as_deref(),
            Some("/wiki/api/v2/pages?cursor=c")
        );
        assert_eq!(page(json!({"_links": {"next": " "}})).next_link(), None);
        assert_eq!(
            page(json!({"values": [], "isLastPage": false})).next(5),
            None,
            "empty"
        );
        assert_eq!(page(json!({})).values, Vec::<u32>::new());
    }

    #[test]
    fn a_list_page_takes_its_next_link_from_the_body_else_from_the_link_header() {
        let response = |body: &str, link: Option<&str>| Response {
            status: 200,
            headers: link
                .map(|l| ("Link".to_owned(), l.to_owned()))
                .into_iter()
                .collect(),
            body: body.as_bytes().to_vec(),
            method: crate::Method::Get,
            url: "https://h/wiki/api/v2/pages?limit=2".into(),
        };
        let header = Some(r#"</wiki/api/v2/pages?cursor=h>; rel="next""#);
        let body = r#"{"results": [1], "_links": {"next": "/wiki/api/v2/pages?cursor=b"}}"#;
        let page = ListPage::<u32>::of(&response(body, header)).unwrap();
        assert_eq!(
            page.next_link().as_deref(),
            Some("/wiki/api/v2/pages?cursor=b")
        );
        let page = ListPage::<u32>::of(&response(r#"{"results": [1]}"#, header)).unwrap();
        assert_eq!(
            page.next_link().as_deref(),
            Some("https://h/wiki/api/v2/pages?cursor=h")
        );
        assert_eq!(
            page.next(0),
            Some(1),
            "a next link from the header is a next page too"
        );
        let last = ListPage::<u32>::of(&response(r#"{"results": []}"#, None)).unwrap();
        assert_eq!(last.next_link(), None);
        assert!(ListPage::<u32>::of(&response("[", None)).is_err());
    }

    #[test]
    fn page_numbers_stop_at_the_result_cap_and_tokens_must_move_on() {
        assert_eq!(next_page_number(1, 100, true, 1000), Some(2));
        assert_eq!(next_page_number(9, 100, true, 1000), Some(10));
        assert_eq!(next_page_number(10, 100, true, 1000), None);
        assert_eq!(next_page_number(32, 30, true, 1000), Some(33));
        assert_eq!(
            next_page_number(33, 30, true, 1000),
            None,
            "991..1020 is past 1000"
        );
        assert_eq!(next_page_number(1, 25, false, 1000), None);
        assert_eq!(next_page_number(u32::MAX, 1, true, u32::MAX), None);
        assert_eq!(fresh(Some("t2".into()), Some("t1")).as_deref(), Some("t2"));
        assert_eq!(fresh(Some("t2".into()), None).as_deref(), Some("t2"));
        assert_eq!(
            fresh(Some("t1".into()), Some("t1")),
            None,
            "the same token again"
        );
        assert_eq!(fresh(Some(String::new()), None), None);
        assert_eq!(fresh(None, Some("t1")), None);
    }

    #[test]
    fn a_numbered_search_page_is_read_from_its_cursor_and_stops_at_the_result_cap() {
        let request = |limit, cursor: Option<&str>| crate::SearchRequest {
            query: "q".into(),
            limit,
            cursor: cursor.map(str::to_owned),
        };
        let first = PageNumber::of(&request(0, None), 25, 100, 1000).unwrap();
        assert_eq!((first.page, first.per_page), (1, 25));
        let hit = || crate::Document::new("ticket", "1", "t");
        let result = first.search(|_| Ok((vec![hit()], true))).unwrap();
        assert_eq!(
            (result.hits.len(), result.next_cursor.as_deref()),
            (1, Some("2"))
        );
        assert_eq!(first.result(vec![], false).next_cursor, None);
        // Page 10 of 100 ends at result 1000: served, but the last.
        let last = PageNumber::of(&request(500, Some("10")), 25, 100, 1000).unwrap();
        assert_eq!((last.page, last.per_page), (10, 100));
        let result = last.search(|_| Ok((vec![hit()], true))).unwrap();
        assert_eq!((result.hits.len(), result.next_cursor), (1, None));
        // Page 11 would end past it: no hits, and the upstream is not asked.
        let past = PageNumber::of(&request(100, Some("11")), 25, 100, 1000).unwrap();
        let result = past.search(|_| panic!("asked past the cap")).unwrap();
        assert!(result.hits.is_empty() && result.next_cursor.is_none());
        let failed = first.search(|_| Err(Error::upstream("down")));
        assert!(matches!(failed, Err(Error::Upstream(_))));
        let bad = PageNumber::of(&request(0, Some("0")), 25, 100, 1000);
        assert!(matches!(bad, Err(Error::InvalidInput(_))));
    }

    #[test]
    fn the_items_of_a_page_are_typed_and_a_page_without_them_has_none() {
        let page = json!({"results": [{"id": "1"}, {"id": "2"}], "_links": {}});
        let ids: Vec<Value> = items_at(page.clone(), "/results").unwrap();
        assert_eq!(ids.len(), 2);
        assert!(
            items_at::<Value>(json!({"results": {}}), "/results")
                .unwrap()
                .is_empty()
        );
        assert!(items_at::<Value>(json!({}), "/results").unwrap().is_empty());
        let wrong = items_at::<u32>(page, "/results");
        assert!(matches!(wrong, Err(Error::Upstream(m)) if m.contains("/results")));
    }

    #[test]
    fn a_stale_cursor_starts_the_listing_over_and_other_errors_stay() {
        let (answer, stale) = unless_stale(Ok(7));
        assert_eq!((answer.unwrap(), stale), (Some(7), None));
        let (answer, stale) = unless_stale::<u8>(Err(Error::invalid_input("cursor expired")));
        assert_eq!(
            (answer.unwrap(), stale.as_deref()),
            (None, Some("cursor expired"))
        );
        let (answer, stale) = unless_stale::<u8>(Err(Error::RateLimited(5)));
        assert!(matches!(answer, Err(Error::RateLimited(5))) && stale.is_none());
    }

    #[test]
    fn odata_pages_read_graph_and_arm_links() {
        let graph: ODataPage<u32> = serde_json::from_value(json!({"value": [1, 2],
            "@odata.nextLink": "https://g/v1.0/users?$skiptoken=x"}))
        .unwrap();
        assert_eq!(graph.value, [1, 2]);
        assert_eq!(
            graph.next_link.as_deref(),
            Some("https://g/v1.0/users?$skiptoken=x")
        );
        let arm: ODataPage<u32> = serde_json::from_value(json!({"nextLink": "n"})).unwrap();
        assert_eq!((arm.value.len(), arm.next_link.as_deref()), (0, Some("n")));
        let last: ODataPage<u32> =
            serde_json::from_value(json!({"value": [], "@odata.deltaLink": "d"})).unwrap();
        assert_eq!(
            (last.next_link, last.delta_link.as_deref()),
            (None, Some("d"))
        );
    }

    #[test]
    fn next_requests() {
        let first = Request::get("https://h/items")
            .query("limit", "2")
            .header("X-A", "1");
        let body = json!({"next": "https://h/items?page=2", "cursor": "c 2"});
        let r = next_request(&first, &first, &[], &body, &Next::BodyLink("/next")).unwrap();
        assert_eq!(r.url(), "https://h/items?page=2");
        let r2 = next_request(&first, &r, &[], &body, &Next::BodyLink("/next"));
        assert!(r2.is_none(), "same URL again stops");
        let r = next_request(
            &first,
            &r,
            &[],
            &body,
            &Next::Cursor {
                field: "/cursor",
                param: "cursor",
            },
        )
        .unwrap();
        assert_eq!(r.url(), "https://h/items?limit=2&cursor=c%202");
        let headers = vec![(
            "link".to_owned(),
            r#"</items?page=3>; rel="next""#.to_owned(),
        )];
        let while_more = Next::cursor_while("/meta/after_cursor", "page[after]", "/meta/has_more");
        assert!(matches!(
            while_more,
            Next::CursorWhile {
                param: "page[after]",
                ..
            }
        ));
        let body = json!({"meta": {"after_cursor": "c2", "has_more": true}});
        let r = next_request(&first, &first, &[], &body, &while_more).unwrap();
        assert_eq!(r.url(), "https://h/items?limit=2&page%5Bafter%5D=c2");
        let last = json!({"meta": {"after_cursor": "c3", "has_more": false}});
        assert!(next_request(&first, &r, &[], &last, &while_more).is_none());
        let unsaid = json!({"meta": {"after_cursor": "c3"}});
        assert!(next_request(&first, &r, &[], &unsaid, &while_more).is_none());
        let r = next_request(&first, &first, &headers, &json!({}), &Next::LinkHeader).unwrap();
        assert_eq!(r.url(), "https://h/items?page=3");
        assert!(next_request(&first, &first, &[], &json!({}), &Next::LinkHeader).is_none());
    }
}
