"""Leak-free fraud features at 1M and 10M transactions: our Polars/NumPy code next to pandas.

Budget (DESIGN.md §7, 2-core machine), full feature set for 10M transactions: <= 30 s,
<= 6 GB peak, >= 3x faster than pandas. The named alternative is pandas
``groupby().rolling(window, on="event_ts", closed="left")`` (the window ``[t - w, t)`` equals our
``[t - w, t - 1 s]`` on whole-second data), with distinct merchants through ``rolling().apply``
and merchant fraud counts through a label-event stream rolled on availability time.

Each candidate runs in a fresh subprocess that reads the parquet files of the size, then times
only the feature call; its peak memory is the subprocess's RSS high-water mark (``wait4``), so
it includes the input frame the step must hold anyway. A candidate that runs past its time limit
or above the memory cap is killed and reported as such. Features are computed for every
generated transaction (start = first day, end = after the last), the largest output there is.

Where pandas is favoured: it reads only the five columns it needs (ours get the whole bronze
frame), and its output stays in key order (ours is sorted back to (event_ts, tx_id)). At sizes
above ``--pandas-distinct-max`` pandas skips distinct merchants (``rolling().apply`` calls Python
once per row and window), so its time there is a lower bound.

Exactness: ``check`` recomputes our features and compares a random sample of rows with a
brute-force reference (direct filtering of the key's rows per sampled transaction), and the
pandas results on the same sample too.

    .venv/bin/python bench/fraud_features.py [--sizes 1000000,10000000] [--timeout 300]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

DAYS = 35
START = datetime(2024, 1, 1, tzinfo=UTC)
END = START + timedelta(days=DAYS)
N_CARDS, N_MERCHANTS = 100_000, 10_000
SAMPLE = 2_000
WINDOWS = {"1h": "1h", "1d": "1D", "7d": "7D", "30d": "30D"}
FRAUD_WINDOWS = ("1d", "7d", "30d")
CANDIDATES = ("ours_card", "ours_merchant", "pandas_card", "pandas_merchant")


# --- data ------------------------------------------------------------------------------------


def generate(n: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Schema-conforming transactions and labels, vectorised: skewed cards and merchants, habits,
    a daily rhythm, ~1% fraud with chargebacks 1-60 days later. Sorted by (event_ts, tx_id) like a
    bronze partition."""
    rng = np.random.default_rng(seed)
    card_weight = rng.lognormal(0.0, 1.0, N_CARDS)
    card = rng.choice(N_CARDS, n, p=card_weight / card_weight.sum()).astype(np.int64)
    hour = rng.choice(24, n, p=_diurnal())
    seconds = (rng.integers(0, DAYS, n) * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)).astype(
        np.int64
    )
    # Habits: most payments at one of the card's five regular merchants, the rest at popular ones.
    habitual = rng.random(n) < 0.6
    regular = (card * 7_919 + rng.integers(0, 5, n) * 104_729) % N_MERCHANTS
    popular = (N_MERCHANTS * rng.random(n) ** 3).astype(np.int64)
    merchant = np.where(habitual, regular, popular)
    amount = np.round(rng.lognormal(3.0, 1.0, n), 2)
    order = np.argsort(seconds, kind="stable")
    epoch_us = int(START.timestamp()) * 1_000_000
    ts = pl.Series(seconds[order] * 1_000_000 + epoch_us).cast(pl.Datetime("us", "UTC"))
    # Zero-padded ids: their string order is the time order, like ids minted as payments arrive.
    frame = pl.select(tx_id=pl.format("tx{}", pl.int_range(n).cast(pl.String).str.zfill(10)))
    categories = pl.Series(["grocery", "restaurant", "fuel", "electronics", "travel"])
    transactions = frame.with_columns(
        event_ts=ts,
        card_id=card[order],
        merchant_id=merchant[order],
        amount=amount[order],
        merchant_category=categories.gather(merchant[order] % 5),
        channel=pl.Series(["pos", "ecom", "contactless", "atm"]).gather(rng.integers(0, 4, n)),
        country=pl.Series(["US", "GB", "DE", "FR"]).gather(rng.integers(0, 4, n)),
    )
    is_fraud = (rng.random(n) < np.where(merchant[order] % 97 == 0, 0.05, 0.008)).astype(np.int8)
    delay_s = (86_400 + rng.exponential(10 * 86_400, n)).clip(max=60 * 86_400).astype(np.int64)
    labels = transactions.select(
        "tx_id",
        "event_ts",
        is_fraud=pl.Series(is_fraud),
        label_available_ts=pl.col("event_ts") + pl.duration(seconds=pl.Series(delay_s)),
    )
    return transactions, labels


