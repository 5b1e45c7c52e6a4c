// Confluence connector in JavaScript (componentize-js), against airlock:connector@0.1.0.
//
// Stream `pages` (full refresh per run, resumable keyset cursor), live CQL `search`, `get` by
// page id, `check-permission`, and the read-only action `spaces`. Settings: `base_url` (site
// root), optional `page_limit` (pages per sync page, 1..=250, default 25). No credentials: the
// host's gate injects HTTP Basic into every request this connector sends with `fetch`, which
// componentize-js implements over wasi:http/outgoing-handler.

import { log, setting } from 'airlock:connector/host@0.1.0';
import {
  VERSION, SPACES_SCHEMA, ConnectorError, invalid, statusError, pathOf, Config, contentId,
  firstPagesUrl, decodeCursor, pagesPage, pageDocument, searchDocument, cqlString, cursorParam,
  spacesInput,
} from './lib.js';

const config = () => new Config(setting('base_url'), setting('page_limit'));

// Fetch and parse JSON, raising the contract error for a failing status. A request the gate
// refuses makes fetch reject (wasi:http's HTTP-request-denied): that is `forbidden`.
async function request(method, url, body) {
  const init = { method, headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    const why = String(e?.message ?? e);
    if (/denied/i.test(why)) throw new ConnectorError('forbidden', `request denied by host policy: ${method} ${pathOf(url)}`);
    throw new ConnectorError('upstream', `${method} ${pathOf(url)}: transport error: ${why}`);
  }
  const text = await res.text();
  const err = statusError(res.status, res.headers.get('retry-after'), method, url, text);
  if (err) throw err;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConnectorError('upstream', `${method} ${pathOf(url)}: not JSON: ${e.message}`);
  }
}

// Every export answers a contract error or a value: anything unexpected becomes `internal`
// (a plain thrown Error would trap the instance instead).
function contract(fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (e) {
      if (e instanceof ConnectorError) throw e;
      throw new ConnectorError('internal', `${e?.name ?? 'Error'}: ${e?.message ?? e}`);
    }
  };
}

export const connector = {
  info() {
    return {
      name: 'js-confluence',
      version: VERSION,
      description: 'Confluence Cloud pages (example connector in JavaScript)',
      streams: [{
        name: 'pages',
        description: 'Current pages with the storage body as text; trashed pages become deletes. '
          + 'Full refresh per run, resumable mid-run.',
      }],
      actions: [{
        name: 'spaces',
        description: 'List the spaces the credentials can see (id, key, name, type, status).',
        inputSchema: JSON.stringify(SPACES_SCHEMA),
        writes: false,
      }],
    };
  },

  health: contract(async () => {
    const cfg = config();
    await request('GET', cfg.url('/wiki/api/v2/spaces', { limit: 1 }));
    return { ok: true, message: `Confluence at ${cfg.base} accepted the credentials` };
  }),

  search: contract(async (req) => {
    const cfg = config();
    const query = req.query.trim();
    if (!query) throw invalid('search query is empty');
    const limit = req.limit === 0 ? 25 : Math.min(req.limit, 100);
    const reply = await request('GET', cfg.url('/wiki/rest/api/search', {
      cql: `type = page AND text ~ ${cqlString(query)}`,
      limit,
      cursor: req.cursor ?? undefined,
    }));
    const hits = (reply.results ?? []).map((h) => searchDocument(h, cfg)).filter(Boolean).slice(0, limit);
    const next = hits.length ? cursorParam(reply?._links?.next) : undefined;
    return { hits, nextCursor: next };
  }),

  get: contract(async (id) => {
    const cfg = config();
    const page = await request('GET', cfg.url(`/wiki/api/v2/pages/${contentId(id)}`, { 'body-format': 'storage' }));
    return pageDocument(page, cfg);
  }),

  checkPermission: contract(async (principal, id) => {
    const cfg = config();
    if (!principal.trim()) throw invalid('principal is empty');
    const reply = await request('POST', cfg.url(`/wiki/rest/api/content/${contentId(id)}/permission/check`), {
      subject: { type: 'user', identifier: principal },
      operation: 'read',
    });
    return reply.hasPermission === true;
  }),

  sync: contract(async (stream, cursor) => {
    if (stream !== 'pages') throw invalid(`unknown stream \`${stream}\` (this connector has \`pages\`)`);
    const cfg = config();
    const { next } = decodeCursor(cursor);
    const list = await request('GET', next ? cfg.resolve(next) : firstPagesUrl(cfg));
    return pagesPage(list, cfg, next);
  }),

  invoke: contract(async (action, input) => {
    if (action !== 'spaces') throw new ConnectorError('not-found', `unknown action \`${action}\``);
    const limit = spacesInput(input);
    const cfg = config();
    const spaces = [];
    let url = cfg.url('/wiki/api/v2/spaces', { limit: Math.min(limit, 250) });
    for (let pages = 0; url && spaces.length < limit; pages += 1) {
      if (pages === 40) {
        log('warn', 'spaces: stopped after 40 pages');
        break;
      }
      const reply = await request('GET', url);
      for (const s of reply.results ?? []) {
        spaces.push({ id: s.id, key: s.key, name: s.name, type: s.type, status: s.status });
      }
      url = reply?._links?.next ? cfg.resolve(reply._links.next) : undefined;
    }
    return JSON.stringify(spaces.slice(0, limit));
  }),
};
