// Confluence logic that needs no host: config, ids, cursors, JSON -> document mapping, HTTP
// status -> contract error. Kept apart from app.js (which imports the host's WIT interfaces) so
// that it runs under plain Node: `node --test` in this directory.

export const VERSION = '0.1.0';

// Seconds to wait after a 429 without a usable Retry-After (the Rust SDK's default too).
export const DEFAULT_RETRY_AFTER = 60;

export const SPACES_SCHEMA = {
  type: 'object',
  properties: { limit: { type: 'integer', minimum: 1, maximum: 250 } },
  additionalProperties: false,
};

// A contract error. componentize-js lowers a thrown object's `payload` into the export's
// `result` error case, so `payload` is the WIT variant `{tag, val}`; a thrown Error without one
// would trap the instance instead.
export class ConnectorError extends Error {
  constructor(tag, val) {
    super(`${tag}: ${val}`);
    this.payload = { tag, val };
  }
}

export const invalid = (msg) => new ConnectorError('invalid-input', msg);

// Same mapping as the Rust SDK: 401 unauthorized, 403 forbidden, 404 not-found, 429 (and 503
// with Retry-After) rate-limited, 400/409/413/414/422 invalid-input, other 4xx and 5xx upstream.
export function statusError(status, retryAfter, method, url, bodyText) {
  if (status < 400) return null;
  const secs = retryAfter != null && /^\s*\d+\s*$/.test(retryAfter) ? Number(retryAfter) : null;
  // The path only: query values may carry user input, never worth echoing into logs.
  const msg = `HTTP ${status} from ${method} ${pathOf(url)}: ${snippet(bodyText)}`;
  if (status === 401) return new ConnectorError('unauthorized', msg);
  if (status === 403) return new ConnectorError('forbidden', msg);
  if (status === 404) return new ConnectorError('not-found', msg);
  if (status === 429 || (status === 503 && retryAfter != null)) {
    return new ConnectorError('rate-limited', Math.min(secs ?? DEFAULT_RETRY_AFTER, 0xffffffff));
  }
  if ([400, 409, 413, 414, 422].includes(status)) return new ConnectorError('invalid-input', msg);
  return new ConnectorError('upstream', msg);
}

