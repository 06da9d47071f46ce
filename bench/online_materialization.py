"""Online materialization of the fraud views into Redis (or SQLite): the vectorised writer next
to Feast's.

Goal (issue 23): 1M entities x 39 features (``card_features``: 20, ``merchant_features``: 19, the
views of ``feature_repo/fraud.py``) into Redis at >= 50,000 entities/s, memory bounded by a batch,
with Feast's keys and bytes. Before: Feast's ``materialize`` ran at ~7,000 entities/s here.

Data: for each view, ``--size`` entity keys with ``--rows-per-key`` snapshots each in one day
(shuffled keys, rows sorted by time like the silver assets, ~2% null amounts), written as parquet
under a temporary data root with the schemas of ``mlops_assets/fraud/schema.py``. The feature
repo is the project's own (``feature_repo/``, use case ``fraud``), with a file registry and the
Redis online store at ``--redis-url``: THAT DATABASE IS EMPTIED, and so is the next one (Feast's
run goes to db+1, so that the two can be compared).

Each candidate runs in a fresh subprocess that applies the views, then times one
``materialize`` of the whole day:

* ``ours``   ``FeastFeatureStore.materialize`` (the resource): Polars + ``core/online_writes.py``;
* ``feast``  Feast's own ``FeatureStore.materialize`` (what ``feast materialize`` runs), at
             ``--feast-size`` (it needs minutes at 1M).

"entity keys/s" counts keys written per view (Feast's progress bar counts the same); "entities/s"
counts entities carrying all 39 features (a card key and a merchant key per entity), i.e. half.
Peak is the child's RSS high-water mark (VmHWM, imports included); base its RSS before the timed
part. When both ran at one size, every key of the two databases is compared byte for byte.

``--store sqlite``: the same into Feast's SQLite online store (the local profile), one file per
candidate and size under the temporary data root; "keys" counts distinct entity keys of the two
tables, and the comparison is of every row of both tables (all columns but the rowid, which
follows each writer's order of keys).

    flock /tmp/bench.lock .venv/bin/python bench/online_materialization.py --size 1000000
    flock /tmp/bench.lock .venv/bin/python bench/online_materialization.py --store sqlite \
        --size 100000 --feast-size 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DAY = datetime(2024, 6, 1, tzinfo=UTC)
VIEWS = ("card_features", "merchant_features")


def generate(data: Path, size: int, rows_per_key: int, seed: int) -> None:
    """Snapshots of ``size`` cards and ``size`` merchants, ``rows_per_key`` each, over one day."""
    import numpy as np
    import polars as pl

    from mlops_assets.fraud import schema

    rng = np.random.default_rng(seed)
    n = size * rows_per_key
    for view, arrow_schema in (
        ("card_features", schema.CARD_FEATURES),
        ("merchant_features", schema.MERCHANT_FEATURES),
    ):
        keys = np.tile(rng.permutation(size).astype(np.int64) + 1, rows_per_key)
        micros = np.sort(rng.integers(0, 86_400_000_000 - 1, n))
        columns: dict[str, Any] = {}
        for field in arrow_schema:
            name, kind = field.name, str(field.type)
            if name == "tx_id":
                columns[name] = pl.int_range(n, eager=True).cast(pl.String)
            elif name.endswith("_id"):
                columns[name] = keys
            elif name == "event_ts":
                columns[name] = pl.Series(micros).cast(pl.Datetime("us")).dt.replace_time_zone(
                    "UTC"
                ) + (DAY - datetime(1970, 1, 1, tzinfo=UTC))
            elif kind == "int64":
                columns[name] = rng.integers(0, 500, n)
            else:
                values = pl.Series(rng.gamma(2.0, 40.0, n))
                columns[name] = values.scatter(np.flatnonzero(rng.random(n) < 0.02), None)
        frame = pl.DataFrame(columns).select([f.name for f in arrow_schema])
        folder = data / "fraud" / view
        folder.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(folder / "2024-06-01.parquet")


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sqlite_file(data: Path, candidate: str) -> Path:
    return data / f"online-{candidate}.db"


def sqlite_keys(path: Path) -> int:
    """Distinct entity keys over the fraud views' tables of a SQLite online store."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        return sum(
            conn.execute(f'SELECT COUNT(DISTINCT entity_key) FROM "mlops_assets_{v}"').fetchone()[0]
            for v in VIEWS
        )


def child(
    candidate: str, data: Path, redis_url: str, batch_size: int, store: str
) -> dict[str, Any]:
    """Apply the fraud views, then time one materialization of the day (in this process)."""
    from mlops_assets.core import online_writes
    from mlops_assets.core.feature_store import FeastFeatureStore

    online_writes.DEFAULT_BATCH_SIZE = batch_size
    for stale in (data / f"registry-{candidate}.db", sqlite_file(data, candidate)):
        stale.unlink(missing_ok=True)  # a fresh store per run
    resource = FeastFeatureStore(
        repo_path=str(REPO_ROOT / "feature_repo"),
        registry=str(data / f"registry-{candidate}.db"),
        online_store=store,
        redis_url=redis_url if store == "redis" else "",
        online_store_path=str(sqlite_file(data, candidate)),
        data_root=str(data),
    )
    resource.apply(use_case="fraud")
    if store == "redis":
        import redis

        client = redis.Redis.from_url(redis_url)
        client.flushdb()
    start, end = DAY, DAY + timedelta(days=1) - timedelta(microseconds=1)
    base = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    if candidate == "ours":
        resource.materialize(start, end, use_case="fraud")
    else:
        resource.get_store().materialize(start, end, feature_views=list(VIEWS))
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "keys": client.dbsize() if store == "redis" else sqlite_keys(sqlite_file(data, candidate)),
        "peak_mb": _rss_mb("VmHWM"),
        "base_mb": base,
    }


