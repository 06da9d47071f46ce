"""Data validation: declarative Great Expectations suites and plain checks, as blocking audits.

A use case states what its data must look like, and nothing built downstream ever reads data that
breaks it:

* **Declarative column expectations** (nulls, ranges, sets, types, row counts...) are written as an
  :class:`ExpectationSuiteSpec` of :func:`expect` entries, with no Great Expectations import, so the
  code location loads fast. :func:`run_suite` runs the suite with GX 1.x in an ephemeral context
  (:mod:`.expectations`); :func:`gx_audit` makes it a blocking audit of an asset.
* **Checks GX cannot express** are plain functions on a frame: :func:`unique_keys`,
  :func:`hourly_gaps` / :func:`time_gaps` and :func:`duplicate_timestamps`
  (:mod:`.frame_checks`), with the audit factories :func:`unique_key_audit` and
  :func:`time_series_audits` (:mod:`.audits`).

An audit is judged inside the asset's step on the staged data, before it is published (write,
audit, publish: :mod:`mlops_assets.core.publishing`), so rejected data never replaces good data.

Every check returns a :class:`SuiteResult` (usable without Dagster), whose failing expectations,
unexpected counts and sample values become the check's metadata (:mod:`.results`), so a failure in
the UI names the column, the count and a few offending values. Audits are partition-aware: each
partition of a step is judged on its own.

Pandas and Polars frames are both accepted; Polars frames are converted to pandas (GX wants pandas,
:mod:`.frames`). Importing this package loads neither great_expectations nor pandas nor numpy.
"""

from mlops_assets.core.validation.audits import (
    gx_audit,
    partitioned_checks_preview,
    time_series_audits,
    unique_key_audit,
)
from mlops_assets.core.validation.expectations import (
    Expectation,
    ExpectationSuiteSpec,
    expect,
    run_suite,
)
from mlops_assets.core.validation.frame_checks import (
    duplicate_timestamps,
    hourly_gaps,
    time_gaps,
    unique_keys,
)
from mlops_assets.core.validation.frames import jsonable, to_pandas
from mlops_assets.core.validation.results import (
    MAX_SAMPLES,
    ExpectationResult,
    SuiteResult,
    asset_check_result,
    check_metadata,
    merge_partition_results,
    percent,
    rule_result,
)

__all__ = [
    "MAX_SAMPLES",
    "Expectation",
    "ExpectationResult",
    "ExpectationSuiteSpec",
    "SuiteResult",
    "asset_check_result",
    "check_metadata",
    "duplicate_timestamps",
    "expect",
    "gx_audit",
    "hourly_gaps",
    "jsonable",
    "merge_partition_results",
    "partitioned_checks_preview",
    "percent",
    "rule_result",
    "run_suite",
    "time_gaps",
    "time_series_audits",
    "to_pandas",
    "unique_key_audit",
    "unique_keys",
]
