"""Online fraud predictions through the API at fixed request rates, next to the bare reads they
are built on.

Budget (DESIGN.md section 7, 2-core machine): p99 <= 10 ms at 200 requests/s on loopback, zero
errors, for ``POST /predict/fraud`` including the card and merchant features read from Redis.

What runs:

* the API as a user starts it (``mlops serve``: one uvicorn process) with Feast's Redis online
  store, a fraud champion (the real training code on synthetic transactions) in a local MLflow
  registry, and 10,000 cards and 2,000 merchants written to the online store;
* an open-loop load generator in this process (asyncio + aiohttp, keep-alive connections): request
  i is due at ``start + i / rate`` and its latency is counted from that due time, so a server that
  falls behind is charged for the queue it causes (no coordinated omission);
* in the same run, on the same Redis: a bare Feast ``get_online_features`` of the two views, and a
  bare redis-py pipeline of two ``HGETALL`` (the floor under any Feast read); and the champion's
  own scikit-learn ``predict_proba`` on one row next to the compiled scorer the API uses.

    .venv/bin/python bench/serving_latency.py [--rates 50,200,500] [--seconds 20] [--kind logreg]

Needs Redis (``MLOPS_REDIS_URL``, default redis://127.0.0.1:6379/9; that database is flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

N_CARDS, N_MERCHANTS = 10_000, 2_000
BUDGET_MS, BUDGET_RATE = 10.0, 200


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    arr = np.asarray(values)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


def payload(rng: random.Random) -> dict:
    return {
        "card_id": rng.randrange(N_CARDS),
        "merchant_id": rng.randrange(N_MERCHANTS),
        "amount": round(rng.lognormvariate(3.5, 1.0), 2),
        "merchant_category": rng.choice(["grocery", "electronics", "travel", "fuel"]),
        "channel": rng.choice(["pos", "ecom", "contactless", "atm"]),
        "country": rng.choice(["US", "FR", "DE", "XX"]),
        "event_ts": "2026-11-22T02:14:00Z",
    }


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol: a pre-encoded
    request out, a status line, headers and a Content-Length body back. A full client library
    (aiohttp) cost more CPU per request than the server under test on these 2 cores."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.perf_counter()

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


def encode(method: str, path: str, port: int, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def drive(
    port: int, path: str, rate: float, seconds: float, seed: int, method: str = "POST"
) -> dict:
    """Send ``rate`` requests per second for ``seconds``; latency from each request's due time."""
    rng = random.Random(seed)
    total = int(rate * seconds)
    raws = [
        encode(method, path, port, json.dumps(payload(rng)).encode() if method == "POST" else b"")
        for _ in range(total)
    ]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    idle: list[_Connection] = []

    async def one(i: int, due: float) -> None:
        connection = idle.pop() if idle else None
        # The server closes keep-alive connections idle for longer than its timeout (75 s);
        # like any client pool, do not reuse one that may be closed.
        while connection is not None and time.perf_counter() - connection.idle_since > 30:
            connection.writer.close()
            connection = idle.pop() if idle else None
        try:
            if connection is None:
                connection = _Connection(*await asyncio.open_connection("127.0.0.1", port))
            status = await connection.request(raws[i])
            connection.idle_since = time.perf_counter()
            idle.append(connection)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
        except Exception as exc:  # counted, never hidden
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        latencies.append((time.perf_counter() - due) * 1000.0)

    tasks = []
    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
    began = time.perf_counter()
    start = began + 0.1
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    for connection in idle:
        connection.writer.close()
    return {
        "sent": total,
        "errors": errors,
        "achieved_rps": total / elapsed,
        **percentiles(latencies),
    }


def bare_reads(settings, n: int = 3000) -> dict[str, dict[str, float]]:
    """Sequential single-entity reads, in this process, on the same online store."""
    import redis

    from mlops_assets.core.feature_store import FeastFeatureStore
    from mlops_assets.fraud.serving import CARD_FEATURES, MERCHANT_FEATURES

    rng = random.Random(1)
    store = FeastFeatureStore.from_settings(settings).get_store()
    refs = CARD_FEATURES + MERCHANT_FEATURES
    feast_ms = []
    for i in range(n):
        rows = [{"card_id": rng.randrange(N_CARDS), "merchant_id": rng.randrange(N_MERCHANTS)}]
        t = time.perf_counter()
        store.get_online_features(features=refs, entity_rows=rows).to_dict()
        if i >= 100:
            feast_ms.append((time.perf_counter() - t) * 1000)
    client = redis.Redis.from_url(settings.redis_url)
    keys = [k for k in client.scan_iter(count=1000)][:2000]
    hget_ms = []
    for i in range(n):
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys[rng.randrange(len(keys))])
        pipe.hgetall(keys[rng.randrange(len(keys))])
        t = time.perf_counter()
        pipe.execute()
        if i >= 100:
            hget_ms.append((time.perf_counter() - t) * 1000)
    return {
        "feast get_online_features (2 views)": percentiles(feast_ms),
        "redis-py pipeline of 2 HGETALL": percentiles(hget_ms),
    }