def compare(url_a: str, url_b: str) -> tuple[int, int]:
    """(keys, keys that differ) between two databases: every hash field's bytes and expiry."""
    import redis

    a, b = redis.Redis.from_url(url_a), redis.Redis.from_url(url_b)
    keys_a, keys_b = set(a.scan_iter(count=10_000)), set(b.scan_iter(count=10_000))
    differ = len(keys_a ^ keys_b)
    keys = sorted(keys_a & keys_b)
    for i in range(0, len(keys), 5_000):
        chunk = keys[i : i + 5_000]
        replies = []
        for client in (a, b):
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.hgetall(key)
                pipe.ttl(key)
            replies.append(pipe.execute())
        differ += sum(
            replies[0][j : j + 2] != replies[1][j : j + 2] for j in range(0, 2 * len(chunk), 2)
        )
    return len(keys_a | keys_b), differ


def compare_sqlite(a: Path, b: Path) -> tuple[int, int]:
    """(rows, rows that differ) between two SQLite online stores' fraud tables."""
    import sqlite3

    rows = differ = 0
    columns = "entity_key, feature_name, value, value_text, event_ts, created_ts"
    for view in VIEWS:
        dumps = []
        for path in (a, b):
            with sqlite3.connect(path) as conn:
                query = (
                    f'SELECT {columns} FROM "mlops_assets_{view}" ORDER BY entity_key, feature_name'
                )
                dumps.append(conn.execute(query).fetchall())
        rows += max(len(dumps[0]), len(dumps[1]))
        differ += abs(len(dumps[0]) - len(dumps[1]))
        differ += sum(x != y for x, y in zip(*dumps, strict=False))
    return rows, differ


def run_child(candidate: str, data: Path, redis_url: str, args: argparse.Namespace) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            candidate,
            "--data",
            str(data),
            "--redis-url",
            redis_url,
            "--batch-size",
            str(args.batch_size),
            "--store",
            args.store,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        sys.exit(f"{candidate} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="entities per view (ours)")
    parser.add_argument("--feast-size", type=int, default=100_000, help="entities, Feast and ours")
    parser.add_argument("--rows-per-key", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", choices=("redis", "sqlite"), default="redis")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = child(args.child, Path(args.data), args.redis_url, args.batch_size, args.store)
        print(json.dumps(result))
        return

    base, db = args.redis_url.rsplit("/", 1)
    feast_url = f"{base}/{int(db) + 1}"
    where = f"redis {args.redis_url} + {feast_url}" if args.store == "redis" else "sqlite"
    print(f"# load: {os.getloadavg()[0]:.2f} (1 min), {where}")
    print(
        f"{'candidate':<7} {'entities':>10} {'keys':>9} {'seconds':>8} {'keys/s':>9} "
        f"{'entities/s':>10} {'peak MB':>8} {'base MB':>8}"
    )
    runs = [("ours", args.size, args.redis_url)]
    if args.feast_size:
        if args.feast_size != args.size:
            runs.append(("ours", args.feast_size, args.redis_url))
        runs.append(("feast", args.feast_size, feast_url))
    with tempfile.TemporaryDirectory(prefix="olm-bench-") as tmp:
        for candidate, size, url in runs:
            data = Path(tmp) / str(size)
            if not data.exists():
                generate(data, size, args.rows_per_key, args.seed)
            r = run_child(candidate, data, url, args)
            print(
                f"{candidate:<7} {size:>10,} {r['keys']:>9,} {r['seconds']:>8.1f} "
                f"{r['keys'] / r['seconds']:>9,.0f} {size / r['seconds']:>10,.0f} "
                f"{r['peak_mb']:>8,.0f} {r['base_mb']:>8,.0f}",
                flush=True,
            )
        if args.feast_size and args.store == "sqlite":
            data = Path(tmp) / str(args.feast_size)
            rows, differ = compare_sqlite(sqlite_file(data, "ours"), sqlite_file(data, "feast"))
            print(f"# ours vs feast at {args.feast_size:,}: {rows:,} rows, {differ} differ")
        elif args.feast_size:
            keys, differ = compare(args.redis_url, feast_url)
            print(f"# ours vs feast at {args.feast_size:,}: {keys:,} keys, {differ} differ")
    if args.store == "sqlite":
        return
    import redis

    for url in (args.redis_url, feast_url):  # ~1 GB of Redis memory at 1M
        redis.Redis.from_url(url).flushdb()


if __name__ == "__main__":
    main()
