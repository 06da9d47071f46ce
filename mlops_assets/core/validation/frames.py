"""What checks read and what they report: any frame as pandas, any sample value as JSON.

Checks accept pandas and Polars frames alike (:func:`to_pandas`: GX wants pandas); the offending
values they report go into Dagster's event log, so :func:`jsonable` makes them JSON-safe and short.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

# numpy and pandas are imported where used: the code location loads this module, and pandas alone
# costs ~0.4 s of every Dagster process start.
if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    Frame = pd.DataFrame | pl.DataFrame

# Sample strings are cut to this length: metadata is for reading, not for copying data out.
_MAX_SAMPLE_CHARS = 80


def to_pandas(df: Any) -> pd.DataFrame:
    """A pandas frame from a pandas or Polars frame (or a LazyFrame, which is collected).

    A dict of frames, which is what an IO manager hands over when several partitions are loaded
    at once, is concatenated.
    """
    import pandas as pd

    if isinstance(df, pd.DataFrame):
        return df
    if isinstance(df, Mapping):
        frames = [to_pandas(v) for v in df.values()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    # Duck-typed so that this module does not import Polars for pandas-only users.
    if type(df).__module__.startswith("polars"):
        if hasattr(df, "collect"):
            df = df.collect()
        return df.to_pandas()
    raise TypeError(f"expected a pandas or Polars DataFrame, got {type(df).__name__}")


def require_columns(frame: pd.DataFrame, cols: Sequence[str]) -> None:
    """Raise ``KeyError`` naming the columns a check needs that ``frame`` lacks."""
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} not in frame (has {list(frame.columns)})")


def jsonable(value: Any) -> Any:
    """A JSON-safe version of a sample value: NaN/NaT become None, timestamps ISO strings."""
    import numpy as np
    import pandas as pd

    if value is None or isinstance(value, bool | int | str):
        return value[:_MAX_SAMPLE_CHARS] if isinstance(value, str) else value
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.datetime64 | np.timedelta64):
        # .item() of a nanosecond datetime64 is a bare int; go through pandas instead.
        as_pd = pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value)
        return jsonable(as_pd)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date | dt.time):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, pd.Timedelta | dt.timedelta):
        return None if pd.isna(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [jsonable(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)[:_MAX_SAMPLE_CHARS]
