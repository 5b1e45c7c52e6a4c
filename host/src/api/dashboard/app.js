// Airlock dashboard: polls the /v1 API every 2 s with the user's bearer token and renders what it
// answers. Every value from the API may come from a connector or an upstream and is hostile:
// it is only ever placed with textContent / append(string) / dataset, never parsed as HTML.
'use strict';

(() => {
  const POLL_MS = 2000;
  const KEY = 'airlock.token';
  const AUDIT_ROWS = 50;
  let token = null;
  let timer = null;
  let lastOk = null;

  const $ = (id) => document.getElementById(id);

  /// An element with a class and children (strings become text nodes, never markup).
  function el(tag, cls, ...kids) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : String(k));
    }
    return e;
  }

  const text = (v) => (v === null || v === undefined ? '' : String(v));

  /// At most `n` characters, the whole value in the tooltip.
  function clip(v, n) {
    const s = text(v);
    const span = el('span', null, s.length > n ? s.slice(0, n) + '…' : s);
    if (s.length > n) span.title = s;
    return span;
  }

  const badge = (label, kind) => el('span', 'badge ' + kind, label);

  function ago(ts) {
    if (!ts) return '—';
    const t = Date.parse(ts);
    if (Number.isNaN(t)) return text(ts);
    const s = Math.round((Date.now() - t) / 1000);
    if (s < -5) return 'in ' + dur(-s);
    if (s < 5) return 'just now';
    return dur(s) + ' ago';
  }

  function dur(s) {
    if (s < 90) return s + ' s';
    if (s < 5400) return Math.round(s / 60) + ' min';
    if (s < 172800) return Math.round(s / 3600) + ' h';
    return Math.round(s / 86400) + ' d';
  }

  function table(headers, rows, cls) {
    const t = el('table', cls || null);
    t.append(el('thead', null, el('tr', null, ...headers.map((h) => el('th', null, h)))));
    t.append(el('tbody', null, ...rows));
    return el('div', 'scroll', t);
  }

  const td = (...kids) => el('td', null, ...kids);

  // ---- the token --------------------------------------------------------------------------

  /// A token handed over in the URL fragment (`/#token=...`, never sent to the server); the
  /// fragment is then removed from the address bar and history.
  function tokenFromFragment() {
    const h = location.hash.replace(/^#/, '');
    if (!h) return null;
    const t = new URLSearchParams(h).get('token');
    history.replaceState(null, '', location.pathname + location.search);
    return t && t.trim() ? t.trim() : null;
  }

  function setToken(t) {
    token = t;
    try {
      if (t) sessionStorage.setItem(KEY, t);
      else sessionStorage.removeItem(KEY);
    } catch (_) {
      // Storage may be disabled; the token then lasts as long as the page.
    }
  }

  // ---- the API ----------------------------------------------------------------------------

  class Unreachable extends Error {}

  async function api(path, init) {
    const opts = Object.assign({}, init || {});
    opts.headers = { Authorization: 'Bearer ' + token };
    if (opts.body) opts.headers['Content-Type'] = 'application/json';
    opts.cache = 'no-store';
    opts.credentials = 'omit';
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (_) {
      throw new Unreachable();
    }
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      body = null;
    }
    return { status: resp.status, body };
  }

  /// What a failed answer says, for a section.
  function sectionError(r) {
    if (r.status === 403) return el('p', 'note admin-only', 'admin only — this token may not see this');
    const e = (r.body && r.body.error) || {};
    return el('p', 'error', `${text(e.code) || 'error'}: ${text(e.message)} (HTTP ${r.status})`);
  }

  // ---- states -----------------------------------------------------------------------------

  function showState(kind) {
    const s = $('state');
    const live = $('live');
    s.hidden = kind === 'ok';
    s.className = 'banner ' + kind;
    document.body.dataset.state = kind;
    if (kind === 'ok') {
      lastOk = new Date();
      live.className = 'pill ok';
      live.textContent = 'live · updated ' + lastOk.toLocaleTimeString();
    } else if (kind === 'no-token') {
      live.className = 'pill';
      live.textContent = 'not connected';
      s.textContent = 'No token. Paste an API token above (airlock tokens create --principal NAME), or open this page as /#token=alk_…';
    } else if (kind === 'bad-token') {
      live.className = 'pill bad';
      live.textContent = 'token refused';
      s.textContent = 'The daemon refused this token (401: unknown or revoked). Paste a valid token above.';
    } else if (kind === 'bad-format') {
      live.className = 'pill bad';
      live.textContent = 'not connected';
      s.textContent = 'That is not a token: a token is one word of printable characters (alk_…).';
    } else if (kind === 'unreachable') {
      live.className = 'pill bad';
      live.textContent = 'daemon unreachable';
      s.textContent = `Cannot reach the Airlock daemon at ${location.origin}; retrying every ${POLL_MS / 1000} s.` +
        (lastOk ? ` The data below is from ${lastOk.toLocaleTimeString()}.` : '');
    }
    document.querySelector('main').classList.toggle('stale', kind === 'unreachable');
  }

  function clearData() {
    for (const id of ['connectors', 'traffic', 'sync', 'approvals', 'webhooks', 'audit', 'search-results', 'problems']) {
      $(id).replaceChildren();
    }
    $('problems').hidden = true;
    $('tenant').textContent = '';
  }

  // ---- charts -----------------------------------------------------------------------------

  const SVG = 'http://www.w3.org/2000/svg';
  const CW = 180;
  const CH = 40;

  function svgEl(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const k of kids) e.append(k);
    return e;
  }

  const nums = (a) => (Array.isArray(a) ? a.map((v) => (typeof v === 'number' && Number.isFinite(v) ? v : null)) : []);

  /// A small chart of one value per minute (oldest first): bars, or lines for several series.
  /// Drawn as SVG elements with classes (the CSP allows no inline style).
  function chart(kind, series, what) {
    const all = series.flatMap((s) => s.values).filter((v) => v !== null);
    const max = Math.max(0, ...all);
    const n = Math.max(1, ...series.map((s) => s.values.length));
    const top = max > 0 ? max : 1;
    const y = (v) => CH - 1 - (v / top) * (CH - 4);
    const svg = svgEl('svg', { viewBox: `0 0 ${CW} ${CH}`, preserveAspectRatio: 'none', class: 'chart ' + kind, role: 'img', 'aria-label': what });
    svg.dataset.max = String(max);
    svg.append(svgEl('title', null, what), svgEl('line', { x1: 0, y1: CH - 0.5, x2: CW, y2: CH - 0.5, class: 'axis' }));
    const w = CW / n;
    for (const s of series) {
      if (kind === 'bars') {
        s.values.forEach((v, i) => {
          if (!v) return;
          const h = Math.max(1, CH - 1 - y(v));
          svg.append(svgEl('rect', { x: (i * w + 0.5).toFixed(1), y: (CH - 1 - h).toFixed(1), width: Math.max(1, w - 1).toFixed(1), height: h.toFixed(1), class: 'bar ' + s.cls }));
        });
      } else {
        // A line through the minutes that have a value; a gap where one has none.
        let pts = [];
        const flush = () => {
          if (pts.length === 1) svg.append(svgEl('circle', { cx: pts[0][0], cy: pts[0][1], r: 2.5, class: 'dot ' + s.cls }));
          else if (pts.length) svg.append(svgEl('polyline', { points: pts.map((p) => p.join(',')).join(' '), class: 'line ' + s.cls }));
          pts = [];
        };
        s.values.forEach((v, i) => {
          if (v === null) return flush();
          pts.push([(i * w + w / 2).toFixed(1), y(v).toFixed(1)]);
        });
        flush();
      }
    }
    return svg;
  }

  const fmtMs = (v) => (v === null || v === undefined ? '—' : v >= 1000 ? (v / 1000).toFixed(1) + ' s' : Math.round(v) + ' ms');

  function chartBox(title, svg) {
    return el('figure', 'chart-box', el('figcaption', 'small', title), svg,
      el('div', 'chart-axis', el('span', null, '60 min ago'), el('span', null, 'now')));
  }

  function renderTraffic(r) {
    const box = $('traffic');
    if (r.status !== 200) return box.replaceChildren(sectionError(r));
    const list = Array.isArray(r.body.grants) ? r.body.grants : [];
    if (!list.length) return box.replaceChildren(el('p', 'empty', 'No grants in this tenant.'));
    box.replaceChildren(...list.map((g) => {
      const t = g.total || {};
      const reqs = nums(g.requests);
      const errs = nums(g.errors);
      const errPct = reqs.map((n, i) => (n ? (100 * (errs[i] || 0)) / n : null));
      const total = Number(t.requests) || 0;
      const errRate = total ? ((100 * (Number(t.errors) || 0)) / total).toFixed(1) + ' %' : '—';
      const card = el('article', 'card chart-card');
      card.dataset.grant = text(g.connector) + '/' + text(g.grant);
      card.dataset.requests = String(total);
      card.append(
        el('div', 'card-head', el('strong', null, text(g.connector), el('span', 'muted', ' / ' + text(g.grant))),
          el('span', 'small muted', `${total} requests in 1 h`)),
        el('div', 'chart-row',
          chartBox(`requests/min · peak ${Math.max(0, ...reqs.filter((v) => v !== null))}`,
            chart('bars', [{ values: reqs, cls: 'requests' }], 'requests per minute')),
          chartBox(`errors · ${errRate}`, chart('lines', [{ values: errPct, cls: 'errors' }], 'error rate per minute (%)')),
          chartBox(`latency · mean ${fmtMs(t.latency_ms_mean)} · p95 ≤ ${fmtMs(t.latency_ms_p95)}`,
            chart('lines', [{ values: nums(g.latency_ms_p95), cls: 'p95' }, { values: nums(g.latency_ms_mean), cls: 'mean' }],
              'latency per minute: mean and p95 (ms)'))));
      return card;
    }));
  }

  // ---- search -----------------------------------------------------------------------------

  let modes = ['keyword'];

  function setModes(list) {
    const want = Array.isArray(list) && list.length ? list.map(text) : ['keyword'];
    if (want.join() === modes.join() && $('search-mode').options.length === want.length) return;
    modes = want;
    const sel = $('search-mode');
    const keep = sel.value;
    sel.replaceChildren(...modes.map((m) => {
      const o = el('option', null, m);
      o.value = m;
      return o;
    }));
    sel.value = modes.includes(keep) ? keep : 'keyword';
    sel.disabled = modes.length < 2;
    sel.title = modes.length < 2 ? 'semantic and hybrid search need [search.semantic] in the config' : '';
  }

  /// A snippet with the matched terms (wrapped in [ ] by the API) as <mark>, all as text.
  function snippet(s) {
    const p = el('p', 'snippet small');
    const parts = text(s).split(/(\[[^\[\]]*\])/);
    for (const part of parts) {
      if (/^\[[^\[\]]*\]$/.test(part)) p.append(el('mark', null, part.slice(1, -1)));
      else if (part) p.append(part);
    }
    return p;
  }

  /// A link only to a web address; anything else (javascript:, data:) stays text.
  function hitTitle(h) {
    const title = text(h.title) || text(h.id);
    const url = text(h.url);
    if (/^https?:\/\//i.test(url)) {
      const a = el('a', null, title);
      a.href = url;
      a.rel = 'noopener noreferrer';
      a.target = '_blank';
      return a;
    }
    return el('span', null, title);
  }

  async function runSearch() {
    const box = $('search-results');
    const query = $('search-input').value.trim();
    if (!token) return showState('no-token');
    if (!query) return box.replaceChildren(el('p', 'empty', 'Type words to search for.'));
    const mode = $('search-mode').value || 'keyword';
    delete box.dataset.query;
    box.replaceChildren(el('p', 'muted small', 'Searching…'));
    let r;
    try {
      r = await api('/v1/search', { method: 'POST', body: JSON.stringify({ query, mode, limit: 20 }) });
    } catch (e) {
      if (!(e instanceof Unreachable)) throw e;
      return showState('unreachable');
    }
    if (r.status === 401) return refresh();
    if (r.status !== 200) return box.replaceChildren(sectionError(r));
    const hits = Array.isArray(r.body.hits) ? r.body.hits : [];
    box.dataset.query = query;
    box.dataset.count = String(hits.length);
    const head = el('p', 'small search-count', hits.length ? `${hits.length} hit${hits.length === 1 ? '' : 's'} for “${query}” (${mode})` : `No hits for “${query}” (${mode}).`);
    const failed = Array.isArray(r.body.failed) ? r.body.failed : [];
    const items = hits.map((h) => {
      const li = el('li', 'hit',
        el('div', null, el('strong', null, hitTitle(h)),
          el('span', 'muted small', ` · ${text(h.connector)} · ${text(h.kind)} · ${ago(h.updated_at)}`)),
        snippet(h.snippet));
      li.dataset.hit = `${text(h.connector)}/${text(h.kind)}/${text(h.id)}`;
      return li;
    });
    box.replaceChildren(head,
      ...failed.map((f) => el('p', 'error small', `${text(f.connector)}: ${clip(f.error, 200).textContent}`)),
      items.length ? el('ol', 'hits', ...items) : el('span'));
  }

  // ---- problems ---------------------------------------------------------------------------

  /// What an operator must see first: connectors that did not load, reloads that failed, a
  /// config file that could not be applied.
  function renderProblems(r) {
    const box = $('problems');
    if (r.status !== 200) return;
    const list = Array.isArray(r.body.connectors) ? r.body.connectors : [];
    const items = [];
    for (const c of list) {
      if (c.status !== 'ready') {
        const li = el('li', null, 'Connector ', el('strong', null, text(c.id)), ' did not load: ', clip(c.error || 'unknown error', 400),
          el('span', 'muted small', ' (' + text(c.component) + ')'));
        li.dataset.problem = 'load:' + text(c.id);
        items.push(li);
      }
      if (c.reload_error) {
        const li = el('li', null, 'Reload of ', el('strong', null, text(c.id)), ' failed; the running version keeps serving: ', clip(c.reload_error, 400));
        li.dataset.problem = 'reload:' + text(c.id);
        items.push(li);
      }
    }
    const lr = r.body.last_reload;
    if (lr && lr.error) {
      const li = el('li', null, 'The config file was not applied at the last reload (' + ago(lr.at) + '): ', clip(lr.error, 600));
      li.dataset.problem = 'config';
      items.push(li);
    }
    box.hidden = !items.length;
    if (!items.length) return box.replaceChildren();
    box.replaceChildren(el('strong', 'problems-head', `Needs attention (${items.length})`), el('ul', null, ...items));
  }

  // ---- sections ---------------------------------------------------------------------------

  function health(c) {
    if (c.status !== 'ready') return ['failed', 'bad'];
    const gs = Array.isArray(c.grants) ? c.grants : [];
    if (gs.some((g) => g.breaker === 'open')) return ['degraded', 'bad'];
    if (gs.some((g) => g.breaker === 'half-open' || g.paused_for_secs > 0)) return ['recovering', 'warn'];
    return ['healthy', 'ok'];
  }

  const BREAKER = { closed: 'ok', 'half-open': 'warn', open: 'bad' };

  function connectorCard(c) {
    const [h, kind] = health(c);
    const info = c.info || {};
    const card = el('article', 'card');
    card.dataset.connector = text(c.id);
    card.append(el('div', 'card-head', el('strong', 'name', text(c.id)), badge(h, kind + ' health')));
    const about = [info.name, info.version && 'v' + info.version, c.contract && 'contract ' + c.contract]
      .filter(Boolean).map(text).join(' · ');
    if (about) card.append(el('div', 'muted small', about));
    if (c.error) card.append(el('p', 'error small', clip(c.error, 400)));
    const streams = Array.isArray(info.streams) ? info.streams.map((s) => text(s.name)) : [];
    const actions = Array.isArray(info.actions) ? info.actions : [];
    if (streams.length || actions.length) {
      card.append(el('div', 'small',
        el('span', 'muted', 'streams '), streams.join(', ') || '—',
        el('span', 'muted', ' · actions '),
        actions.map((a) => text(a.name) + (a.writes ? ' (writes)' : '')).join(', ') || '—'));
    }
    const grants = Array.isArray(c.grants) ? c.grants : [];
    if (grants.length) {
      const rows = grants.map((g) => {
        const tr = el('tr', null,
          td(g.name ? text(g.name) : '#' + text(g.grant)),
          td(badge(text(g.breaker), (BREAKER[g.breaker] || 'warn') + ' breaker')),
          td(`${text(g.rate_per_second)}/s (burst ${text(g.burst)})`),
          td(`${text(g.in_flight)} / ${text(g.concurrency)}`),
          td(g.paused_for_secs > 0 ? 'paused ' + Math.ceil(g.paused_for_secs) + ' s' : '—'),
          td(g.cache_ttl_secs ? text(g.cache_ttl_secs) + ' s' : '—'));
        return tr;
      });
      card.append(table(['grant', 'breaker', 'rate', 'in flight', 'pause', 'cache'], rows, 'grants'));
    }
    return card;
  }

  function renderConnectors(r) {
    const box = $('connectors');
    if (r.status !== 200) return box.replaceChildren(sectionError(r));
    $('tenant').textContent = 'tenant ' + text(r.body.tenant);
    setModes(r.body.search_modes);
    const list = Array.isArray(r.body.connectors) ? r.body.connectors : [];
    if (!list.length) return box.replaceChildren(el('p', 'empty', 'No connectors in this tenant.'));
    box.replaceChildren(...list.map(connectorCard));
  }

  function syncState(s) {
    if (s.running) return badge('syncing', 'info');
    if (s.resume_after && Date.parse(s.resume_after) > Date.now()) {
      return badge('rate-limited, resumes ' + ago(s.resume_after), 'warn');
    }
    if (s.last_error && (!s.last_success_at || text(s.last_error_at) > text(s.last_success_at))) {
      return badge('failed', 'bad');
    }
    if (s.last_success_at) return badge('up to date', 'ok');
    return badge('never synced', 'warn');
  }

  // A contract 0.2.0 connector's latest `host.progress` report (null for 0.1.0 connectors).
  function progressText(p) {
    if (!p || typeof p !== 'object') return '—';
    const done = text(p.done);
    const of = p.total === null || p.total === undefined ? '' : ' / ' + text(p.total);
    return el('span', 'progress', done + of, p.message ? ' · ' : null, p.message ? clip(p.message, 80) : null);
  }

  /// Records per minute over the hour, from `/v1/activity`'s streams (this daemon's runs).
  function throughput(act, s) {
    const streams = act && act.status === 200 && Array.isArray(act.body.streams) ? act.body.streams : [];
    const a = streams.find((x) => x.connector === s.connector && x.stream === s.stream);
    const recs = a ? nums(a.records) : [];
    const total = a && a.total ? Number(a.total.records) || 0 : 0;
    const span = el('span', 'throughput', chart('bars', [{ values: recs, cls: 'records' }], 'records synced per minute'),
      el('span', 'small muted', ` ${total} in 1 h`));
    span.dataset.records = String(total);
    return span;
  }

  function renderSync(r, act) {
    const box = $('sync');
    if (r.status !== 200) return box.replaceChildren(sectionError(r));
    const list = Array.isArray(r.body.streams) ? r.body.streams : [];
    if (!list.length) return box.replaceChildren(el('p', 'empty', 'No stream has synced yet.'));
    const rows = list.map((s) => {
      const tr = el('tr', null,
        td(text(s.connector)),
        td(text(s.stream)),
        td(el('span', 'num records', text(s.records))),
        td(syncState(s)),
        td(progressText(s.progress)),
        td(throughput(act, s)),
        td(ago(s.last_success_at)),
        td(ago(s.cursor_updated_at)),
        td(s.last_error ? el('span', 'error', clip(s.last_error, 200)) : '—'));
      tr.dataset.stream = text(s.connector) + '/' + text(s.stream);
      return tr;
    });
    box.replaceChildren(table(['connector', 'stream', 'records', 'state', 'progress', 'records/min (1 h)', 'last success', 'cursor moved', 'last error'], rows));
  }

  const STATUS = { pending: 'warn', approved: 'info', executed: 'ok', denied: 'muted', failed: 'bad' };

  let isAdmin = false;

  async function decide(id, verb) {
    if (!window.confirm(`${verb} approval ${id}?`)) return;
    try {
      const r = await api(`/v1/approvals/${encodeURIComponent(id)}/${verb}`, { method: 'POST', body: '{}' });
      if (r.status !== 200) window.alert(sectionError(r).textContent);
    } catch (_) {
      showState('unreachable');
    }
    refresh();
  }

  function renderApprovals(r) {
    const box = $('approvals');
    if (r.status !== 200) return box.replaceChildren(sectionError(r));
    const list = Array.isArray(r.body.approvals) ? r.body.approvals : [];
    const pending = list.filter((a) => a.status === 'pending');
    // Pending first, then the most recent decisions.
    const shown = pending.concat(list.filter((a) => a.status !== 'pending').slice(0, 10));
    const head = el('p', 'small', el('strong', 'pending-count', String(pending.length)), ' pending');
    if (!shown.length) return box.replaceChildren(head, el('p', 'empty', 'No approvals.'));
    const rows = shown.map((a) => {
      const cell = td();
      if (a.status === 'pending' && isAdmin) {
        const yes = el('button', 'approve', 'Approve');
        const no = el('button', 'deny', 'Deny');
        yes.addEventListener('click', () => decide(text(a.id), 'approve'));
        no.addEventListener('click', () => decide(text(a.id), 'deny'));
        cell.append(yes, ' ', no);
      } else if (a.decided_by) {
        cell.append(el('span', 'small', 'by ' + text(a.decided_by)));
      }
      const tr = el('tr', null,
        td(badge(text(a.status), STATUS[a.status] || 'warn')),
        td(el('strong', null, text(a.connector)), ' / ', text(a.action)),
        td(text(a.requested_by)),
        td(ago(a.created_at)),
        td(el('code', null, clip(JSON.stringify(a.input), 160))),
        cell);
      tr.dataset.approval = text(a.id);
      return tr;
    });
    box.replaceChildren(head, table(['status', 'action', 'requested by', 'asked', 'input', 'decision'], rows));
  }

  // Delivery state per webhook (admin only, like the audit log).
  function renderWebhooks(r) {
    const box = $('webhooks');
    if (r.status !== 200) return box.replaceChildren(sectionError(r));
    const list = Array.isArray(r.body.webhooks) ? r.body.webhooks : [];
    if (!list.length) return box.replaceChildren(el('p', 'empty', 'No webhooks configured.'));
    const rows = list.map((w) => el('tr', null,
      td(text(w.name)),
      td(el('span', 'target', clip(w.url, 80))),
      td(el('span', 'num', text(w.delivered))),
      td(w.pending ? badge(text(w.pending), 'warn') : el('span', 'num', '0')),
      td(w.dead ? badge(text(w.dead), 'bad') : el('span', 'num', '0')),
      td(w.last_delivered_at ? ago(w.last_delivered_at) : '—'),
      td(clip(w.last_error, 160) || '—')));
    box.replaceChildren(table(['webhook', 'url', 'delivered', 'pending', 'dead', 'last delivery', 'last error'], rows));
  }

  const DECISION = {
    allow: 'ok', ok: 'ok', deny: 'bad', error: 'bad', 'rate-limited': 'warn', 'circuit-open': 'bad',
    pending: 'warn', approved: 'info', denied: 'muted', created: 'info', revoked: 'muted',
  };

  function renderAudit(r) {
    const box = $('audit');
    isAdmin = r.status === 200;
    if (r.status !== 200) return box.replaceChildren(sectionError(r));
    const list = Array.isArray(r.body.rows) ? r.body.rows.slice().reverse() : [];
    if (!list.length) return box.replaceChildren(el('p', 'empty', 'No audit rows yet.'));
    const rows = list.map((a) => {
      const target = a.method ? `${text(a.method)} ${text(a.host)}${text(a.path)}` +
        (a.status ? ' → ' + text(a.status) : '') : '';
      const tr = el('tr', null,
        td(el('span', 'num', text(a.seq))),
        td(el('span', 'nowrap', ago(a.ts))),
        td(text(a.connector) || '—'),
        td(text(a.event)),
        td(badge(text(a.decision), DECISION[a.decision] || 'muted')),
        td(text(a.principal) || '—'),
        td(el('span', 'target', clip(target, 120))),
        td(clip(a.reason, 240)));
      tr.dataset.seq = text(a.seq);
      tr.title = text(a.ts);
      return tr;
    });
    box.replaceChildren(table(['#', 'when', 'connector', 'event', 'decision', 'principal', 'request', 'reason'], rows, 'audit'));
  }

  // ---- the loop ---------------------------------------------------------------------------

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, POLL_MS);
  }

  async function refresh() {
    clearTimeout(timer);
    if (!token) {
      clearData();
      return showState('no-token');
    }
    let answers;
    try {
      answers = await Promise.all([
        api('/v1/connectors'),
        api('/v1/sync'),
        api('/v1/audit?limit=' + AUDIT_ROWS),
        api('/v1/approvals'),
        api('/v1/webhooks'),
        api('/v1/activity'),
      ]);
    } catch (e) {
      if (!(e instanceof Unreachable)) throw e;
      showState('unreachable');
      return schedule();
    }
    const [c, s, au, ap, wh, act] = answers;
    if (answers.some((r) => r.status === 401)) {
      // Polling with a refused token is pointless; wait for a new one.
      clearData();
      return showState('bad-token');
    }
    showState('ok');
    renderProblems(c);
    renderConnectors(c);
    renderTraffic(act);
    renderSync(s, act);
    renderAudit(au);
    renderApprovals(ap);
    renderWebhooks(wh);
    schedule();
  }

  function start() {
    let stored = null;
    try {
      stored = sessionStorage.getItem(KEY);
    } catch (_) {
      stored = null;
    }
    const t = tokenFromFragment() || stored;
    if (t) setToken(t);
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = $('token-input');
      const v = input.value.trim();
      input.value = '';
      // A header value cannot hold spaces or control characters; fetch would throw.
      if (!/^[\x21-\x7e]+$/.test(v)) {
        setToken(null);
        clearData();
        return showState(v ? 'bad-format' : 'no-token');
      }
      setToken(v);
      refresh();
    });
    $('search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      runSearch();
    });
    $('forget').addEventListener('click', () => {
      setToken(null);
      refresh();
    });
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
