"""The data quality and exploration report of the heart patients: what a clinician or an
engineer should see before trusting a model trained on them.

Pure code: pandas and matplotlib are imported inside the functions; figures are bare matplotlib
``Figure`` objects (no pyplot state), rendered by ``core.reporting.figure_markdown``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_assets.heart import schema

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def column_summary(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per input and the diagnosis: missing values (count and share), range, mean,
    the values outside the physiological range, and the correlation with the diagnosis."""
    import pandas as pd

    rows = []
    target = raw[schema.TARGET].astype(float)
    for column in (*schema.INPUTS, schema.DIAGNOSIS):
        values = pd.to_numeric(raw[column], errors="coerce")
        low, high = schema.RANGES.get(column, (None, None))
        outside = 0
        if low is not None:
            outside = int(((values < low) | (values > high)).sum())
        elif column == "thal":
            outside = int((values.notna() & ~values.isin(schema.THAL_CODES)).sum())
        rows.append(
            {
                "column": column,
                "missing": int(values.isna().sum()),
                "missing_share": float(values.isna().mean()),
                "min": float(values.min()),
                "max": float(values.max()),
                "mean": float(values.mean()),
                "out_of_range": outside,
                "corr_with_target": float(values.corr(target)) if values.nunique() > 1 else 0.0,
            }
        )
    return pd.DataFrame(rows)


def _new_figure(**kwargs) -> Figure:
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def correlation_figure(raw: pd.DataFrame) -> Figure:
    """The Pearson correlation matrix of the inputs and the diagnosis."""
    columns = [*schema.INPUTS, schema.TARGET]
    matrix = raw[columns].astype(float).corr()
    figure = _new_figure(figsize=(7, 6))
    ax = figure.subplots()
    image = ax.imshow(matrix.to_numpy(), cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=90)
    ax.set_yticks(range(len(columns)), columns)
    figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("Correlations")
    return figure


def distribution_figure(raw: pd.DataFrame) -> Figure:
    """A histogram of each input, healthy and diseased patients overlaid."""
    figure = _new_figure(figsize=(12, 9))
    axes = figure.subplots(4, 4).ravel()
    healthy, diseased = raw[raw[schema.TARGET] == 0], raw[raw[schema.TARGET] == 1]
    for ax, column in zip(axes, schema.INPUTS, strict=False):
        for part, label in ((healthy, "no disease"), (diseased, "disease")):
            ax.hist(part[column].dropna().astype(float), bins=20, alpha=0.5, label=label)
        ax.set_title(column, fontsize=9)
    axes[0].legend(fontsize=7)
    for ax in axes[len(schema.INPUTS) :]:
        ax.set_visible(False)
    return figure
