//! OData v4 services (Microsoft Graph, Dynamics 365, SharePoint REST): single records that may
//! be missing, and every JSON page of a listing, following `@odata.nextLink` only where the
//! connector allows (a reply must not steer it to another host).
//!
//! ```ignore
//! let pages = odata::pages("members", 30, first, |link| cfg.link(link))?;
//! let ids = pages.iter().flat_map(|p| acl::at(p, "user:", "/value/*/userId"));
//! ```

use serde_json::Value;

use crate::{Request, Result};

/// The JSON record at `url`; `None` when the service answers 404.
pub fn record(url: String) -> Result<Option<Value>> {
    Request::get(url).send_opt()?.map(|r| r.json()).transpose()
}

/// The JSON pages of the listing (or the one record) at `first`, in order: each page's
/// `@odata.nextLink` goes through `follow` (an error refuses it, `None` ends the listing), at
/// most `max_pages` pages. A listing that is not there (404) has no pages.
pub fn pages(
    what: &str,
    max_pages: usize,
    first: String,
    follow: impl Fn(Option<&str>) -> Result<Option<String>>,
) -> Result<Vec<Value>> {
    crate::paging::collect(what, max_pages, first, |link| page(link, &follow))
}

/// [`pages`] for a listing that must be read whole (a person's group memberships): reaching
/// `max_pages` with more to come is an `upstream` error naming `what`, never a shortened list.
pub fn complete(
    what: &str,
    max_pages: usize,
    first: String,
    follow: impl Fn(Option<&str>) -> Result<Option<String>>,
) -> Result<Vec<Value>> {
    crate::paging::complete(what, max_pages, first, |link| page(link, &follow))
}

/// One page at `link` and the link to the next (none after a 404).
fn page(
    link: &str,
    follow: &impl Fn(Option<&str>) -> Result<Option<String>>,
) -> Result<(Vec<Value>, Option<String>)> {
    let Some(page) = record(link.to_owned())? else {
        return Ok((Vec::new(), None));
    };
    let next = follow(page["@odata.nextLink"].as_str())?;
    Ok((vec![page], next))
}
