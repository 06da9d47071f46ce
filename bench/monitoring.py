"""A day of monitoring for the fraud model: live performance on delayed labels, drift of every
input against the training data, and the day's HTML report; next to Evidently's default preset.

Budget (issue 19, this 2-core machine): a day of 1M scored transactions against a 50k-row
reference, performance + drift table + report, in at most 20 s and 2 GB peak.

Data shaped like the fraud model's input (``mlops_assets/fraud/schema.py``, generated here with
vectorised numpy): ``amount`` (lognormal), the 39 card and merchant aggregates (counts, sums,
means, maxima per window; the mean and max of an empty 1-hour window are missing), the
categoricals ``merchant_category``, ``channel`` and ``country``, then ``fraud_probability``,
``is_fraud`` (about 0.6 % fraud, known for about 60 % of the rows: the other labels have not
arrived yet), ``model_version`` and ``source`` (batch or API). The day's amounts run 3 % higher
than the reference's and its mix of channels moved a little, like a quiet real day.

Each candidate runs in a fresh subprocess that reads the two parquet files, then times its work;
"peak MB" is the RSS high-water mark of the timed part (``VmHWM``, restarted once the data is
loaded), imports and the data it holds included; "data MB" is the RSS once the data is loaded;
"process MB" the subprocess's whole high-water mark (``wait4``), the parquet read's included. A
candidate past ``--timeout`` or above ``--mem-limit-gb`` is killed and reported as such.

* ``ours``       ``classification_performance`` per source and model version,
                 ``drift_table`` over the 43 inputs and the prediction, ``drift_report_html``
                 (mlops_assets.core.monitoring; Evidently imported inside, its import timed);
* ``evidently``  ``Report([DataDriftPreset()])`` on the same 44 columns, run and rendered to
                 HTML (Evidently's import timed too). It does drift only: no performance.

The default day is 200,000 rows so the bench ends in about a minute and a half (Evidently's
preset takes minutes at 1M). The budget is stated at 1M rows; the full run is

    .venv/bin/python bench/monitoring.py --rows 1000000 [--reference-rows 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mlops_assets.fraud.schema import (  # noqa: E402  (pure: names only)
    CHANNELS,
    MERCHANT_CATEGORIES,
    WINDOWS,
    card_feature_columns,
    merchant_feature_columns,
)

NUMERIC = ["amount", *card_feature_columns(), *merchant_feature_columns()]
CATEGORICAL = ["merchant_category", "channel", "country"]
SCORE, LABEL = "fraud_probability", "is_fraud"
COUNTRIES = ("FR", "DE", "ES", "IT", "GB", "NL", "BE", "PT", "PL", "US", "CH", "AT", "SE", "IE")
CANDIDATES = ("ours", "evidently")
BUDGET_S, BUDGET_MB = 20.0, 2048.0
# Mean transactions per card (and per merchant) in each window.
CARD_RATE = {"1h": 0.05, "1d": 1.2, "7d": 8.0, "30d": 34.0}
MERCHANT_RATE = {"1h": 4.0, "1d": 90.0, "7d": 600.0, "30d": 2600.0}


# --- data ----------------------------------------------------------------------------------------


def generate(rows: int, seed: int, *, shifted: bool) -> Any:
    """``rows`` scored transactions as a pandas frame (see the module docstring)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    scale = 1.03 if shifted else 1.0
    columns: dict[str, Any] = {"amount": np.round(rng.lognormal(3.0, 1.0, rows) * scale, 2)}
    for prefix, rates, aggregates in (
        ("card", CARD_RATE, ("tx_count", "amount_sum", "amount_mean", "amount_max")),
        ("merchant", MERCHANT_RATE, ("tx_count", "amount_sum", "amount_mean", "amount_max")),
    ):
        for window in WINDOWS:
            count = rng.poisson(rates[window] * rng.gamma(2.0, 0.5, rows))
            mean = rng.lognormal(3.0, 0.5, rows) * scale
            mean[count == 0] = np.nan  # the mean of an empty window is missing, not 0
            values = {
                "tx_count": count,
                "amount_sum": np.round(np.nan_to_num(mean) * count, 2),
                "amount_mean": np.round(mean, 2),
                "amount_max": np.round(mean * (1 + rng.exponential(0.5, rows)), 2),
            }
            for aggregate in aggregates:
                columns[f"{prefix}_{aggregate}_{window}"] = values[aggregate]
            if prefix == "card":
                columns[f"card_distinct_merchants_{window}"] = np.minimum(
                    count, rng.poisson(1 + count * 0.6)
                )
    for window in ("1d", "7d", "30d"):
        columns[f"merchant_fraud_count_{window}"] = rng.poisson(MERCHANT_RATE[window] * 0.004, rows)
    columns["merchant_category"] = rng.choice(MERCHANT_CATEGORIES, rows)
    channel_mix = [0.45, 0.33, 0.17, 0.05] if shifted else [0.45, 0.35, 0.15, 0.05]
    columns["channel"] = rng.choice(CHANNELS, rows, p=channel_mix)
    country_weight = 1 / np.arange(1, len(COUNTRIES) + 1)
    columns["country"] = rng.choice(COUNTRIES, rows, p=country_weight / country_weight.sum())
    fraud = rng.random(rows) < 0.006
    logit = rng.normal(-5.0, 1.2, rows) + fraud * rng.normal(4.5, 1.5, rows)
    columns[SCORE] = 1 / (1 + np.exp(-logit))
    label = pd.array(fraud.astype(np.int8), dtype="Int8")
    label[rng.random(rows) >= 0.6] = pd.NA  # label not known yet
    columns[LABEL] = label
    columns["model_version"] = np.where(rng.random(rows) < 0.95, "7", "8")
    columns["source"] = np.where(rng.random(rows) < 0.8, "batch", "api")
    frame = pd.DataFrame(columns)
    missing = set(NUMERIC + CATEGORICAL) - set(frame.columns)
    assert not missing, f"generator misses {sorted(missing)}"
    return frame


