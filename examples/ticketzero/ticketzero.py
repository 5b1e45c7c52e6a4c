"""TicketZero on Airlock: answer new Atera tickets with an LLM, a person approving every reply.

The loop, all through Airlock's API with one token (no Atera, Graph or LLM credential here):

1. follow the change feed (`GET /v1/changes`, long-polled) for new or changed Atera tickets;
2. read the ticket (`GET /v1/documents/atera/ticket/{id}`): its end user's email is in the
   metadata;
3. look the end user up in Microsoft 365 (`msgraph` action `user-context`: profile and managed
   devices with their compliance state);
4. ask the `chat` route for a reply (it fails over between LLM providers and says which one
   answered);
5. post the reply as an Atera comment (`atera` action `add-comment`), a write that waits for a
   person to approve it in Airlock (`/v1/approvals`): nothing reaches the customer unapproved.

Each ticket is handled once, also across restarts of this script or of the daemon: the feed
position and the tickets handled are kept in a state file written after each page, and before
asking for a new comment the script looks for one it already asked for (in `/v1/approvals`), so a
crash between asking and saving never asks twice.

    python ticketzero.py --airlock http://127.0.0.1:7700 --token alk_... --state tz.json

Needs only `requests`. `--help` lists the options.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import time

import requests


class Airlock:
    """The few calls TicketZero makes, with the token and a timeout on each."""

    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path, **params):
        r = self.http.get(f"{self.base}{path}", params=params, timeout=90)
        return r.status_code, r.json()

    def invoke(self, connector, op, payload):
        body = {"op": op, "input": payload}
        r = self.http.post(f"{self.base}/v1/connectors/{connector}/invoke", json=body, timeout=120)
        return r.status_code, r.json()


def load_state(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {"after": 0, "tickets": {}}


def save_state(path, state):
    # Written whole and renamed: a crash leaves the old state or the new one, never half.
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def asked_already(api, principal, ticket_id):
    """The approval this principal already asked for on the ticket, if any (not denied)."""
    status, body = api.get("/v1/approvals")
    if status != 200:
        raise RuntimeError(f"cannot list approvals: {status} {body}")
    for a in body["approvals"]:
        same = (a["connector"] == "atera" and a["action"] == "add-comment"
                and a["requested_by"] == principal and a["input"].get("ticket_id") == ticket_id)
        if same and a["status"] != "denied":
            return a
    return None


def user_context(api, email):
    """Profile and devices of the ticket's end user, or None when Graph does not know them."""
    if not email:
        return None
    status, body = api.invoke("msgraph", "user-context", {"email": email})
    if status == 200:
        return body["result"]
    if status == 404:
        return None
    raise RuntimeError(f"user-context for {email}: {status} {body}")


def prompt(ticket, context):
    meta = ticket.get("metadata") or {}
    who = meta.get("end_user_name") or meta.get("end_user_email") or "the end user"
    lines = [f"Ticket #{meta.get('ticket_number', ticket['id'])} from {who}: {ticket['title']}",
             ticket.get("body") or ""]
    if context:
        profile = context.get("user") or {}
        devices = context.get("managedDevices") or []
        lines.append(f"{who} is {profile.get('jobTitle') or 'staff'} in "
                     f"{profile.get('department') or 'an unknown department'}.")
        for d in devices[:5]:
            lines.append(f"Device {d.get('deviceName')}: {d.get('operatingSystem')}, "
                         f"{d.get('complianceState')}.")
    return "\n".join(lines)


def handle(api, principal, route, ticket_id):
    """Asks for one reply comment on the ticket (or finds the one already asked for)."""
    tid = int(ticket_id)
    existing = asked_already(api, principal, tid)
    if existing:
        return {"approval": existing["id"], "answered_by": None, "resumed": True}
    status, ticket = api.get(f"/v1/documents/atera/ticket/{ticket_id}")
    if status != 200:
        raise RuntimeError(f"ticket {ticket_id}: {status} {ticket}")
    context = user_context(api, (ticket.get("metadata") or {}).get("end_user_email"))
    messages = [
        {"role": "system", "content": "You are a help desk technician. Answer briefly."},
        {"role": "user", "content": prompt(ticket, context)},
    ]
    status, answer = api.invoke(route, "chat", {"messages": messages})
    if status != 200:
        raise RuntimeError(f"chat for ticket {ticket_id}: {status} {answer}")
    routed = answer["result"]
    reply = routed["result"]["reply"]
    status, asked = api.invoke("atera", "add-comment", {"ticket_id": tid, "comment": reply})
    if status != 202:
        raise RuntimeError(f"add-comment on ticket {ticket_id}: {status} {asked}")
    return {"approval": asked["approval"]["id"], "answered_by": routed["answered_by"],
            "skipped": [f["connector"] for f in routed["failed"]],
            "user_found": context is not None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--airlock", default=os.environ.get("AIRLOCK_URL", "http://127.0.0.1:7700"),
                    help="Airlock's address (default $AIRLOCK_URL or http://127.0.0.1:7700)")
    ap.add_argument("--token", default=os.environ.get("AIRLOCK_TOKEN"),
                    help="an Airlock API token (default $AIRLOCK_TOKEN)")
    ap.add_argument("--principal", default=None,
                    help="the token's principal as approvals name it (default: token:ticketzero)")
    ap.add_argument("--state", default="ticketzero-state.json", help="where progress is kept")
    ap.add_argument("--route", default="chat", help="the chat route or connector (default chat)")
    ap.add_argument("--workers", type=int, default=10, help="tickets handled at once (default 10)")
    ap.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                    help="stop after this long without a new change (default: run until stopped)")
    args = ap.parse_args()
    if not args.token:
        ap.error("--token (or AIRLOCK_TOKEN) is required")
    principal = args.principal or "token:ticketzero"
    api = Airlock(args.airlock, args.token)
    state = load_state(args.state)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.workers)
    idle_since = time.monotonic()
    while True:
        wait = 5 if args.idle_exit is None else max(1, min(5, int(args.idle_exit)))
        status, page = api.get("/v1/changes", after=state["after"], connector="atera",
                               kind="ticket", limit=100, wait=wait)
        if status == 410:
            sys.exit(f"the change feed no longer holds position {state['after']}: {page}")
        if status != 200:
            raise RuntimeError(f"change feed: {status} {page}")
        fresh = []
        for c in page["changes"]:
            if c["op"] == "upsert" and c["id"] not in state["tickets"] and c["id"] not in fresh:
                fresh.append(c["id"])
        jobs = {pool.submit(handle, api, principal, args.route, t): t for t in fresh}
        for job in concurrent.futures.as_completed(jobs):
            t = jobs[job]
            state["tickets"][t] = job.result()
            print(json.dumps({"ticket": t, **state["tickets"][t]}), flush=True)
        state["after"] = page["next"]
        save_state(args.state, state)
        if page["changes"]:
            idle_since = time.monotonic()
        elif args.idle_exit is not None and time.monotonic() - idle_since >= args.idle_exit:
            return


if __name__ == "__main__":
    main()