def model_reads(pipeline, n: int = 1000) -> dict[str, dict[str, float]]:
    """One row through the scikit-learn pipeline and through the compiled scorer."""
    from mlops_assets.fraud.scoring import verified_scorer
    from mlops_assets.fraud.training import MODEL_INPUT_COLUMNS
    from mlops_assets_tests.fixtures.fraud_data import make_training_set

    rows = make_training_set(n, seed=5)[MODEL_INPUT_COLUMNS]
    scorer, note = verified_scorer(pipeline)
    assert scorer is not None, note
    sk_ms, fast_ms = [], []
    for i in range(n):
        frame = rows.iloc[[i]]
        t = time.perf_counter()
        pipeline.predict_proba(frame)
        sk_ms.append((time.perf_counter() - t) * 1000)
        record = rows.iloc[i].to_dict()
        t = time.perf_counter()
        scorer.score_row(record)
        fast_ms.append((time.perf_counter() - t) * 1000)
    return {
        "sklearn Pipeline.predict_proba, 1 row": percentiles(sk_ms[50:]),
        "compiled scorer (the API's path), 1 row": percentiles(fast_ms[50:]),
    }


def row(name: str, p: dict[str, float], extra: str = "") -> str:
    return (
        f"{name:<44} {p['p50']:>8.2f} {p['p95']:>8.2f} {p['p99']:>8.2f} {p['max']:>9.2f}  {extra}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,200,500")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kind", default="logreg", choices=["logreg", "xgboost"])
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds at 100 req/s first")
    args = parser.parse_args()

    import redis

    from mlops_assets.core.feature_store import FeastFeatureStore
    from mlops_assets.core.profiles import load_settings
    from mlops_assets.core.tracking import MlflowTracking
    from mlops_assets_tests.fixtures.api_servers import start_api
    from mlops_assets_tests.fixtures.fraud_online import online_rows, write_online_features
    from mlops_assets_tests.fixtures.served_models import fit_fraud_pipeline, register

    redis_url = os.environ.get("MLOPS_REDIS_URL", "redis://127.0.0.1:6379/9")
    redis.Redis.from_url(redis_url).flushdb()
    home = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    env = {
        "MLOPS_PROFILE": "local",
        "MLOPS_HOME": str(home),
        "MLOPS_FEAST_REPO": str(REPO / "feature_repo"),
        "MLOPS_FEAST_ONLINE_STORE": "redis",
        "MLOPS_REDIS_URL": redis_url,
        "MLOPS_SERVING_USE_CASES": "fraud",
    }
    os.environ.update(env)
    settings = load_settings()
    print(
        f"setting up in {home}: {args.kind} champion, {N_CARDS} cards, {N_MERCHANTS} merchants in Redis",
        flush=True,
    )
    pipeline = fit_fraud_pipeline(args.kind, seed=0)
    register(MlflowTracking.from_settings(settings), "fraud_classifier", pipeline)
    cards, merchants = online_rows(N_CARDS, N_MERCHANTS)
    write_online_features(FeastFeatureStore.from_settings(settings), cards, merchants)

    api = start_api(env, home / "api.log")
    import uvloop

    rates = [float(r) for r in args.rates.split(",")]
    results: dict[float, dict] = {}
    floor: dict[float, dict] = {}
    try:
        uvloop.run(drive(api.port, "/predict/fraud", 100, args.warmup, seed=99))
        for rate in rates:
            results[rate] = uvloop.run(
                drive(api.port, "/predict/fraud", rate, args.seconds, int(rate))
            )
            r = results[rate]
            print(
                f"  {rate:.0f} req/s: p99 {r['p99']:.2f} ms, errors {r['errors'] or 0}", flush=True
            )
            # The same harness on the API's cheapest route: what HTTP and the load generator
            # cost on this machine, under the same load.
            floor[rate] = uvloop.run(drive(api.port, "/health", rate, args.seconds / 2, 0, "GET"))
    finally:
        code = api.stop()
    bare = bare_reads(settings)
    model = model_reads(pipeline)

    print()
    print(
        f"POST /predict/fraud, {args.kind} champion, Redis online store, 1 uvicorn process, {args.seconds:.0f} s per rate"
    )
    print(
        f"{'latency in ms':<44} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>9}  sent / errors / achieved"
    )
    for rate, r in results.items():
        errors = sum(r["errors"].values())
        print(
            row(
                f"API at {rate:.0f} req/s",
                r,
                f"{r['sent']} / {errors} / {r['achieved_rps']:.0f} req/s",
            )
        )
    for rate, r in floor.items():
        print(
            row(
                f"GET /health at {rate:.0f} req/s (harness floor)",
                r,
                f"{r['sent']} / {sum(r['errors'].values())}",
            )
        )
    print("same run, sequential, in this process:")
    for name, p in {**bare, **model}.items():
        print(row(f"  {name}", p))
    at_budget = results.get(float(BUDGET_RATE))
    if at_budget is not None:
        errors = sum(at_budget["errors"].values())
        verdict = "within" if at_budget["p99"] <= BUDGET_MS and errors == 0 else "OVER"
        print(
            f"budget: p99 <= {BUDGET_MS:.0f} ms at {BUDGET_RATE} req/s with zero errors: "
            f"p99 {at_budget['p99']:.2f} ms, {errors} errors -> {verdict} budget"
        )
    print(f"server exit code {code}; its log: {home / 'api.log'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