# --- candidates (each in its own process) --------------------------------------------------------


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_ours(reference: Any, current: Any) -> dict[str, Any]:
    from mlops_assets.core.monitoring.drift import drift_report_html, drift_table
    from mlops_assets.core.monitoring.performance import classification_performance

    steps: dict[str, float] = {}
    start = time.perf_counter()
    performance = classification_performance(
        current, label=LABEL, score=SCORE, by=["source", "model_version"]
    )
    steps["performance"] = time.perf_counter() - start
    table = drift_table(reference, current, numeric=[*NUMERIC, SCORE], categorical=CATEGORICAL)
    steps["drift_table"] = time.perf_counter() - start - sum(steps.values())
    page = drift_report_html(
        reference, current, numeric=[*NUMERIC, SCORE], categorical=CATEGORICAL, title="fraud"
    )
    steps["report"] = time.perf_counter() - start - sum(steps.values())
    return {
        "seconds": time.perf_counter() - start,
        "steps": steps,
        "html_mb": len(page) / 1024**2,
        "groups": len(performance),
        "pr_auc": performance["pr_auc"].round(3).tolist(),
        "label_coverage": performance["label_coverage"].round(3).tolist(),
        "top_psi": table.head(3)[["feature", "psi", "p_value"]].to_dict("records"),
        "drifted": int(table["drifted"].sum()),
        "features": len(table),
    }


def run_evidently(reference: Any, current: Any) -> dict[str, Any]:
    start = time.perf_counter()
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[*NUMERIC, SCORE], categorical_columns=CATEGORICAL
    )
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    ran = time.perf_counter() - start
    page = snapshot.get_html_str(as_iframe=False)
    drifted = [
        m["value"]["count"]
        for m in snapshot.dict()["metrics"]
        if m["metric_name"].startswith("DriftedColumnsCount")
    ]
    return {
        "seconds": time.perf_counter() - start,
        "steps": {"run": ran, "html": time.perf_counter() - start - ran},
        "html_mb": len(page.encode()) / 1024**2,
        "drifted": int(drifted[0]) if drifted else None,
        "features": len(NUMERIC) + 1 + len(CATEGORICAL),
    }


def child(candidate: str, data: Path, result: Path) -> None:
    import pandas as pd

    reference = pd.read_parquet(data / "reference.parquet")
    current = pd.read_parquet(data / "current.parquet")
    base = _rss_mb()
    # Restart the high-water mark: reading parquet holds Arrow and pandas copies at once for a
    # moment, which is the loader's peak, not the candidate's.
    Path("/proc/self/clear_refs").write_text("5")
    run = {"ours": run_ours, "evidently": run_evidently}[candidate]
    outcome = run(reference, current)
    outcome |= {"data_mb": base, "hwm_mb": _rss_mb("VmHWM")}
    result.write_text(json.dumps(outcome, default=float))


# --- the watched subprocess ----------------------------------------------------------------------


