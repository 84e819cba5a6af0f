"""Steady chat traffic to service `echo` for bench/rollback.sh: RATE requests
per second from a few threads until killed; one JSON line per answer with
its send time (Unix seconds), the version that answered and the status."""

import argparse
import json
import threading
import time
import urllib.error
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("--gateway", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--rate", type=float, default=100)
parser.add_argument("--out", required=True)
args = parser.parse_args()

lock = threading.Lock()
out = open(args.out, "a", buffering=1)
body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}).encode()


def worker(period):
    while True:
        sent = time.time()
        request = urllib.request.Request(
            args.gateway + "/v1/chat/completions", data=body,
            headers={"authorization": "Bearer " + args.key, "content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                status, version = r.status, r.headers.get("x-autoglm-version", "")
        except urllib.error.HTTPError as e:
            status, version = e.code, e.headers.get("x-autoglm-version", "")
        except OSError:
            status, version = 0, ""
        with lock:
            out.write(json.dumps({"sent": sent, "version": version, "status": status}) + "\n")
        time.sleep(max(0.0, period - (time.time() - sent)))


THREADS = 4
for _ in range(THREADS):
    threading.Thread(target=worker, args=(THREADS / args.rate,), daemon=True).start()
while True:
    time.sleep(1)