def _diurnal() -> np.ndarray:
    p = 1.0 + np.sin((np.arange(24) - 9) / 24 * 2 * np.pi)
    return p / p.sum()


# --- candidates (run in a worker subprocess) ---------------------------------------------------


def ours_card(data: Path) -> tuple[float, pl.DataFrame]:
    from mlops_assets.fraud.features import card_features

    transactions = pl.read_parquet(data / "transactions.parquet")
    began = time.perf_counter()
    out = card_features(transactions, START, END)
    return time.perf_counter() - began, out


def ours_merchant(data: Path) -> tuple[float, pl.DataFrame]:
    from mlops_assets.fraud.features import merchant_features

    transactions = pl.read_parquet(data / "transactions.parquet")
    labels = pl.read_parquet(data / "labels.parquet")
    began = time.perf_counter()
    out = merchant_features(transactions, labels, START, END)
    return time.perf_counter() - began, out


def pandas_card(data: Path, distinct: bool = True) -> tuple[float, pl.DataFrame, dict]:
    import pandas as pd

    tx = pd.read_parquet(data / "transactions.parquet", columns=_PANDAS_COLUMNS)
    began = time.perf_counter()
    tx = tx.sort_values(["card_id", "event_ts", "tx_id"], ignore_index=True)
    out = {"tx_id": tx["tx_id"]}
    for name, w in WINDOWS.items():
        out |= _pandas_amount_stats(tx, "card_id", "card", name, w)
    parts = {"aggregates": time.perf_counter() - began}
    if distinct:
        for name, w in WINDOWS.items():
            # No rolling nunique in pandas: a Python call per row and window.
            rolled = tx.groupby("card_id", sort=False).rolling(w, on="event_ts", closed="left")
            out[f"card_distinct_merchants_{name}"] = (
                rolled["merchant_id"]
                .apply(lambda m: len(np.unique(m)), raw=True)
                .fillna(0)
                .to_numpy()
                .astype(np.int64)
            )
        parts["distinct"] = time.perf_counter() - began - parts["aggregates"]
    frame = pd.DataFrame(out)
    return time.perf_counter() - began, pl.from_pandas(frame), parts


def pandas_merchant(data: Path) -> tuple[float, pl.DataFrame]:
    import pandas as pd

    tx = pd.read_parquet(data / "transactions.parquet", columns=_PANDAS_COLUMNS)
    labels = pd.read_parquet(data / "labels.parquet")
    began = time.perf_counter()
    tx = tx.sort_values(["merchant_id", "event_ts", "tx_id"], ignore_index=True)
    out = {"tx_id": tx["tx_id"]}
    for name, w in WINDOWS.items():
        out |= _pandas_amount_stats(tx, "merchant_id", "merchant", name, w)
    # Label-event stream: fraud labels at their availability time, next to the transactions;
    # a left-closed window over it counts the labels known before each transaction.
    fraud = labels.loc[labels["is_fraud"] == 1, ["tx_id", "label_available_ts"]]
    fraud = fraud.merge(tx[["tx_id", "merchant_id"]], on="tx_id")
    stream = pd.concat(
        [
            pd.DataFrame(
                {
                    "merchant_id": fraud["merchant_id"].to_numpy(),
                    "ts": fraud["label_available_ts"].to_numpy(),
                    "label": 1,
                    "row": -1,
                }
            ),
            pd.DataFrame(
                {
                    "merchant_id": tx["merchant_id"].to_numpy(),
                    "ts": tx["event_ts"].to_numpy(),
                    "label": 0,
                    "row": np.arange(len(tx)),
                }
            ),
        ],
        ignore_index=True,
    ).sort_values(["merchant_id", "ts"], ignore_index=True)
    is_tx = (stream["row"] >= 0).to_numpy()
    rows = stream["row"].to_numpy()[is_tx]
    for name in FRAUD_WINDOWS:
        counts = (
            stream.groupby("merchant_id", sort=False)
            .rolling(WINDOWS[name], on="ts", closed="left")["label"]
            .sum()
            .fillna(0)
            .to_numpy()
        )
        placed = np.empty(len(tx), dtype=np.int64)
        placed[rows] = counts[is_tx]
        out[f"merchant_fraud_count_{name}"] = placed
    frame = pd.DataFrame(out)
    return time.perf_counter() - began, pl.from_pandas(frame)


