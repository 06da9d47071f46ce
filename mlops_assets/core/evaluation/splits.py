"""Splits in time: a model is validated on a period it never saw.

A random split lets tomorrow's rows teach the model about today's; :func:`chronological_split`
cuts a frame at a timestamp instead. pandas and polars frames both work, and neither is imported
here (the caller's frame says which one it is).
"""

from __future__ import annotations

from typing import Any, TypeVar

Frame = TypeVar("Frame")  # a pandas or a polars DataFrame; the split returns the same kind


def _is_polars(frame: Any) -> bool:
    # By module name, so that pandas-only callers never pay for importing polars.
    return type(frame).__module__.split(".", 1)[0] == "polars"


def _classes(labels: Any, polars: bool) -> set[Any]:
    """The distinct non-null values of a label column."""
    if polars:
        return set(labels.drop_nulls().unique().to_list())
    return set(labels.dropna().unique().tolist())


def chronological_split(
    frame: Frame,
    time_col: str,
    validation_fraction: float = 0.2,
    *,
    label_col: str | None = None,
) -> tuple[Frame, Frame]:
    """Split ``frame`` in time: the latest ``validation_fraction`` of rows validate the rest.

    The boundary is the timestamp of the first validation row in time order. Every training row is
    strictly earlier, and rows that share the boundary timestamp all go to validation, so the two
    periods never overlap (a tie split across both sides would let the model train on the very
    instant it is judged on). Ties can therefore make the validation side somewhat larger than
    asked. Both sides come back sorted by ``time_col`` (stable, so tied rows keep their order), as
    the same kind of frame as the input: pandas (index kept) or polars.

    With ``label_col``, both sides must hold every class the frame holds: a validation period
    without a single fraud cannot measure a fraud model, and a training period without one cannot
    fit it. Raises ``ValueError`` saying which side is empty or lacks which class.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), not {validation_fraction}")
    polars = _is_polars(frame)
    columns = list(frame.columns)
    for column in (time_col, label_col):
        if column is not None and column not in columns:
            raise ValueError(f"cannot split on {column!r}: the frame has no such column")
    n_rows = len(frame)
    if n_rows < 2:
        raise ValueError(f"cannot split {n_rows} row(s) into a training and a validation period")
    times = frame[time_col]
    n_null = int(times.null_count() if polars else times.isna().sum())
    if n_null:
        raise ValueError(f"{n_null} row(s) have a null {time_col!r}: they have no place in time")

    # At least one row on each side before ties are resolved; round(), not ceil(): 10 * 0.2 is
    # 2.0000000000000004 in floating point.
    n_validation = min(n_rows - 1, max(1, round(n_rows * validation_fraction)))
    if polars:
        ordered = frame.sort(time_col, maintain_order=True)
        boundary = ordered[time_col][n_rows - n_validation]
        later = ordered[time_col] >= boundary
        train, validation = ordered.filter(~later), ordered.filter(later)
    else:
        ordered = frame.sort_values(time_col, kind="mergesort")  # mergesort is stable
        boundary = ordered[time_col].iloc[n_rows - n_validation]
        later = (ordered[time_col] >= boundary).to_numpy()
        train, validation = ordered[~later], ordered[later]

    if len(train) == 0:
        raise ValueError(
            f"validation_fraction={validation_fraction} leaves no training rows: all {n_rows} "
            f"rows are at or after {time_col}={boundary} (the boundary cannot split a timestamp)"
        )
    if label_col is not None:
        classes = _classes(frame[label_col], polars)
        if len(classes) < 2:
            raise ValueError(
                f"{label_col!r} has a single class {sorted(classes)} in all {n_rows} rows: "
                "nothing to learn or to validate"
            )
        for side, part in (("training", train), ("validation", validation)):
            if missing := classes - _classes(part[label_col], polars):
                raise ValueError(
                    f"the {side} period ({len(part)} rows, boundary {time_col}={boundary}) has no "
                    f"row of class {sorted(missing)} in {label_col!r}; widen the window or change "
                    f"validation_fraction={validation_fraction}"
                )
    return train, validation
