"""Figures of the monitoring assets, shown in the UI next to their tables.

* :func:`metric_by_day_figure`: a live metric per day, one line per model version (or source),
  with the figure the model promised as a reference line: a drop is visible at a glance;
* :func:`drift_figure`: PSI per feature with the warn and error thresholds.

Each returns a bare matplotlib ``Figure`` (not registered with pyplot, rendered with Agg by
``savefig``), like :mod:`mlops_assets.core.evaluation.figures`; turn it into metadata with
:func:`mlops_assets.core.reporting.figure_markdown`. matplotlib and pandas are imported inside.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlops_assets.core.monitoring.drift import DriftThresholds

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

# PSI bars drawn: the worst ones; the table holds the rest.
TOP_FEATURES = 20
_SEVERITY_COLOURS = {"ok": "tab:blue", "warn": "tab:orange", "error": "tab:red"}


def _new_figure(**kwargs: Any) -> Figure:
    # A bare Figure, not pyplot: no process-wide registry to leak into (an asset plots on every
    # run) and no GUI backend to pick; savefig renders with Agg.
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def _nothing_to_draw(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _days(values: pd.Series) -> pd.Series:
    """Days as timestamps when they read as dates (partition keys do), else as they are."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values.dtype):
        return values  # an index of days, not epoch nanoseconds
    try:
        return pd.to_datetime(values)
    except (TypeError, ValueError):
        return values


def metric_by_day_figure(
    frame: pd.DataFrame,
    *,
    day: str,
    metric: str,
    series: str,
    title: str,
    reference: float | None = None,
) -> Figure:
    """``metric`` against ``day``, one line (with markers) per value of ``series``.

    A day where a series has no value (NaN: not enough labels yet) is a gap in its line, not a
    zero. ``reference`` draws a dashed horizontal line (e.g. the champion's holdout metric).
    An empty frame gives a figure saying there is nothing to draw.
    """
    import pandas as pd

    figure = _new_figure(figsize=(7, 3.8))
    ax = figure.add_subplot()
    ax.set_title(title)
    if frame.empty:
        _nothing_to_draw(ax, "no data yet")
        return figure
    data = pd.DataFrame(
        {
            "day": _days(frame[day]),
            "metric": pd.to_numeric(frame[metric]),
            "series": frame[series].astype(str),
        }
    ).sort_values(["series", "day"], kind="stable")
    for name, rows in data.groupby("series", sort=True):
        ax.plot(rows["day"], rows["metric"], marker="o", markersize=4, label=str(name))
    if reference is not None and not math.isnan(reference):
        ax.axhline(
            reference, linestyle="--", color="grey", linewidth=1, label=f"reference {reference:.3g}"
        )
    if pd.api.types.is_datetime64_any_dtype(data["day"]):
        from matplotlib.dates import DateFormatter, DayLocator

        # Whole days on the axis (the automatic locator puts hours between two days).
        span = (data["day"].max() - data["day"].min()).days + 1
        ax.xaxis.set_major_locator(DayLocator(interval=max(1, math.ceil(span / 10))))
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    ax.set_xlabel(day)
    ax.set_ylabel(metric)
    ax.legend(title=series, fontsize="small", loc="best")
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    return figure


def drift_figure(table: pd.DataFrame | None, thresholds: DriftThresholds, *, title: str) -> Figure:
    """Horizontal bars of PSI for the :data:`TOP_FEATURES` most drifted features (worst on top),
    coloured by severity, with dashed lines at the warn and error thresholds.

    ``table`` is :func:`~mlops_assets.core.monitoring.drift.drift_table`'s; None or empty (an
    "insufficient data" day) gives a figure saying there is nothing to draw.
    """
    bars = 0 if table is None else min(len(table), TOP_FEATURES)
    figure = _new_figure(figsize=(7, 1.4 + 0.28 * max(bars, 4)))
    ax = figure.add_subplot()
    ax.set_title(title)
    if table is None or table.empty:
        _nothing_to_draw(ax, "insufficient data")
        return figure
    top = table.sort_values(
        ["psi", "feature"], ascending=[False, True], na_position="last", kind="stable"
    ).head(TOP_FEATURES)
    # Worst at the top: barh draws the first row at the bottom.
    top = top.iloc[::-1]
    colours = [_SEVERITY_COLOURS.get(s, "tab:grey") for s in top["severity"]]
    ax.barh(top["feature"].astype(str), top["psi"].fillna(0.0), color=colours)
    ax.axvline(
        thresholds.psi_warn,
        linestyle="--",
        color=_SEVERITY_COLOURS["warn"],
        linewidth=1,
        label=f"warn {thresholds.psi_warn:g}",
    )
    ax.axvline(
        thresholds.psi_error,
        linestyle="--",
        color=_SEVERITY_COLOURS["error"],
        linewidth=1,
        label=f"error {thresholds.psi_error:g}",
    )
    shown = f"top {len(top)} of {len(table)} features" if len(table) > len(top) else "features"
    ax.set_xlabel(f"population stability index ({shown})")
    worst = float(top["psi"].max(skipna=True))
    ax.set_xlim(0, max(worst if math.isfinite(worst) else 0.0, thresholds.psi_error) * 1.1)
    ax.legend(loc="lower right", fontsize="small")
    return figure