_PANDAS_COLUMNS = ["tx_id", "event_ts", "card_id", "merchant_id", "amount"]


def _pandas_amount_stats(tx, key: str, prefix: str, name: str, w: str) -> dict[str, np.ndarray]:
    # closed="left": the window [t - w, t) leaves the current second out, like ours.
    rolled = tx.groupby(key, sort=False).rolling(w, on="event_ts", closed="left")["amount"]
    count = rolled.count().fillna(0).to_numpy().astype(np.int64)
    total = rolled.sum().fillna(0.0).to_numpy()
    return {
        f"{prefix}_tx_count_{name}": count,
        f"{prefix}_amount_sum_{name}": total,
        f"{prefix}_amount_mean_{name}": np.where(count > 0, total / np.maximum(count, 1), np.nan),
        f"{prefix}_amount_max_{name}": rolled.max().to_numpy(),
    }


# --- exactness: a brute-force reference on a sample ------------------------------------------


def check(data: Path, sample_ids: list[str]) -> dict:
    """Our features (and pandas', where written) on sampled rows vs direct filtering."""
    from mlops_assets.fraud.features import card_features, merchant_features

    transactions = pl.read_parquet(data / "transactions.parquet")
    labels = pl.read_parquet(data / "labels.parquet")
    ours = {
        "card": card_features(transactions, START, END),
        "merchant": merchant_features(transactions, labels, START, END),
    }
    sample = pl.DataFrame({"tx_id": sample_ids})
    reference = _reference(transactions, labels, sample)
    report: dict = {}
    for family, frame in ours.items():
        got = sample.join(frame, on="tx_id", how="left", maintain_order="left")
        report[f"ours_{family}"] = _compare(got, reference)
        pandas_file = data / f"pandas_{family}_sample.parquet"
        if pandas_file.exists():
            theirs = sample.join(pl.read_parquet(pandas_file), on="tx_id", maintain_order="left")
            report[f"pandas_{family}"] = _compare(theirs, reference)
    return report


def _reference(transactions: pl.DataFrame, labels: pl.DataFrame, sample: pl.DataFrame) -> dict:
    """Per sampled transaction: filter the key's rows (and labels) by time, then aggregate."""
    ts = transactions["event_ts"].cast(pl.Int64).to_numpy() // 1_000_000
    card, merchant = transactions["card_id"].to_numpy(), transactions["merchant_id"].to_numpy()
    amount = transactions["amount"].to_numpy()
    rows = (
        transactions.select("tx_id")
        .with_row_index("row")
        .join(sample, on="tx_id", how="right", maintain_order="right")["row"]
        .to_list()
    )
    fraud = labels.filter(pl.col("is_fraud") == 1).join(
        transactions.select("tx_id", "merchant_id"), on="tx_id"
    )
    fraud_merchant = fraud["merchant_id"].to_numpy()
    fraud_ts = fraud["label_available_ts"].cast(pl.Int64).to_numpy() // 1_000_000
    by_card, by_merchant = _index_by(card), _index_by(merchant)
    by_fraud_merchant = _index_by(fraud_merchant)
    out: dict[str, list] = {}
    for i in rows:
        t = ts[i]
        for key, prefix, index in (
            (card[i], "card", by_card),
            (merchant[i], "merchant", by_merchant),
        ):
            rows = index.get(key, np.empty(0, dtype=np.int64))
            for name, seconds in _WINDOW_SECONDS.items():
                sel = rows[(ts[rows] >= t - seconds) & (ts[rows] <= t - 1)]
                a = amount[sel]
                out.setdefault(f"{prefix}_tx_count_{name}", []).append(len(sel))
                out.setdefault(f"{prefix}_amount_sum_{name}", []).append(float(a.sum()))
                out.setdefault(f"{prefix}_amount_mean_{name}", []).append(
                    float(a.mean()) if len(a) else None
                )
                out.setdefault(f"{prefix}_amount_max_{name}", []).append(
                    float(a.max()) if len(a) else None
                )
                if prefix == "card":
                    out.setdefault(f"card_distinct_merchants_{name}", []).append(
                        len(np.unique(merchant[sel]))
                    )
        labels_here = by_fraud_merchant.get(merchant[i], np.empty(0, dtype=np.int64))
        for name in FRAUD_WINDOWS:
            seconds = _WINDOW_SECONDS[name]
            avail = fraud_ts[labels_here]
            out.setdefault(f"merchant_fraud_count_{name}", []).append(
                int(((avail >= t - seconds) & (avail <= t - 1)).sum())
            )
    return out


