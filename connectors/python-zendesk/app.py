"""Zendesk connector in Python (componentize-py), against airlock:connector@0.1.0.

Stream `tickets` (incremental export, resumable cursor), live `search` over tickets and Help
Center articles, `get` by id, and the read-only action `ticket-comments`. Settings: `base_url`
(e.g. https://acme.zendesk.com), optional `page_size` (tickets per sync page, 1..=1000, default
100). No credentials: the host's gate injects Basic or Bearer auth into every request.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.airlock_connector_types import (
    ActionInfo,
    ConnectorInfo,
    Document,
    DocumentRef,
    Error_Forbidden,
    Error_Internal,
    Error_InvalidInput,
    Error_NotFound,
    Error_RateLimited,
    Error_Unauthorized,
    Error_Upstream,
    HealthStatus,
    LogLevel,
    SearchResult,
    StreamInfo,
    SyncPage,
)

import wasi_http
import zendesk as z

ERRORS = {
    "unauthorized": Error_Unauthorized,
    "forbidden": Error_Forbidden,
    "not-found": Error_NotFound,
    "rate-limited": Error_RateLimited,
    "upstream": Error_Upstream,
    "invalid-input": Error_InvalidInput,
    "internal": Error_Internal,
}


def contract(fn):
    """Turns ConnectorError into the WIT error variant. Any other exception would trap the
    instance (componentize-py only lowers `Err` to the result's error case), so it becomes
    `internal` with its type and message instead."""

    def wrapper(*args):
        try:
            return fn(*args)
        except z.ConnectorError as e:
            raise Err(ERRORS[e.kind](e.value))
        except Err:
            raise
        except Exception as e:  # noqa: BLE001 - the boundary: report, never trap
            raise Err(Error_Internal(f"{type(e).__name__}: {e}"))

    wrapper.__name__ = fn.__name__
    return wrapper


def config():
    return z.Config(host.setting("base_url"), host.setting("page_size"))


def get_json(url):
    """GET and parse JSON, raising the contract error for a failing status."""
    r = wasi_http.get(url)
    err = z.status_error(r.status, r.headers.get("retry-after"), "GET", url, r.body)
    if err is not None:
        raise err
    try:
        return json.loads(r.body)
    except ValueError as e:
        raise z.ConnectorError("upstream", f"GET {url.split('?')[0]}: not JSON: {e}")


def document(d):
    return Document(
        id=d["id"], kind=d["kind"], title=d["title"], body=d["body"], url=d.get("url"),
        updated_at=d["updated_at"], metadata=d["metadata"], acl=[],
    )


class Connector(exports.Connector):
    def info(self):
        return ConnectorInfo(
            name="python-zendesk",
            version=z.VERSION,
            description="Zendesk tickets and Help Center articles (example connector in Python)",
            streams=[StreamInfo(
                name="tickets",
                description="Tickets (subject, description) from the cursor-based incremental "
                "export; deleted tickets become deletes. One export page per call.",
            )],
            actions=[ActionInfo(
                name="ticket-comments",
                description="All comments of one ticket (id, author_id, public, created_at, body).",
                input_schema=json.dumps(z.TICKET_COMMENTS_SCHEMA),
                writes=False,
            )],
        )

    @contract
    def health(self):
        cfg = config()
        # Search always requires authentication (public Help Center listings do not).
        get_json(cfg.api("/search.json", query="type:ticket", per_page=1))
        return HealthStatus(ok=True, message=f"Zendesk at {cfg.base} accepted the credentials")

    @contract
    def search(self, request):
        cfg = config()
        query = request.query.strip()
        if not query:
            raise z.invalid("search query is empty")
        per_page = 25 if request.limit == 0 else min(request.limit, 100)
        page = 1
        if request.cursor is not None:
            try:
                page = int(request.cursor)
            except ValueError:
                page = 0
            if page < 1:
                raise z.invalid(f"invalid search cursor: {request.cursor!r}")
        if page * per_page > z.SEARCH_MAX:
            return SearchResult(hits=[], next_cursor=None)
        reply = get_json(cfg.api("/search.json", query=query, per_page=per_page, page=page))
        results = reply.get("results") or []
        hits = [document(d) for d in (z.search_document(i, cfg) for i in results) if d]
        nxt = z.next_search_page(page, per_page, bool(reply.get("next_page")) and bool(results))
        return SearchResult(hits=hits[:per_page], next_cursor=None if nxt is None else str(nxt))

    @contract
    def get(self, id):
        kind, n = z.parse_ref(id)
        cfg = config()
        if kind == "ticket":
            return document(z.ticket_document(get_json(cfg.api(f"/tickets/{n}.json"))["ticket"], cfg))
        return document(z.article_document(get_json(cfg.api(f"/help_center/articles/{n}.json"))["article"]))

    @contract
    def check_permission(self, principal, id):
        # This example publishes no ACLs and cannot confirm what one user may read, so it
        # answers no (fail closed): live hits are dropped unless the operator declares the
        # connector tenant-wide (the Rust connector carries Zendesk's permissions).
        z.parse_ref(id)
        return False

    @contract
    def sync(self, stream, cursor):
        if stream != "tickets":
            raise z.invalid(f"unknown stream `{stream}` (this connector has `tickets`)")
        previous = z.decode_cursor(cursor)
        cfg = config()
        export = get_json(z.ticket_export_url(cfg, previous))
        upserts, deletes, nxt, done = z.ticket_page(export, cfg, previous)
        return SyncPage(
            upserts=[document(d) for d in upserts],
            deletes=[DocumentRef(kind=k, id=i) for k, i in deletes],
            next_cursor=nxt,
            done=done,
        )

    @contract
    def invoke(self, action, input):
        if action != "ticket-comments":
            raise z.ConnectorError("not-found", f"unknown action `{action}`")
        ticket = z.ticket_id_input(input)
        cfg = config()
        comments, after = [], None
        for _ in range(z.MAX_COMMENT_PAGES):
            query = {"page[size]": 100, "page[after]": after}
            page = get_json(cfg.api(f"/tickets/{ticket}/comments.json", **query))
            comments.extend(z.comment_json(c) for c in page.get("comments") or [])
            meta = page.get("meta") or {}
            nxt = meta.get("after_cursor")
            if not meta.get("has_more") or not nxt or nxt == after:
                break
            after = nxt
        else:
            host.log(LogLevel.WARN, f"ticket {ticket}: stopped after {z.MAX_COMMENT_PAGES} comment pages")
        return json.dumps({"ticket_id": ticket, "comments": comments})
