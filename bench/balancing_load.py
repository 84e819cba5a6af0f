#!/usr/bin/env python3
"""Load generator for bench/balancing.sh: multi-turn chats replayed
concurrently through the gateway, standard library only.

Each of --conversations chats opens with a long system prompt (a preamble
all chats share, then instructions of its own), then runs --turns turns one
after the other: a streamed greedy answer, which joins the history, a pause
of about --think-ms while a person would read it, then the next question. All chats run at once. Prints one JSON object: time to first
token per turn (p50, p95), prompt and cached prompt tokens
(usage.prompt_tokens_details.cached_tokens) summed, completion tokens/s and
requests/s over the wall time, and turns that failed.
"""

import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse

from runtime_load import sse_events  # the same stream reading as bench/runtime.sh

PREAMBLE = (
    "You are a support assistant for a company that sells garden tools. Be accurate, be brief, "
    "never invent a product, and say so when you do not know an answer. "
)
TOPICS = [
    "lawn mowers", "hedge trimmers", "watering cans", "garden hoses", "wheelbarrows", "rakes",
    "pruning shears", "leaf blowers", "compost bins", "seed trays", "shovels", "hoes",
    "sprinklers", "greenhouses", "gloves", "trowels",
]
QUESTIONS = [
    "Which one should I buy for a small garden?",
    "How do I keep it in good condition over the winter?",
    "What does the warranty cover?",
    "Can I return it if it does not fit my needs?",
    "Which spare parts wear out first?",
    "Is there a cheaper model that does the same job?",
]


def system_prompt(index, tag, shared, own):
    topic = TOPICS[index % len(TOPICS)]
    instructions = (
        f"Session {tag}-{index}. This customer asks about {topic}. Know every model of {topic} "
        f"we sell, its price, its parts and its warranty, and answer questions about {topic} only. "
    )
    return PREAMBLE * shared + instructions * own


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def turn(base, key, model, messages, max_tokens):
    """One streamed greedy turn: (ttft seconds, answer text, usage)."""
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    body = json.dumps({
        "model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True},
    })
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body,
                 {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"chat answered {response.status}: {response.read()[:300]!r}")
    first, text, usage = None, [], None
    for now, event in sse_events(response):
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                if first is None:
                    first = now - start
                text.append(content)
    conn.close()
    if first is None or usage is None:
        raise RuntimeError("the stream ended without a token or without usage")
    return first, "".join(text), usage


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--shared", type=int, default=6, help="times the preamble all chats share repeats")
    parser.add_argument("--own", type=int, default=6, help="times each chat's own instructions repeat")
    parser.add_argument("--think-ms", type=int, default=2000,
                        help="mean pause between an answer and the next question (0.5x to 1.5x, seeded)")
    parser.add_argument("--tag", default="0", help="makes each round's prompts its own")
    args = parser.parse_args()

    lock = threading.Lock()
    ttfts, prompt_tokens, cached_tokens, completion_tokens, failures = [], [0], [0], [0], []

    def conversation(index):
        messages = [{"role": "system", "content": system_prompt(index, args.tag, args.shared, args.own)}]
        pauses = random.Random(index)
        for t in range(args.turns):
            if t:
                # A person reads the answer and types the next question.
                time.sleep(args.think_ms / 1000 * pauses.uniform(0.5, 1.5))
            messages.append({"role": "user", "content": QUESTIONS[(index + t) % len(QUESTIONS)]})
            try:
                ttft, answer, usage = turn(args.gateway, args.key, args.model, messages, args.max_tokens)
            except Exception as e:  # noqa: BLE001 (counted and reported, not hidden)
                with lock:
                    failures.append(f"chat {index} turn {t}: {e}")
                return
            messages.append({"role": "assistant", "content": answer})
            details = usage.get("prompt_tokens_details") or {}
            with lock:
                ttfts.append(ttft)
                prompt_tokens[0] += usage.get("prompt_tokens", 0)
                cached_tokens[0] += details.get("cached_tokens", 0)
                completion_tokens[0] += usage.get("completion_tokens", 0)

    threads = [threading.Thread(target=conversation, args=(i,)) for i in range(args.conversations)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    print(json.dumps({
        "turns": len(ttfts),
        "failed": failures,
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 1) if ttfts else None,
        "ttft_p95_ms": round(percentile(ttfts, 0.95) * 1000, 1) if ttfts else None,
        "prompt_tokens": prompt_tokens[0],
        "cached_tokens": cached_tokens[0],
        "completion_tokens_per_s": round(completion_tokens[0] / wall, 2),
        "requests_per_s": round(len(ttfts) / wall, 3),
        "wall_s": round(wall, 1),
    }))


if __name__ == "__main__":
    main()
