"""Unit tests of the host-free logic; run natively: `python3 -m unittest` in this directory."""

import json
import unittest

import zendesk as z


class Cursors(unittest.TestCase):
    cfg = z.Config("http://127.0.0.1:8782/api/v2/", "50")

    def test_first_page_starts_at_zero_and_later_pages_follow_the_export_cursor(self):
        self.assertIn("start_time=0", z.ticket_export_url(self.cfg, z.decode_cursor(None)))
        self.assertIn("per_page=50", z.ticket_export_url(self.cfg, {}))
        url = z.ticket_export_url(self.cfg, z.decode_cursor('{"c":"a b"}'))
        self.assertTrue(url.endswith("cursor=a+b"), url)

    def test_a_malformed_cursor_is_invalid_input(self):
        for bad in ["x", "[]", '{"c": 3}']:
            with self.assertRaises(z.ConnectorError) as e:
                z.decode_cursor(bad)
            self.assertEqual(e.exception.kind, "invalid-input")

    def test_export_page_maps_tickets_and_deletes_and_keeps_the_cursor_at_the_end(self):
        export = {
            "tickets": [
                {"id": 7, "subject": "Printer", "description": "On fire", "status": "open",
                 "updated_at": "2025-01-02T03:04:05Z", "tags": ["hw"]},
                {"id": 8, "status": "deleted", "updated_at": "2025-01-03T00:00:00Z"},
            ],
            "after_cursor": "n1", "end_of_stream": False,
        }
        ups, dels, nxt, done = z.ticket_page(export, self.cfg, {})
        self.assertEqual([d["id"] for d in ups], ["7"])
        self.assertEqual(ups[0]["url"], "http://127.0.0.1:8782/agent/tickets/7")
        self.assertEqual(json.loads(ups[0]["metadata"])["tags"], ["hw"])
        self.assertEqual(dels, [("ticket", "8")])
        self.assertEqual((nxt, done), ('{"c":"n1"}', False))
        # The last page without a cursor keeps the previous one, and ends the run.
        _, _, nxt, done = z.ticket_page({"tickets": [], "end_of_stream": True}, self.cfg, {"c": "n1"})
        self.assertEqual((nxt, done), ('{"c":"n1"}', True))
        # A repeated cursor without end_of_stream must not loop.
        same = {"tickets": [], "after_cursor": "n1", "end_of_stream": False}
        self.assertTrue(z.ticket_page(same, self.cfg, {"c": "n1"})[3])


class Errors(unittest.TestCase):
    def kind(self, status, retry=None):
        e = z.status_error(status, retry, "GET", "http://h/api/v2/x.json?query=secret", b'{"error":"E","description":"D"}')
        return e and (e.kind, e.value)

    def test_statuses_map_to_contract_errors(self):
        self.assertIsNone(self.kind(200))
        self.assertEqual(self.kind(401)[0], "unauthorized")
        self.assertEqual(self.kind(403)[0], "forbidden")
        self.assertEqual(self.kind(404), ("not-found", "HTTP 404 from GET /api/v2/x.json: E: D"))
        self.assertEqual(self.kind(429, "7"), ("rate-limited", 7))
        self.assertEqual(self.kind(429), ("rate-limited", 60))
        self.assertEqual(self.kind(503, "3"), ("rate-limited", 3))
        self.assertEqual(self.kind(503)[0], "upstream")
        self.assertEqual(self.kind(500)[0], "upstream")
        self.assertEqual(self.kind(422)[0], "invalid-input")


class Inputs(unittest.TestCase):
    def test_ids_accept_digits_only(self):
        self.assertEqual(z.parse_ref(" 12 "), ("ticket", 12))
        self.assertEqual(z.parse_ref("article:9"), ("article", 9))
        for bad in ["", "ticket:", "../1", "1/2", "article:1?x=1", "user:1", "+1", "١٢", "0"]:
            with self.assertRaises(z.ConnectorError, msg=bad):
                z.parse_ref(bad)

    def test_action_input_follows_its_schema(self):
        self.assertEqual(z.ticket_id_input('{"ticket_id": 5}'), 5)
        for bad in ["[]", '"x"', "3", "{}", '{"ticket_id": true}', '{"ticket_id": 0}',
                    '{"ticket_id": 1, "x": 2}', "nope"]:
            with self.assertRaises(z.ConnectorError, msg=bad) as e:
                z.ticket_id_input(bad)
            self.assertEqual(e.exception.kind, "invalid-input")

    def test_search_paging_stops_before_result_1000(self):
        self.assertEqual(z.next_search_page(1, 100, True), 2)
        self.assertIsNone(z.next_search_page(10, 100, True))
        self.assertIsNone(z.next_search_page(1, 25, False))

    def test_article_html_becomes_text(self):
        self.assertEqual(z.html_to_text("<p>a &amp; b</p><p>c<script>x</script></p>"), "a & b\nc")


if __name__ == "__main__":
    unittest.main()
