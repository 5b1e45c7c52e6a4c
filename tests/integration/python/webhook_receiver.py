"""A webhook receiver for tests/integration/tests/all/webhooks.rs: verifies every delivery with the
Standard Webhooks reference library (PyPI `standardwebhooks`), fails a seeded share of them with
HTTP 500 the way a flaky application does, and appends each accepted one to a JSON-lines file
as {"id": webhook-id, "payload": ...}. Signature failures are appended to the file too, as
{"bad_signature": ...}, so the test sees them.

    python webhook_receiver.py --secret whsec_... --out FILE [--fail-rate 0.3] [--seed 7]

Prints `listening on http://127.0.0.1:PORT` once it accepts connections.
"""

import argparse
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    verifier = Webhook(args.secret)
    rng = random.Random(args.seed)
    lock = threading.Lock()

    def record(entry):
        with lock, open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                payload = verifier.verify(body, headers)
            except Exception as e:  # any verification failure is the test's business
                record({"bad_signature": str(e)})
                self.send_response(401)
                self.end_headers()
                return
            with lock:
                fail = rng.random() < args.fail_rate
            if fail:
                self.send_response(500)
                self.end_headers()
                return
            record({"id": headers["webhook-id"], "payload": payload})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
