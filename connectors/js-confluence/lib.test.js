// Unit tests of the host-free logic; run natively: `node --test` in this directory.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  Config, ConnectorError, contentId, decodeCursor, firstPagesUrl, pagesPage, searchDocument,
  spacesInput, statusError, htmlToText, cursorParam,
} from './lib.js';

const cfg = new Config('http://127.0.0.1:8781/wiki/', '50');

const tagOf = (fn) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConnectorError, String(e));
    return e.payload.tag;
  }
  return null;
};

test('the first sync page lists current and trashed pages by id', () => {
  assert.equal(
    firstPagesUrl(cfg),
    'http://127.0.0.1:8781/wiki/api/v2/pages?body-format=storage&sort=id&status=current&status=trashed&limit=50',
  );
});

test('a page with a next link continues from it; the last page is done without a cursor', () => {
  const list = {
    results: [
      { id: '7', status: 'current', title: 'T', body: { storage: { value: '<p>a &amp; b</p>' } },
        version: { createdAt: '2025-01-01T00:00:00.000Z', number: 2 }, _links: { webui: '/spaces/X/pages/7' } },
      { id: 8, status: 'trashed', title: 'gone' },
    ],
    _links: { next: '/wiki/api/v2/pages?cursor=abc&limit=50' },
  };
  const page = pagesPage(list, cfg, undefined);
  assert.equal(page.done, false);
  assert.equal(page.nextCursor, '{"next":"/wiki/api/v2/pages?cursor=abc&limit=50"}');
  assert.deepEqual(page.upserts.map((d) => [d.id, d.body, d.url, d.updatedAt]), [
    ['7', 'a & b', 'http://127.0.0.1:8781/wiki/spaces/X/pages/7', '2025-01-01T00:00:00.000Z'],
  ]);
  assert.deepEqual(page.deletes, [{ kind: 'page', id: '8' }]);
  assert.equal(decodeCursor(page.nextCursor).next, '/wiki/api/v2/pages?cursor=abc&limit=50');
  const last = pagesPage({ results: [] }, cfg, '/wiki/api/v2/pages?cursor=abc');
  assert.deepEqual([last.done, last.nextCursor], [true, undefined]);
  // A repeated next link must not loop.
  const same = pagesPage({ results: [], _links: { next: '/wiki/api/v2/pages?cursor=abc' } }, cfg, '/wiki/api/v2/pages?cursor=abc');
  assert.equal(same.done, true);
});

test('a cursor cannot point anywhere but the pages listing', () => {
  for (const bad of ['x', '[]', '{"next":"http://evil/"}', '{"next":"/wiki/rest/api/admin"}', '{"next":3}']) {
    assert.equal(tagOf(() => decodeCursor(bad)), 'invalid-input', bad);
  }
});

test('HTTP statuses map to contract errors', () => {
  const err = (s, ra) => statusError(s, ra, 'GET', 'http://h/wiki/api/v2/pages?q=secret', '{"errors":[{"title":"Nope"}]}')?.payload;
  assert.equal(err(200), undefined);
  assert.equal(err(401).tag, 'unauthorized');
  assert.equal(err(403).tag, 'forbidden');
  assert.deepEqual(err(404), { tag: 'not-found', val: 'HTTP 404 from GET /wiki/api/v2/pages: Nope' });
  assert.deepEqual(err(429, '7'), { tag: 'rate-limited', val: 7 });
  assert.deepEqual(err(429, null), { tag: 'rate-limited', val: 60 });
  assert.deepEqual(err(503, '2'), { tag: 'rate-limited', val: 2 });
  assert.equal(err(503, null).tag, 'upstream');
  assert.equal(err(502).tag, 'upstream');
  assert.equal(err(400).tag, 'invalid-input');
});

test('ids and action input are validated', () => {
  assert.equal(contentId(' 42 '), '42');
  for (const bad of ['', 'airlock-conformance-unknown', '1/2', '../1', '1?x=1']) {
    assert.equal(tagOf(() => contentId(bad)), 'invalid-input', bad);
  }
  assert.equal(spacesInput('{}'), 250);
  assert.equal(spacesInput('{"limit": 3}'), 3);
  for (const bad of ['[]', '"x"', '3', '{"limit": 0}', '{"limit": 1.5}', '{"other": 1}', 'nope']) {
    assert.equal(tagOf(() => spacesInput(bad)), 'invalid-input', bad);
  }
});

test('search hits become page documents without highlight markers', () => {
  const d = searchDocument({ content: { id: '9', status: 'current' }, title: '@@@hl@@@VPN@@@endhl@@@ guide',
    excerpt: 'use the @@@hl@@@vpn@@@endhl@@@', url: '/spaces/X/pages/9', lastModified: '2025-01-01T00:00:00Z' }, cfg);
  assert.deepEqual([d.id, d.title, d.body, d.url], ['9', 'VPN guide', 'use the vpn', 'http://127.0.0.1:8781/wiki/spaces/X/pages/9']);
  assert.equal(searchDocument({ user: {} }, cfg), null);
  assert.equal(cursorParam('/rest/api/search?cql=x&cursor=a%2Bb&limit=5'), 'a+b');
  assert.equal(htmlToText('<p>x</p><script>y</script><p>&#65;&lt;</p>'), 'x\nA<');
});
