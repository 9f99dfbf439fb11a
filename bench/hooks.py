"""How fast a helpdesk webhook is answered, and how fast its notes follow, on the real server.

python bench/hooks.py                      # IT tickets when ../shared/data is there, else the sample
python bench/hooks.py --events 300

Trains a model into a throwaway store, starts `escalation serve` with the Zendesk connector pointed at a fake
helpdesk on loopback (tests/hooks/fake_helpdesk.py, a real HTTP server), posts signed `ticket.created` events built
from the data's tickets one after another, and measures the time to each 202 (p50/p95/p99) and the time until every
note has been written (notes per second). Every event must be written exactly once. Results go to
bench/results/hooks_NAME.{md,json}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import tempfile
import time
import urllib.request
from pathlib import Path

from harness import ROOT, parse_args, percentiles, save, serve, tickets_of, trained_store

from serving.auth import add_key
from tests.hooks.fake_helpdesk import FakeHelpdesk

SECRET = "bench-secret"


def event(i: int, subject: str, body: str) -> bytes:
    detail = {"id": str(900000 + i), "subject": subject, "description": body, "via": {"channel": "email"}, "tags": []}
    return json.dumps({"type": "zen:event-type:ticket.created", "id": f"bench-{i}", "detail": detail}).encode()


def post(url: str, body: bytes) -> float:
    stamp = "2026-12-03T10:00:00Z"
    mac = base64.b64encode(hmac.new(SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": mac,
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }
    started = time.perf_counter()
    request = urllib.request.Request(f"{url}/v1/hooks/zendesk", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 202, answer.status
    return (time.perf_counter() - started) * 1000


def main() -> None:
    args, name = parse_args(__doc__, lambda p: p.add_argument("--events", type=int, default=200))
    auth = "Basic " + base64.b64encode(b"bench@example.com/token:bench-token").decode()
    desk = FakeHelpdesk(auth).start()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config_file, config, env = trained_store(args, folder)
        env.update(
            ESCALATION_ZENDESK_URL=desk.url,
            ESCALATION_ZENDESK_EMAIL="bench@example.com",
            ESCALATION_ZENDESK_TOKEN="bench-token",
            ESCALATION_ZENDESK_WEBHOOK_SECRET=SECRET,
        )
        tickets = tickets_of(args.data, config, args.events)
        with serve(env, folder / "server.log") as server:
            started = time.perf_counter()
            answered = [
                post(server.url, event(i, "", str(t["text"]))) for i, t in enumerate(tickets.to_dict("records"))
            ]
            writes = desk.wait_for(len(tickets), seconds=600)
            total = time.perf_counter() - started
            admin, _ = add_key(folder / "keys.json", "admin", "benchmark admin")  # the status is for admins
            request = urllib.request.Request(
                f"{server.url}/v1/hooks/status", headers={"Authorization": f"Bearer {admin}"}
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                status = json.load(answer)
    desk.stop()
    paths = [w.path for w in writes]
    once = len(paths) == len(set(paths)) == len(tickets)
    took = percentiles(answered)
    row = {"events": len(tickets), **took, "notes_per_s": round(len(tickets) / total, 1), "exactly_once": once}
    table = "| events | 202 p50 ms | p95 ms | p99 ms | notes/s (post to last note) | each written once |\n"
    table += "|---|---|---|---|---|---|\n"
    table += f"| {row['events']} | {took['p50']} | {took['p95']} | {took['p99']} | {row['notes_per_s']} | {once} |\n"
    notes = (
        f"Data `{args.data}`; `escalation serve` (one worker) with the Zendesk connector on a fake helpdesk on "
        f"loopback; events posted one after another by one client; outbox status at the end: "
        f"{json.dumps(status['helpdesks'])}."
    )
    print(table + "\n" + notes)
    save(f"hooks_{name}", "Helpdesk webhooks", table, notes, {"rows": [row], "status": status})


if __name__ == "__main__":
    assert (ROOT / "tests/hooks/fake_helpdesk.py").is_file()
    main()
