#!/usr/bin/env python3
"""Load generator for bench/runtime.sh: OpenAI-style chat and embeddings
requests against one server, standard library only so that the anchor and
autoglm see exactly the same client.

Prints one JSON object per measurement on stdout.
"""

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

PROMPT = "Write a long story about a robot who learns to paint. Describe every painting."
SENTENCES = [
    "The cat sits on the mat.",
    "A kitten is playing with a ball of wool.",
    "The guitar has six strings and a long neck.",
    "Stock markets fell sharply on Tuesday.",
]


def connect(base):
    url = urllib.parse.urlparse(base)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=300)


def sse_events(response):
    """The JSON events of an OpenAI server-sent stream up to `[DONE]`, each
    with the time it was read."""
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield time.perf_counter(), json.loads(data)


def chat_stream(base, model, max_tokens):
    """One streamed greedy chat: (time to first token, decode tokens/s, tokens)."""
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    conn = connect(base)
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"chat answered {response.status}: {response.read()[:300]!r}")
    first = last = None
    chunks = 0
    usage = None
    for now, event in sse_events(response):
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices", []):
            if choice.get("delta", {}).get("content"):
                first = first or now
                last = now
                chunks += 1
    conn.close()
    tokens = usage["completion_tokens"] if usage else chunks
    if first is None or tokens < 2:
        raise RuntimeError("the server streamed fewer than two tokens")
    return first - start, (tokens - 1) / (last - first), tokens, last - start


def single(args):
    runs = [chat_stream(args.base, args.model, args.max_tokens) for _ in range(args.runs)]
    print(
        json.dumps(
            {
                "measure": "single",
                "ttft_ms": statistics.median(r[0] for r in runs) * 1000,
                "decode_tok_s": statistics.median(r[1] for r in runs),
                "tokens": statistics.median(r[2] for r in runs),
                "runs": args.runs,
            }
        )
    )


def concurrent(args):
    aggregates = []
    for _ in range(args.runs):
        results = [None] * args.clients
        errors = []

        def client(i):
            try:
                results[i] = chat_stream(args.base, args.model, args.max_tokens)
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        if errors:
            raise RuntimeError(f"{len(errors)} of {args.clients} requests failed: {errors[0]}")
        aggregates.append(sum(r[2] for r in results) / wall)
    print(
        json.dumps(
            {
                "measure": "concurrent",
                "clients": args.clients,
                "aggregate_tok_s": statistics.median(aggregates),
                "runs": args.runs,
            }
        )
    )


def embeddings(args):
    """Embeddings per second from `clients` closed-loop clients, one sentence each."""
    stop = time.perf_counter() + args.seconds
    counts = [0] * args.clients
    errors = []

    def client(i):
        conn = connect(args.base)
        n = 0
        while time.perf_counter() < stop:
            body = json.dumps({"model": args.model, "input": SENTENCES[n % len(SENTENCES)]})
            conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                errors.append(f"{response.status}: {payload[:200]!r}")
                return
            n += 1
        counts[i] = n
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"embeddings failed: {errors[0]}")
    print(
        json.dumps(
            {"measure": "embeddings", "clients": args.clients, "per_s": sum(counts) / wall}
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("measure", choices=["single", "concurrent", "embeddings"])
    parser.add_argument("--base", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    {"single": single, "concurrent": concurrent, "embeddings": embeddings}[args.measure](args)


if __name__ == "__main__":
    main()
