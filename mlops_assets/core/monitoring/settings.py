"""The run config of a drift monitor, shared by every use case's: when a feature counts as drifted
and what fails the check. A use case subclasses it under its own op name (``@deployment_defaults``)
so each deployment can tune its monitors apart."""

# No `from __future__ import annotations`: Dagster reads the annotations of a Config.
from typing import TYPE_CHECKING, Literal

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from mlops_assets.core.monitoring.drift import DriftThresholds

# `drift.TEST_SAMPLE_ROWS`, kept here as a literal: the code location loads this module and must
# not pay for the statistics' imports.
_TEST_SAMPLE_ROWS = 20_000


class DriftCheckConfig(dg.Config):
    """When a model's inputs count as drifted from its training data (PSI per feature)."""

    psi_warn: float = Field(
        default=0.1, gt=0, description="PSI at or above: the feature drifted (a warning)."
    )
    psi_error: float = Field(
        default=0.25, gt=0, description="PSI at or above: the feature drifted badly (an error)."
    )
    min_rows: int = Field(
        default=200,
        ge=1,
        description="Fewer rows scored in the day (or training rows): insufficient data, never "
        "an alarm.",
    )
    bins: int = Field(default=10, ge=2, le=100, description="Quantile bins of numeric PSI.")
    fail_on: Literal["error", "warn"] = Field(
        default="error",
        description="'error': error-level drift fails the check and requests a retraining, "
        "warn-level drift warns; 'warn': warn-level drift fails too.",
    )
    sample_rows: int = Field(
        default=_TEST_SAMPLE_ROWS,
        ge=1,
        description="Rows of each side the two-sample tests and the HTML report look at (PSI "
        "uses every row).",
    )

    def thresholds(self) -> "DriftThresholds":
        """The thresholds of :mod:`mlops_assets.core.monitoring.drift` these settings give."""
        from mlops_assets.core.monitoring.drift import DriftThresholds

        return DriftThresholds(
            psi_warn=self.psi_warn,
            psi_error=self.psi_error,
            min_rows=self.min_rows,
            bins=self.bins,
        )