_WINDOW_SECONDS = {"1h": 3_600, "1d": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}


def _index_by(keys: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    uniq, first = np.unique(keys[order], return_index=True)
    return dict(zip(uniq.tolist(), np.split(order, first[1:]), strict=True))


def _compare(got: pl.DataFrame, reference: dict) -> dict:
    """Columns compared, and those that differ (ints exactly, floats to 1e-9 relative)."""
    differing = {}
    compared = 0
    for column, expected in reference.items():
        if column not in got.columns:
            continue
        compared += 1
        actual = got[column].to_list()
        bad = sum(1 for a, e in zip(actual, expected, strict=True) if not _same(a, e))
        if bad:
            differing[column] = bad
    return {"columns": compared, "rows": got.height, "differing": differing}


def _same(a, e) -> bool:
    if a is None or e is None or (isinstance(a, float) and np.isnan(a)):
        return (a is None or np.isnan(a)) and e is None
    if isinstance(e, float):
        return abs(a - e) <= 1e-9 * max(1.0, abs(e))
    return a == e


# --- the harness -----------------------------------------------------------------------------


def worker(candidate: str, data: Path, result: Path, sample_ids: Path, distinct: bool) -> None:
    if candidate == "check":
        ids = json.loads(sample_ids.read_text())
        result.write_text(json.dumps(check(data, ids)))
        return
    parts: dict = {}
    if candidate == "pandas_card":
        wall, out, parts = pandas_card(data, distinct=distinct)
    else:
        wall, out = {
            "ours_card": ours_card,
            "ours_merchant": ours_merchant,
            "pandas_merchant": pandas_merchant,
        }[candidate](data)
    rows, columns = out.height, out.width
    if candidate.startswith("pandas"):
        # Kept for the exactness check (outside the timed part).
        ids = pl.DataFrame({"tx_id": json.loads(sample_ids.read_text())})
        family = candidate.removeprefix("pandas_")
        ids.join(out, on="tx_id").write_parquet(data / f"pandas_{family}_sample.parquet")
    result.write_text(
        json.dumps({"wall_s": wall, "rows": rows, "columns": columns, "parts": parts})
    )


def run_candidate(
    args: list[str], timeout_s: float, memory_cap_gb: float
) -> tuple[str, dict | None, float, float, float]:
    """Run a worker; return (status, its result, peak RSS GB, elapsed s, CPU s of the whole
    process). Kills it past a limit."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result = Path(handle.name)
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", *args, "--result", str(result)],
        start_new_session=True,
        # The fraud package's Dagster definitions warn about preview APIs on import.
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    status = {"value": "ok"}

    def watch() -> None:
        # Poll the live RSS: RLIMIT_AS would also count the allocators' reserved address space.
        while process.poll() is None:
            rss = _rss_gb(process.pid)
            if rss > memory_cap_gb:
                status["value"] = f"killed above {memory_cap_gb:.0f} GB"
            elif time.perf_counter() - began > timeout_s:
                status["value"] = f"killed after {timeout_s:.0f} s"
            if status["value"] != "ok":
                os.killpg(process.pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, code, usage = os.wait4(process.pid, 0)
    process.returncode = code
    watcher.join()
    elapsed = time.perf_counter() - began
    peak_gb = usage.ru_maxrss / 1024**2  # kilobytes on Linux
    cpu_s = usage.ru_utime + usage.ru_stime
    if status["value"] == "ok" and code != 0:
        status["value"] = f"failed (exit status {code})"
    data = json.loads(result.read_text()) if status["value"] == "ok" else None
    result.unlink(missing_ok=True)
    return status["value"], data, peak_gb, elapsed, cpu_s


def _rss_gb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per candidate")
    parser.add_argument("--memory-cap-gb", type=float, default=16)
    parser.add_argument(
        "--pandas-distinct-max",
        type=int,
        default=1_000_000,
        help="largest size at which pandas also computes distinct merchants (rolling.apply: one "
        "Python call per row and window); above it pandas card is a lower bound",
    )
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("CANDIDATE", "DATA"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sample-ids", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-distinct", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        candidate, data = args.worker
        worker(candidate, Path(data), args.result, args.sample_ids, not args.no_distinct)
        return

    print(
        f"fraud features, {os.cpu_count()} cores, {DAYS} days, {N_CARDS:,} cards, "
        f"{N_MERCHANTS:,} merchants; features for every transaction; fresh process each; "
        f"limits {args.timeout:.0f} s, {args.memory_cap_gb:.0f} GB"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="fraud_bench_") as tmp:
            run_size(size, Path(tmp), args)


def run_size(size: int, data: Path, args: argparse.Namespace) -> None:
    began = time.perf_counter()
    transactions, labels = generate(size)
    transactions.write_parquet(data / "transactions.parquet")
    labels.write_parquet(data / "labels.parquet")
    sample_ids = data / "sample_ids.json"
    picked = np.random.default_rng(size).choice(size, min(SAMPLE, size), replace=False)
    sample_ids.write_text(json.dumps(transactions["tx_id"].gather(picked).to_list()))
    n_fraud = int(labels["is_fraud"].sum())
    del transactions, labels
    print(
        f"\n== {size:,} transactions, {n_fraud:,} fraud labels (generated in "
        f"{time.perf_counter() - began:.1f} s; load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'candidate':<40} {'status':<20} {'wall s':>7} {'cpu s':>7} {'peak GB':>8}  parts")
    walls: dict[str, float] = {}
    for candidate in CANDIDATES:
        if args.skip_pandas and candidate.startswith("pandas"):
            continue
        extra, label = [], candidate
        if candidate == "pandas_card" and size > args.pandas_distinct_max:
            extra, label = ["--no-distinct"], "pandas_card (no distinct: lower bound)"
        status, result, peak, elapsed, cpu = run_candidate(
            [candidate, str(data), "--sample-ids", str(sample_ids), *extra],
            args.timeout,
            args.memory_cap_gb,
        )
        wall = result["wall_s"] if result else elapsed
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in (result or {}).get("parts", {}).items())
        if result:
            walls[candidate] = wall
        print(
            f"{label:<40} {status:<20} {wall:>7.1f} {cpu:>7.1f} {peak:>8.2f}  {parts}", flush=True
        )
    if "ours_card" in walls and "ours_merchant" in walls:
        ours = walls["ours_card"] + walls["ours_merchant"]
        print(f"{'ours, full feature set':<40} {'':<20} {ours:>7.1f}   (budget at 10M: <= 30 s)")
        if "pandas_card" in walls and "pandas_merchant" in walls:
            pandas = walls["pandas_card"] + walls["pandas_merchant"]
            bound = "at least " if size > args.pandas_distinct_max else ""
            print(f"{'pandas, full feature set':<40} {'':<20} {pandas:>7.1f}")
            print(
                f"speedup vs pandas: card {bound}{walls['pandas_card'] / walls['ours_card']:.1f}x, "
                f"merchant {walls['pandas_merchant'] / walls['ours_merchant']:.1f}x, "
                f"full set {bound}{pandas / ours:.1f}x   (budget: >= 3x)"
            )
    status, report, _, _, _ = run_candidate(
        ["check", str(data), "--sample-ids", str(sample_ids)], args.timeout, args.memory_cap_gb
    )
    print(f"exactness on {SAMPLE:,} sampled rows vs a brute-force reference ({status}):")
    for name, outcome in (report or {}).items():
        verdict = "exact" if not outcome["differing"] else f"DIFFER {outcome['differing']}"
        print(f"  {name:<16} {outcome['columns']:>2} columns x {outcome['rows']} rows: {verdict}")
    print(f"(load average after: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