export function pathOf(url) {
  const m = /^[a-z]+:\/\/[^/?#]*([^?#]*)/i.exec(url);
  return m ? m[1] || '/' : url.split('?')[0];
}

// A short single-line excerpt of an error body (Confluence's v2 `errors[0].title` or v1
// `message` when it is JSON).
export function snippet(text) {
  let out = text ?? '';
  try {
    const v = JSON.parse(out);
    out = v?.errors?.[0]?.title ?? v?.message ?? out;
  } catch {}
  out = String(out).split(/\s+/).filter(Boolean).join(' ');
  if (!out) return '(empty body)';
  return out.length > 200 ? `${out.slice(0, 200)}…` : out;
}

export class Config {
  constructor(baseUrl, pageLimit) {
    if (!baseUrl) throw invalid('setting `base_url` is required');
    if (!/^https?:\/\/[^/?#]+/i.test(baseUrl)) {
      throw invalid(`setting \`base_url\` is not an http(s) URL: ${baseUrl}`);
    }
    let base = baseUrl.replace(/\/+$/, '');
    if (base.endsWith('/wiki')) base = base.slice(0, -'/wiki'.length);
    this.base = base;
    this.pageLimit = 25;
    if (pageLimit != null) {
      if (!/^\d+$/.test(pageLimit)) throw invalid(`setting \`page_limit\` is not a number: ${pageLimit}`);
      this.pageLimit = Math.min(Math.max(Number(pageLimit), 1), 250);
    }
  }

  // An absolute URL for `path` (which starts with /wiki/) and query parameters; arrays repeat.
  url(path, query = {}) {
    const parts = [];
    for (const [k, v] of Object.entries(query)) {
      for (const one of Array.isArray(v) ? v : [v]) {
        if (one != null) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(one)}`);
      }
    }
    return `${this.base}${path}${parts.length ? `?${parts.join('&')}` : ''}`;
  }

  // A link Confluence returns relative to the site (`/wiki/...`) or to `/wiki` (`/spaces/...`).
  resolve(link) {
    if (/^https?:\/\//i.test(link)) return link;
    return link.startsWith('/wiki/') ? `${this.base}${link}` : `${this.base}/wiki${link}`;
  }
}

// Content ids are numeric: checking keeps ids from smuggling path segments into URLs.
export function contentId(id) {
  const t = String(id).trim();
  if (!/^[0-9]{1,19}$/.test(t)) throw invalid(`not a Confluence content id: ${JSON.stringify(id)}`);
  return t;
}

// ---- Sync -----------------------------------------------------------------------------------
//
// The `pages` stream walks GET /wiki/api/v2/pages sorted by id (current and trashed pages;
// trashed ones become deletes). Our cursor is JSON {"next": "<relative _links.next>"}; that
// link carries Confluence's keyset cursor, so a page fetched with it starts strictly after the
// last item the host committed: resuming never repeats and never skips. The last page (no next
// link) is `done` with no cursor, so every run is a full refresh: v2 has no "modified since"
// filter, and an example connector keeps it simple (see the Rust connector for incremental).

export function firstPagesUrl(cfg) {
  return cfg.url('/wiki/api/v2/pages', {
    'body-format': 'storage',
    sort: 'id',
    status: ['current', 'trashed'],
    limit: cfg.pageLimit,
  });
}

export function decodeCursor(cursor) {
  if (cursor == null) return {};
  let c;
  try {
    c = JSON.parse(cursor);
  } catch (e) {
    throw invalid(`invalid pages cursor ${JSON.stringify(cursor)}: ${e.message}`);
  }
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw invalid('invalid pages cursor');
  if (c.next !== undefined && (typeof c.next !== 'string' || !c.next.startsWith('/wiki/api/v2/pages?'))) {
    // Only links into the pages listing: a cursor can never steer the connector elsewhere.
    throw invalid(`invalid pages cursor ${JSON.stringify(cursor)}`);
  }
  return c;
}

export function pagesPage(list, cfg, previousNext) {
  const upserts = [];
  const deletes = [];
  for (const p of list?.results ?? []) {
    if (p.status === 'current' || p.status === 'archived') upserts.push(pageDocument(p, cfg));
    else deletes.push({ kind: 'page', id: String(p.id) });
  }
  const next = list?._links?.next;
  // A repeated next link would fetch the same page forever: end the run instead.
  if (!next || next === previousNext) return { upserts, deletes, nextCursor: undefined, done: true };
  return { upserts, deletes, nextCursor: JSON.stringify({ next }), done: false };
}

// ---- Documents ------------------------------------------------------------------------------

export function pageDocument(p, cfg) {
  const webui = p?._links?.webui;
  return {
    id: String(p.id),
    kind: 'page',
    title: p.title ?? '',
    body: htmlToText(p?.body?.storage?.value ?? ''),
    url: webui ? cfg.resolve(webui) : undefined,
    updatedAt: p?.version?.createdAt ?? p.createdAt ?? '',
    metadata: JSON.stringify({
      spaceId: p.spaceId ?? null,
      status: p.status ?? null,
      version: p?.version?.number ?? null,
      authorId: p.authorId ?? null,
      parentId: p.parentId ?? null,
    }),
    acl: [],
  };
}

// Search titles and excerpts mark matches with @@@hl@@@ ... @@@endhl@@@.
const unhighlight = (s) => String(s ?? '').replace(/@@@(end)?hl@@@/g, '');

// A document for a v1 search hit that is content; null for users, spaces, ...
export function searchDocument(hit, cfg) {
  const content = hit?.content;
  if (!content || content.id == null) return null;
  const webui = hit.url ?? content?._links?.webui;
  return {
    id: String(content.id),
    kind: 'page',
    title: unhighlight(hit.title ?? content.title),
    body: htmlToText(unhighlight(hit.excerpt)),
    url: webui ? cfg.resolve(webui) : undefined,
    updatedAt: hit.lastModified ?? '',
    metadata: JSON.stringify({ spaceKey: hit?.space?.key ?? null, status: content.status ?? null }),
    acl: [],
  };
}

// A CQL string literal.
export const cqlString = (s) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

// The opaque cursor of a v1 `_links.next` (the query itself is re-sent on the next call).
export function cursorParam(link) {
  const m = /[?&]cursor=([^&#]*)/.exec(link ?? '');
  return m ? decodeURIComponent(m[1].replace(/\+/g, ' ')) : undefined;
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

// Plain text of a storage-format (XHTML) body: tags dropped, entities decoded, whitespace
// collapsed per line.
export function htmlToText(html) {
  const text = String(html)
    .replace(/<(script|style)\b[^>]*>[\s\S]*?<\/\1>/gi, '')
    .replace(/<\/?(p|div|br|li|tr|h[1-6]|pre|blockquote)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
      if (e[0] === '#') {
        const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return Number.isFinite(n) && n <= 0x10ffff ? String.fromCodePoint(n) : m;
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    });
  return text
    .split('\n')
    .map((l) => l.split(/\s+/).filter(Boolean).join(' '))
    .filter(Boolean)
    .join('\n');
}

// The `spaces` input, validated against SPACES_SCHEMA by hand: an object with at most an
// integer `limit` in 1..=250.
export function spacesInput(text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalid(`input is not JSON: ${e.message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid('input must be an object');
  const extra = Object.keys(v).filter((k) => k !== 'limit');
  if (extra.length) throw invalid(`unknown input field(s): ${extra.join(', ')}`);
  if (v.limit === undefined) return 250;
  if (!Number.isInteger(v.limit) || v.limit < 1 || v.limit > 250) {
    throw invalid('`limit` must be an integer in 1..=250');
  }
  return v.limit;
}
