"""Declarative column expectations, and running them with Great Expectations.

A use case writes what its data must look like (nulls, ranges, sets, types, row counts...) as an
:class:`ExpectationSuiteSpec` of :func:`expect` entries, with no Great Expectations import, so the
code location loads fast. :func:`run_suite` runs the suite with GX 1.x in an ephemeral context;
great_expectations (~6 s to import) is loaded only then.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_assets.core.deferred_imports import import_great_expectations
from mlops_assets.core.validation.frames import jsonable, to_pandas
from mlops_assets.core.validation.results import (
    MAX_SAMPLES,
    ExpectationResult,
    SuiteResult,
    expectation_label,
)

if TYPE_CHECKING:
    import great_expectations as gx

    from mlops_assets.core.validation.frames import Frame

#: Dagster check names: letters, digits and underscores only.
CHECK_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_TYPE_RE = re.compile(r"^expect_[a-z0-9_]+$")


def check_name(name: str) -> str:
    """``name``, refused with a ``ValueError`` if Dagster would refuse it as a check name."""
    if not CHECK_NAME.match(name):
        raise ValueError(f"check name must match {CHECK_NAME.pattern}: {name!r}")
    return name


@dataclass(frozen=True)
class Expectation:
    """One declarative expectation: a GX 1.x expectation type and its arguments.

    ``type`` is the snake_case GX name (``expect_column_values_to_not_be_null``); ``column`` is the
    column it is about (``None`` for table-level expectations); ``kwargs`` are the other arguments
    of the GX expectation class (``min_value``, ``value_set``, ``mostly``, ``type_``...). Build it
    with :func:`expect`.
    """

    type: str
    column: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _TYPE_RE.match(self.type):
            raise ValueError(
                f"expectation type must be a snake_case GX name like "
                f"'expect_column_values_to_not_be_null', got {self.type!r}"
            )
        if "column" in self.kwargs:
            raise ValueError("pass the column as `column=`, not inside kwargs")

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the expectation reads (one, a pair, a list, or none for table-level)."""
        if self.column is not None:
            return (self.column,)
        pair = tuple(self.kwargs[k] for k in ("column_A", "column_B") if k in self.kwargs)
        if pair:
            return pair
        return tuple(self.kwargs.get("column_list", ()))

    @property
    def label(self) -> str:
        """``type(column)``, the name a failure is reported under."""
        return expectation_label(self.type, self.columns)

    def gx_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the GX expectation class."""
        return {**({"column": self.column} if self.column is not None else {}), **self.kwargs}


def expect(type: str, /, column: str | None = None, **kwargs: Any) -> Expectation:
    """Declare an expectation; the ``expect_`` prefix of the GX name may be left out.

    ``expect("column_values_to_be_between", column="age", min_value=0, max_value=120)``.

    GX 1.24 names a tz-aware column's type ``"Timestamp"``:
    ``expect("column_values_to_be_of_type", column="event_ts", type_="Timestamp")``.
    """
    full = type if type.startswith("expect_") else f"expect_{type}"
    return Expectation(type=full, column=column, kwargs=dict(kwargs))


@dataclass(frozen=True)
class ExpectationSuiteSpec:
    """A named set of expectations that one dataset must meet.

    The name is also the default name of the asset check built from it, so name it as a sentence
    about the data: ``transactions_meet_expectations``.
    """

    name: str
    expectations: Sequence[Expectation]
    description: str = ""

    def __post_init__(self) -> None:
        if not CHECK_NAME.match(self.name):
            raise ValueError(
                f"suite name must match {CHECK_NAME.pattern} (it names a check): {self.name!r}"
            )
        # A tuple, so that a spec shared by several checks cannot be changed under them.
        object.__setattr__(self, "expectations", tuple(self.expectations))
        if not self.expectations:
            raise ValueError(f"suite {self.name!r} has no expectations")


def to_gx_suite(suite: ExpectationSuiteSpec) -> gx.ExpectationSuite:
    """The GX 1.x ``ExpectationSuite`` for a spec (imports great_expectations: ~6 s the first time)."""
    gx = import_great_expectations()
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    expectations = []
    for spec in suite.expectations:
        # The registry knows every core expectation and any custom one imported by the user.
        try:
            cls = get_expectation_impl(spec.type)
        except ExpectationNotFoundError:
            raise ValueError(
                f"suite {suite.name!r}: unknown GX expectation {spec.type!r}"
            ) from None
        try:
            expectations.append(cls(**spec.gx_kwargs()))
        except Exception as exc:  # pydantic says which argument is wrong; add which expectation
            raise ValueError(f"suite {suite.name!r}: invalid {spec.label}: {exc}") from exc
    return gx.ExpectationSuite(name=suite.name, expectations=expectations)


def run_suite(
    df: Frame, suite: ExpectationSuiteSpec, *, max_samples: int = MAX_SAMPLES
) -> SuiteResult:
    """Validate a frame against a suite with GX 1.x; usable with or without Dagster.

    Runs in an ephemeral GX context (nothing written to disk, nothing shared between calls).
    Results come back in the order of the suite, each with its unexpected count, percent, up to
    ``max_samples`` offending values and their row labels.
    """
    # Imported here, not at module top: `import great_expectations` costs 2-6 s and the code
    # location must load fast; without the scipy.stats and altair it never uses here, 40% less.
    # Timed apart from the suite: it is paid once per process.
    started = time.perf_counter()
    imported = "great_expectations" in sys.modules
    gx = import_great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import_seconds = None if imported else time.perf_counter() - started
    started = time.perf_counter()

    frame = to_pandas(df)
    context = gx.get_context(mode="ephemeral")
    # GX draws a tqdm bar per metric batch; in a Dagster step that floods the captured stderr.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas(name=f"{suite.name}_source")
        .add_dataframe_asset(name=suite.name)
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    # add_or_update, not add: plain `add` refuses a suite name it has seen in this context.
    gx_suite = context.suites.add_or_update(to_gx_suite(suite))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    validation = batch.validate(
        gx_suite,
        # SUMMARY carries counts plus the first offending values and row labels, without
        # COMPLETE's full list of every unexpected value (which can be the whole frame).
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": max_samples},
    )

    # GX groups results by domain, not in suite order; map them back through the expectation ids.
    position = {exp.id: i for i, exp in enumerate(gx_suite.expectations)}
    ordered = sorted(
        validation.results, key=lambda r: position.get(r.expectation_config.id, 1 << 30)
    )
    results = []
    for spec, outcome in zip(suite.expectations, ordered, strict=True):
        detail = dict(outcome.result or {})
        error = _gx_error(outcome.exception_info)
        results.append(
            ExpectationResult(
                type=spec.type,
                columns=spec.columns,
                success=bool(outcome.success) and error is None,
                unexpected_count=_opt_int(detail.get("unexpected_count")),
                unexpected_percent=_opt_float(detail.get("unexpected_percent")),
                samples=tuple(
                    jsonable(v) for v in detail.get("partial_unexpected_list", ())[:max_samples]
                ),
                sample_rows=tuple(
                    jsonable(v)
                    for v in detail.get("partial_unexpected_index_list", ())[:max_samples]
                ),
                observed_value=jsonable(detail.get("observed_value")),
                kwargs=dict(spec.kwargs),
                error=error,
            )
        )
    return SuiteResult(
        name=suite.name,
        success=all(r.success for r in results),
        row_count=len(frame),
        results=tuple(results),
        seconds=time.perf_counter() - started,
        import_seconds=import_seconds,
    )


def _gx_error(exception_info: Any) -> str | None:
    """The message of an exception GX caught while evaluating an expectation, if any.

    GX 1.24 reports it flat (``{"raised_exception": ...}``) or keyed by metric id.
    """
    if not isinstance(exception_info, Mapping):
        return None
    infos = (
        [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    )
    for info in infos:
        if isinstance(info, Mapping) and info.get("raised_exception"):
            return str(info.get("exception_message") or "expectation raised an exception")
    return None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )
