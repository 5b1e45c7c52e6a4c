"""Zendesk logic that needs no host: ids, cursors, JSON -> document mapping, HTTP status -> error.

Kept apart from app.py (which talks to the host through the generated bindings) so it runs and is
unit-tested with a plain CPython: `python3 -m unittest` in this directory.
"""

import html
import html.parser
import json
from urllib.parse import urlencode, urlsplit

VERSION = "0.1.0"

# Seconds to wait after a 429 without a usable Retry-After (the Rust SDK's default too).
DEFAULT_RETRY_AFTER = 60
# Zendesk search serves at most this many results per query and answers 422 beyond.
SEARCH_MAX = 1000
# Upper bound on comment pages fetched for one ticket (100 comments each).
MAX_COMMENT_PAGES = 100

TICKET_COMMENTS_SCHEMA = {
    "type": "object",
    "required": ["ticket_id"],
    "properties": {"ticket_id": {"type": "integer", "minimum": 1}},
    "additionalProperties": False,
}


class ConnectorError(Exception):
    """A contract error: `kind` is the WIT variant name (`not-found`, ...), `value` its payload."""

    def __init__(self, kind, value):
        super().__init__(f"{kind}: {value}")
        self.kind = kind
        self.value = value


def invalid(msg):
    return ConnectorError("invalid-input", msg)


def status_error(status, retry_after, method, url, body):
    """The contract error for an HTTP status, or None below 400. Same mapping as the Rust SDK:
    401 unauthorized, 403 forbidden, 404 not-found, 429 (and 503 with Retry-After) rate-limited,
    400/409/413/414/422 invalid-input, every other 4xx and 5xx upstream."""
    if status < 400:
        return None
    try:
        seconds = int(retry_after.strip()) if retry_after is not None else None
    except ValueError:
        seconds = None
    # The path only: query values may carry user input, never worth echoing into logs.
    msg = f"HTTP {status} from {method} {urlsplit(url).path}: {snippet(body)}"
    if status == 401:
        return ConnectorError("unauthorized", msg)
    if status == 403:
        return ConnectorError("forbidden", msg)
    if status == 404:
        return ConnectorError("not-found", msg)
    if status == 429 or (status == 503 and retry_after is not None):
        return ConnectorError("rate-limited", seconds if seconds is not None and seconds >= 0 else DEFAULT_RETRY_AFTER)
    if status in (400, 409, 413, 414, 422):
        return ConnectorError("invalid-input", msg)
    return ConnectorError("upstream", msg)


def snippet(body):
    """A short single-line excerpt of an error body (Zendesk's `description`/`error` if JSON)."""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    try:
        v = json.loads(text)
        if isinstance(v, dict):
            parts = [v.get(k) for k in ("error", "description") if isinstance(v.get(k), str)]
            if parts:
                text = ": ".join(parts)
    except ValueError:
        pass
    text = " ".join(text.split())
    return (text[:200] + "…") if len(text) > 200 else (text or "(empty body)")


class Config:
    """Settings, read from the host on every call (each call gets a fresh instance)."""

    def __init__(self, base_url, page_size=None):
        if not base_url:
            raise invalid("setting `base_url` is required")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise invalid(f"setting `base_url` is not an http(s) URL: {base_url}")
        base = base_url.rstrip("/")
        if base.endswith("/api/v2"):
            base = base[: -len("/api/v2")]
        self.base = base
        if page_size is None:
            self.page_size = 100
        else:
            try:
                self.page_size = min(max(int(page_size), 1), 1000)
            except ValueError:
                raise invalid(f"setting `page_size` is not a number: {page_size}")

    def api(self, path, **query):
        """Absolute URL of an API path (relative to /api/v2) with query parameters."""
        url = f"{self.base}/api/v2{path}"
        query = {k: v for k, v in query.items() if v is not None}
        return f"{url}?{urlencode(query)}" if query else url

    def ticket_url(self, ticket_id):
        return f"{self.base}/agent/tickets/{ticket_id}"


def numeric(s):
    """A Zendesk id: digits only, so an id can never smuggle path segments or a query."""
    if not s or not s.isascii() or not s.isdigit():
        raise invalid(f"not a Zendesk id: {s!r}")
    n = int(s)
    if n < 1 or n >= 2**63:
        raise invalid(f"not a Zendesk id: {s!r}")
    return n


def parse_ref(id_):
    """`123` / `ticket:123` -> ("ticket", 123); `article:9` -> ("article", 9)."""
    id_ = id_.strip()
    kind, sep, rest = id_.partition(":")
    if not sep:
        return ("ticket", numeric(id_))
    if kind in ("ticket", "article"):
        return (kind, numeric(rest))
    raise invalid(f"unknown id kind in {id_!r} (ticket:, article:)")


