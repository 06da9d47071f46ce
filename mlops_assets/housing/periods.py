"""The housing periods: where time cuts the sales into train, eval and holdout.

A model is always judged on sales later than those it learned from: every training sale precedes
every evaluation sale, which precedes every holdout sale (:func:`split_by_date` cuts them so;
:func:`chronology_problems` is the rule the `splits_are_chronological` check judges).

Pure code: no Dagster; pandas is imported inside the functions.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from mlops_assets.housing import schema

if TYPE_CHECKING:
    import pandas as pd

SPLITS = ("train", "eval", "holdout")


def split_by_date(raw: pd.DataFrame, eval_start: date, holdout_start: date) -> pd.DataFrame:
    """``raw`` with the period of each sale (`split`): train before ``eval_start``, eval until
    ``holdout_start``, holdout from it on."""
    import pandas as pd

    if not eval_start < holdout_start:
        raise ValueError(f"eval_start {eval_start} must come before holdout_start {holdout_start}")
    day = pd.to_datetime(raw[schema.DATE]).dt.date
    split = pd.Series("eval", index=raw.index)
    split[day < eval_start] = "train"
    split[day >= holdout_start] = "holdout"
    return raw.assign(split=split.astype(str))


def split_summary(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per split: its sales and its first and last sale day."""
    import pandas as pd

    day = pd.to_datetime(frame[schema.DATE]).dt.date
    return [
        {
            "split": name,
            "rows": int((frame["split"] == name).sum()),
            "first_sale": str(day[frame["split"] == name].min()),
            "last_sale": str(day[frame["split"] == name].max()),
        }
        for name in SPLITS
    ]


def chronology_problems(frame: pd.DataFrame) -> list[str]:
    """What breaks the chronological contract of ``frame`` (a `split` column beside the sale
    dates): an unknown or missing split, an empty split, or a split whose sales are not all later
    than every sale of the splits before it."""
    import pandas as pd

    problems = []
    unknown = sorted(set(frame["split"].dropna()) - set(SPLITS))
    if unknown or frame["split"].isna().any():
        problems.append(f"rows outside the three splits: {unknown or 'null'}")
    day = pd.to_datetime(frame[schema.DATE])
    for earlier, later in (("train", "eval"), ("eval", "holdout"), ("train", "holdout")):
        before, after = day[frame["split"] == earlier], day[frame["split"] == later]
        if before.empty or after.empty:
            continue
        if before.max() >= after.min():
            problems.append(
                f"{earlier} ends {before.max().date()}, not before {later} starts "
                f"{after.min().date()}"
            )
    problems += [f"{name} is empty" for name in SPLITS if not (frame["split"] == name).any()]
    return problems