def watched(args: list[str], result: Path, timeout: float, mem_limit_gb: float) -> dict[str, Any]:
    """Run ``args`` in its own process group; kill it past the time or memory limit. The child's
    own peak RSS comes from ``wait4`` (never another child's)."""
    result.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*args, "--result", str(result)],
        start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    status = "ok"
    while True:
        pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            status = "timeout"
        else:
            rss = Path(f"/proc/{proc.pid}/status").read_text()
            kb = next((int(x.split()[1]) for x in rss.splitlines() if x.startswith("VmRSS")), 0)
            if kb / 1024**2 > mem_limit_gb:
                status = "memory"
        if status != "ok":
            os.killpg(proc.pid, signal.SIGKILL)
            pid, code, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    proc.returncode = code  # reaped by wait4
    if status == "ok" and code != 0:
        status = "error"
    loaded = json.loads(result.read_text()) if status == "ok" and result.exists() else {}
    return {
        "status": status,
        "wall": time.perf_counter() - start,
        "peak_mb": usage.ru_maxrss / 1024,
        **loaded,
    }


# --- orchestration -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=200_000, help="scored rows of the day (budget: 1000000)"
    )
    parser.add_argument("--reference-rows", type=int, default=50_000)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per candidate")
    parser.add_argument("--mem-limit-gb", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=42)
    # Internal: the subprocesses.
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child(args.child, Path(args.data), Path(args.result))
        return
    candidates = [c for c in args.candidates.split(",") if c]
    unknown = set(candidates) - set(CANDIDATES)
    if unknown:
        parser.error(f"unknown candidates {sorted(unknown)}; known: {', '.join(CANDIDATES)}")

    print(
        f"monitoring a day: {args.rows:,} scored rows against {args.reference_rows:,} reference "
        f"rows, {len(NUMERIC) + 1} numeric + {len(CATEGORICAL)} categorical columns; "
        f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as tmp:
        data = Path(tmp)
        start = time.perf_counter()
        generate(args.reference_rows, args.seed, shifted=False).to_parquet(
            data / "reference.parquet"
        )
        generate(args.rows, args.seed + 1, shifted=True).to_parquet(data / "current.parquet")
        print(f"data generated in {time.perf_counter() - start:.1f} s", flush=True)
        me = [sys.executable, str(Path(__file__).resolve())]
        outcomes = {}
        for candidate in candidates:
            outcomes[candidate] = watched(
                [*me, "--child", candidate, "--data", str(data)],
                data / f"{candidate}.json",
                args.timeout,
                args.mem_limit_gb,
            )
            print(f"  {candidate} done ({outcomes[candidate]['status']})", flush=True)
    print_table(outcomes, args)


def print_table(outcomes: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\n{'candidate':<10} {'wall s':>7} {'peak MB':>8} {'data MB':>8} {'process MB':>11} "
        f"{'html MB':>8} {'drifted':>8}  steps (s)"
    )
    for candidate, out in outcomes.items():
        if out["status"] != "ok":
            what = {"timeout": f"> {args.timeout:.0f} s", "memory": f"> {args.mem_limit_gb} GB"}
            print(
                f"{candidate:<10} {what.get(out['status'], 'failed'):>7} {out['peak_mb']:>8.0f}"
                f"  killed/failed after {out['wall']:.0f} s"
            )
            continue
        steps = ", ".join(f"{k} {v:.1f}" for k, v in out["steps"].items())
        drifted = f"{out['drifted']}/{out['features']}" if out.get("drifted") is not None else "-"
        print(
            f"{candidate:<10} {out['seconds']:>7.1f} {out['hwm_mb']:>8.0f} {out['data_mb']:>8.0f} "
            f"{out['peak_mb']:>11.0f} {out['html_mb']:>8.1f} {drifted:>8}  {steps}"
        )
    ours = outcomes.get("ours")
    if ours and ours["status"] == "ok":
        print(
            f"\nours: {ours['groups']} groups (source x model version), PR-AUC {ours['pr_auc']}, "
            f"label coverage {ours['label_coverage']}"
        )
        top = "; ".join(
            f"{r['feature']} PSI {r['psi']:.3f} (p {r['p_value']:.2g})" for r in ours["top_psi"]
        )
        print(f"ours: most drifted {top}")
        ok = ours["seconds"] <= BUDGET_S and ours["hwm_mb"] <= BUDGET_MB
        print(
            f"ours: {ours['seconds']:.1f} s, peak {ours['hwm_mb']:.0f} MB; budget <= "
            f"{BUDGET_S:.0f} s and <= {BUDGET_MB:.0f} MB at 1M rows: {'ok' if ok else 'MISSED'}"
            + ("" if args.rows == 1_000_000 else f" (measured at {args.rows:,} rows)")
        )
    # Other work on the machine slows every candidate: the figures mean little under load.
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
