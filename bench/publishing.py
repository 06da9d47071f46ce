"""What write-audit-publish costs over writing the file in place, without the audits themselves.

The named alternative is what the IO manager did before publishing existed and still does for
assets without blocking checks: one atomic write of the partition (temporary file, fsync,
rename). Publishing adds: the staged write (the same atomic write, to ``_staging/``), reading the
staged bytes back for the audits, the partition lock, the journal (two small JSON files written
and removed) and the rename over the published path. Audits are left out (an audit that passes
does nothing, here): their cost is their own, the same whether the data is staged or not.

Tables are day partitions of fraud-like payments (``--rows``, default 4,000: a demo day, and
20,000: a default day, and 1,000,000). Each variant writes ``--repeat`` partitions; the median
per partition is printed, on local disk, and on an S3 endpoint when ``--s3-endpoint`` names one
(e.g. moto's server: ``python -m moto.server -p 5000``).

    .venv/bin/python bench/publishing.py [--rows 4000,20000,1000000] [--repeat 7]
        [--s3-endpoint http://127.0.0.1:5000 --s3-bucket bench]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa

from mlops_assets.core import storage
from mlops_assets.core.asset_store import AssetStore

KEY = dg.AssetKey(["fraud", "transactions"])


def table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    return pa.table(
        {
            "tx_id": [f"20240101-{i:08d}" for i in range(rows)],
            "event_ts": pa.array(
                np.sort(start + rng.integers(0, 86_400_000_000, rows).astype("timedelta64[us]")),
                pa.timestamp("us", tz="UTC"),
            ),
            "card_id": rng.integers(0, 100_000, rows),
            "merchant_id": rng.integers(0, 10_000, rows),
            "amount": rng.lognormal(3.5, 1.0, rows).round(2),
            "channel": rng.choice(["pos", "web", "app"], rows),
            "country": rng.choice(["US", "FR", "DE", "GB"], rows),
        }
    )


def in_place(store: AssetStore, data: pa.Table, day: str, run: str) -> None:
    path = store.path(KEY, day)
    storage.write_parquet(path, data, tmp_dir=store.publisher.tmp_dir)


def published(store: AssetStore, data: pa.Table, day: str, run: str) -> None:
    place = store.publisher.place(KEY, day)
    store.publisher.stage(place, run, data)
    storage.read_parquet(place.staged(run))  # what the audits read
    store.publisher.publish_together([place], run)


def measure(store: AssetStore, data: pa.Table, repeat: int) -> dict[str, float]:
    timings: dict[str, list[float]] = {"in place": [], "write, audit, publish": []}
    for i in range(repeat):
        for name, write in (("in place", in_place), ("write, audit, publish", published)):
            start = time.perf_counter()
            write(store, data, f"2024-01-{i + 1:02d}", f"run-{i}")
            timings[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="4000,20000,1000000")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--s3-endpoint", default="")
    parser.add_argument("--s3-bucket", default="bench")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-publishing-") as tmp:
        roots = {"disk": ((tmp, ""), "")}
        if args.s3_endpoint:
            import boto3

            boto3.client("s3", endpoint_url=args.s3_endpoint).create_bucket(Bucket=args.s3_bucket)
            roots["s3"] = (
                (f"s3://{args.s3_bucket}/bench", args.s3_endpoint),
                str(Path(tmp) / "locks"),
            )
        print(f"{'root':<5} {'rows':>9} {'in place':>10} {'publish':>10} {'overhead':>9}")
        for name, ((root, endpoint), locks) in roots.items():
            store = AssetStore(root=root, s3_endpoint_url=endpoint, lock_space=locks)
            for rows in (int(r) for r in args.rows.split(",")):
                result = measure(store, table(rows), args.repeat)
                base, wap = result["in place"], result["write, audit, publish"]
                print(
                    f"{name:<5} {rows:>9,} {base * 1000:>8.1f}ms {wap * 1000:>8.1f}ms "
                    f"{wap / base:>8.2f}x"
                )


if __name__ == "__main__":
    main()
