"""What a binary classifier's training set must hold before any model is fitted on it.

A missing input column, an unlabelled row, a label other than 0/1, or a single class would make
scikit-learn fail deep in a fit (or, worse, fit a model that predicts one class): the use cases
check their training sets here first, so the user reads what is wrong with the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def check_binary_training_set(
    frame: pd.DataFrame, inputs: Sequence[str], label: str, *, why_both: str = ""
) -> None:
    """Raise ``ValueError`` saying what is wrong when ``frame`` lacks one of ``inputs`` or
    ``label``, has a row without a label, a label other than 0/1, or a single class.
    ``why_both``: the use case's words for why both classes are needed."""
    import pandas as pd

    missing = [c for c in (*inputs, label) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the training set lacks {len(missing)} column(s) the model needs: {', '.join(missing)}"
        )
    labels = frame[label]
    if labels.isna().any():
        raise ValueError(f"{int(labels.isna().sum())} row(s) have no {label!r} label")
    classes = set(pd.unique(labels).tolist())
    if not classes <= {0, 1}:
        raise ValueError(
            f"{label!r} must be 0 or 1; found {sorted(classes - {0, 1}, key=repr)[:5]}"
        )
    if len(classes) < 2:
        reason = f": {why_both}" if why_both else ""
        raise ValueError(
            f"the training set has a single class ({label}={classes.pop()} in all "
            f"{len(frame)} rows){reason}"
        )
