"""The heart use case's identity (:data:`CASE`) and data contract: the 14-column Cleveland layout
of the UCI heart-disease data, plus a record id.

``num`` is the diagnosis as the files give it (0 = no disease, 1-4 = angiographic severity);
``target`` is its binarisation (``num > 0``), what the models predict. Missing values (``?`` in
the real files, in ``ca`` and ``thal``) are nulls. Codes follow the UCI documentation:
``cp`` 1-4 (typical angina, atypical angina, non-anginal pain, asymptomatic), ``restecg`` 0-2,
``slope`` 1-3, ``ca`` 0-3 vessels, ``thal`` 3 (normal), 6 (fixed defect), 7 (reversible defect).

Pure definitions, no Dagster; the Arrow schema is built on first use.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from mlops_assets.core.use_case import UseCase

if TYPE_CHECKING:
    import pyarrow as pa

# Its asset keys (`heart/<name>`), group, op names and the one model it registers.
CASE = UseCase("heart", model_name="heart_disease")
USE_CASE = CASE.name

KEY = "record_id"
TARGET = "target"
DIAGNOSIS = "num"
# The 13 clinical inputs, in the order of the UCI files: what a request to the model carries.
INPUTS = (
    "age",
    "sex",
    "cp",
    "trestbps",
    "chol",
    "fbs",
    "restecg",
    "thalach",
    "exang",
    "oldpeak",
    "slope",
    "ca",
    "thal",
)
RAW_COLUMNS = (KEY, *INPUTS, DIAGNOSIS, TARGET)
# Inputs that are codes, not quantities: one-hot encoded by the models.
CATEGORICAL_INPUTS = ("cp", "restecg", "slope", "thal")

# Physiological ranges: outside them a value is an entry error, not a patient.
RANGES = {
    "age": (1, 120),
    "sex": (0, 1),
    "cp": (1, 4),
    "trestbps": (50, 250),
    "chol": (50, 700),
    "fbs": (0, 1),
    "restecg": (0, 2),
    "thalach": (50, 250),
    "exang": (0, 1),
    "oldpeak": (0, 10),
    "slope": (1, 3),
    "ca": (0, 3),
}
THAL_CODES = (3, 6, 7)


@cache
def raw_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            (KEY, pa.int64()),
            *((column, pa.float64()) for column in INPUTS),
            (DIAGNOSIS, pa.int64()),
            (TARGET, pa.int64()),
        ]
    )