# ---- Sync cursors --------------------------------------------------------------------------
#
# The tickets stream is Zendesk's cursor-based incremental export. Our cursor is JSON:
#   {"c": after_cursor}  continue after the last ticket the host committed;
#   absent               start at start_time=0 (everything).
# The export's after_cursor is a keyset position (update time, id), so resuming from it never
# repeats a committed ticket version; a ticket changed again later shows up again, as a newer
# version. `done` is the export's end_of_stream; the done page's cursor is where the next run
# continues, so later runs fetch only changes.


def decode_cursor(cursor):
    if cursor is None:
        return {}
    try:
        c = json.loads(cursor)
    except ValueError as e:
        raise invalid(f"invalid cursor {cursor!r}: {e}")
    if not isinstance(c, dict) or not isinstance(c.get("c", ""), str):
        raise invalid(f"invalid cursor {cursor!r}")
    return c


def ticket_export_url(cfg, cursor):
    if cursor.get("c"):
        return cfg.api("/incremental/tickets/cursor.json", per_page=cfg.page_size, cursor=cursor["c"])
    return cfg.api("/incremental/tickets/cursor.json", per_page=cfg.page_size, start_time=0)


def ticket_page(export, cfg, previous):
    """One sync page from an export reply: (upserts, deletes, next cursor JSON, done)."""
    upserts, deletes = [], []
    for t in export.get("tickets") or []:
        if t.get("status") == "deleted":
            deletes.append(("ticket", str(t["id"])))
        else:
            upserts.append(ticket_document(t, cfg))
    after = export.get("after_cursor")
    # An empty last page may carry no cursor: keep ours so the next run does not start over.
    nxt = {"c": after} if after else dict(previous)
    # Without a new cursor the next call would fetch the same page again: end the run instead.
    done = bool(export.get("end_of_stream")) or nxt == previous
    return upserts, deletes, json.dumps(nxt, separators=(",", ":")), done


def next_search_page(page, per_page, more):
    """The page after `page`, unless there is no more or it would reach past result 1000."""
    nxt = page + 1
    return nxt if more and nxt * per_page <= SEARCH_MAX else None


# ---- Documents -----------------------------------------------------------------------------
# Documents are plain dicts here; app.py turns them into the generated `Document` record.


def ticket_document(t, cfg):
    meta = {
        "status": t.get("status"),
        "priority": t.get("priority"),
        "type": t.get("type"),
        "requester_id": t.get("requester_id"),
        "assignee_id": t.get("assignee_id"),
        "organization_id": t.get("organization_id"),
        "tags": t.get("tags") or [],
    }
    return {
        "id": str(t["id"]),
        "kind": "ticket",
        "title": t.get("subject") or "",
        "body": t.get("description") or "",
        "url": cfg.ticket_url(t["id"]),
        "updated_at": t.get("updated_at") or t.get("created_at") or "",
        "metadata": json.dumps(meta),
    }


def article_document(a):
    meta = {"section_id": a.get("section_id"), "locale": a.get("locale"), "draft": bool(a.get("draft"))}
    return {
        "id": str(a["id"]),
        "kind": "article",
        "title": a.get("title") or "",
        "body": html_to_text(a.get("body") or ""),
        "url": a.get("html_url"),
        "updated_at": a.get("updated_at") or a.get("created_at") or "",
        "metadata": json.dumps(meta),
    }


def search_document(item, cfg):
    kind = item.get("result_type")
    if kind == "ticket":
        return ticket_document(item, cfg)
    if kind == "article":
        return article_document(item)
    return None  # users, organizations, groups: not records this connector indexes


class _Text(html.parser.HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_to_text(s):
    """Plain text of an HTML body: tags dropped, entities decoded, whitespace collapsed per line."""
    p = _Text()
    p.feed(s)
    p.close()
    lines = (" ".join(line.split()) for line in "".join(p.out).splitlines())
    return "\n".join(line for line in lines if line)


def ticket_id_input(text):
    """The `ticket-comments` input, validated against TICKET_COMMENTS_SCHEMA by hand (no
    jsonschema in the component): an object with exactly an integer `ticket_id` >= 1."""
    try:
        v = json.loads(text)
    except ValueError as e:
        raise invalid(f"input is not JSON: {e}")
    if not isinstance(v, dict):
        raise invalid("input must be an object with `ticket_id`")
    extra = sorted(set(v) - {"ticket_id"})
    if extra:
        raise invalid(f"unknown input field(s): {', '.join(extra)}")
    t = v.get("ticket_id")
    # bool is an int in Python; JSON true is not an integer.
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise invalid("`ticket_id` (integer >= 1) is required")
    return t


def comment_json(c):
    return {
        "id": c.get("id"),
        "author_id": c.get("author_id"),
        "public": c.get("public"),
        "created_at": c.get("created_at"),
        "body": c.get("plain_body") or c.get("body"),
    }
