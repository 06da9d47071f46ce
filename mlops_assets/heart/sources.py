"""Where the heart use case's raw data comes from: a synthetic generator, or the user's file.

**The generator** (:func:`generate_patients`) plays patients referred for coronary angiography,
with the marginals and correlations of the Cleveland data: age ~ N(54, 9) clipped to 29-77, about
68% men, resting blood pressure ~ 131 +- 17 mmHg, cholesterol ~ 246 +- 52 mg/dl, fasting blood
sugar > 120 mg/dl in about 15%. One hidden coronary burden per patient (worse with age, and in
men) drives the findings of the work-up: asymptomatic chest pain (``cp`` 4), exercise-induced
angina, ST depression (``oldpeak``) and a flat slope, a lower maximum heart rate, more vessels
coloured by fluoroscopy (``ca``) and reversible defects (``thal`` 7). Disease is then drawn from a
logistic risk of those inputs, so it is learnable but noisy: a good model scores a ROC-AUC around
0.9, as on the real data, and about 45% of patients are diseased. A diseased patient's ``num`` is
1-4, mostly 1, higher with the risk; a healthy one's is 0. About 1.5% of ``ca`` and 1% of ``thal``
are missing, as in the real files. Everything is drawn from one ``numpy`` stream seeded from
``GeneratorConfig.seed`` alone: the same config gives the same table.

**The file source** (:func:`read_uci_file`) reads the UCI ``processed.*.data`` layout (no header,
the 13 inputs then ``num``, ``?`` for missing) or a CSV with a header naming the 13 inputs and
``num`` and/or ``target`` (the common Kaggle layout), and coerces it to
:func:`mlops_assets.heart.schema.raw_schema` with the rules of :mod:`mlops_assets.core.contracts`,
failing with a :class:`HeartContractError` that names the file, the column, the count and a few
sample rows. Nulls and out-of-range inputs are not judged here: the downstream checks report
them; only ``num`` (0-4) and ``target`` (0/1) are checked, since the label is derived from them.

Pure code: no Dagster import; numpy, pandas and pyarrow are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.core import contracts, synthetic
from mlops_assets.heart import schema

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------

_STREAM = 0x4EA27  # SeedSequence salt of the generator's stream
_AGE = (54.0, 9.0, 29.0, 77.0)  # mean, sd, min, max
_MALE = 0.68
_TRESTBPS = (131.0, 17.0, 94.0, 200.0)
_CHOL = (246.0, 52.0, 126.0, 564.0)
_THALACH_RANGE = (71.0, 202.0)
_OLDPEAK_MAX = 6.2
_FBS = 0.15
_RESTECG = (0.50, 0.015, 0.485)  # codes 0, 1, 2
_NON_ASYMPTOMATIC_CP = (0.145, 0.315, 0.54)  # codes 1, 2, 3 among those not asymptomatic
_CA_CUTS = (0.25, 0.95, 1.65)  # on the latent vessel score: about 58/21/13/7 % for 0/1/2/3
_MISSING_CA = 0.015
_MISSING_THAL = 0.01
# The disease risk, a logistic of the inputs (intercept first).
_RISK_INTERCEPT = -3.85
# Severity among the diseased: 1..4 in these shares (Cleveland: 40/26/25/9 %).
_SEVERITY_SHARES = (0.40, 0.26, 0.25, 0.09)


@dataclass(frozen=True)
class GeneratorConfig:
    """How many patients to generate and the seed that fixes every draw."""

    n_patients: int = 1000
    seed: int = 42

    def __post_init__(self) -> None:
        # The asset's run config is validated by Dagster; this is for configs built by hand.
        synthetic.check_count("n_patients", self.n_patients)
        synthetic.check_seed(self.seed)


def generate_patients(config: GeneratorConfig | None = None) -> pa.Table:
    """``config.n_patients`` synthetic patients, ``record_id`` 1..n, in ``schema.raw_schema()``.

    Only ``ca`` and ``thal`` have nulls (a few); ``target`` is ``num > 0``. The same config always
    gives the same table.
    """
    import numpy as np
    import pyarrow as pa

    config = config or GeneratorConfig()
    n = config.n_patients
    rng = synthetic.stream(config.seed, _STREAM)
    sigmoid = synthetic.sigmoid
    # Every draw below happens whatever the values, so the stream stays aligned.

    def normal(mean: float, sd: float) -> np.ndarray:
        return mean + sd * rng.standard_normal(n)

    age = np.clip(np.round(normal(*_AGE[:2])), *_AGE[2:])
    sex = (rng.random(n) < _MALE).astype(float)
    age_z = (age - _AGE[0]) / _AGE[1]
    # The hidden coronary burden, about N(0, 1): worse with age and in men.
    burden = 0.35 * age_z + 0.7 * (sex - _MALE) + 0.9 * rng.standard_normal(n)

    trestbps = np.clip(np.round(normal(0, 1) * 16.0 + _TRESTBPS[0] + 5.5 * age_z), *_TRESTBPS[2:])
    chol = np.clip(np.round(normal(0, 1) * 51.0 + _CHOL[0] + 9.0 * age_z), *_CHOL[2:])
    fbs = (rng.random(n) < _FBS).astype(float)
    restecg = np.asarray((0.0, 1.0, 2.0))[synthetic.draw(rng, _RESTECG, n)]

    # Chest pain: asymptomatic (4) much more often with a high burden.
    asymptomatic = rng.random(n) < sigmoid(-0.15 + 1.3 * burden)
    other_cp = np.asarray((1.0, 2.0, 3.0))[synthetic.draw(rng, _NON_ASYMPTOMATIC_CP, n)]
    cp = np.where(asymptomatic, 4.0, other_cp)
    exang = (rng.random(n) < sigmoid(-0.95 + 1.1 * burden)).astype(float)
    oldpeak = np.round(np.clip(normal(0.6, 1.1) + 0.75 * burden, 0.0, _OLDPEAK_MAX), 1)
    thalach = np.clip(np.round(normal(150.0, 17.0) - 12.0 * age_z - 7.5 * burden), *_THALACH_RANGE)
    # Slope of the peak ST segment: flat (2) with ST depression and burden, down (3) rarely.
    down = rng.random(n) < 0.05 + 0.05 * (oldpeak > 2)
    flat = rng.random(n) < sigmoid(-0.6 + 0.7 * burden + 0.6 * oldpeak)
    slope = np.where(down, 3.0, np.where(flat, 2.0, 1.0))
    vessels = 0.75 * burden + 0.35 * age_z + 0.75 * rng.standard_normal(n)
    ca = np.searchsorted(np.asarray(_CA_CUTS), vessels).astype(float)
    reversible = rng.random(n) < sigmoid(-0.6 + 1.3 * burden)
    fixed = rng.random(n) < 0.06
    thal = np.where(reversible, 7.0, np.where(fixed, 6.0, 3.0))

    # Disease: a logistic risk of what the work-up shows.
    eta = _RISK_INTERCEPT + 1.3 * (
        0.55 * sex
        + 0.15 * age_z
        + 1.15 * (cp == 4)
        + 0.55 * exang
        + 0.45 * oldpeak
        + 0.75 * ca
        - 0.018 * (thalach - 150.0)
        + 1.2 * (thal == 7)
        + 0.5 * (thal == 6)
        + 0.45 * (slope == 2)
        + 0.01 * (trestbps - _TRESTBPS[0])
        + 0.002 * (chol - _CHOL[0])
        + 0.2 * fbs
    )
    diseased = rng.random(n) < sigmoid(eta)
    # Severity 1..4 among the diseased: ranked on the risk plus noise, cut at the shares.
    severity_score = 0.6 * eta + rng.standard_normal(n)
    num = np.zeros(n, dtype=np.int64)
    sick = np.flatnonzero(diseased)
    if len(sick):
        order = np.argsort(np.argsort(severity_score[sick], kind="stable"), kind="stable")
        quantile = (order + 0.5) / len(sick)
        num[sick] = 1 + np.searchsorted(np.cumsum(_SEVERITY_SHARES)[:-1], quantile)

    missing_ca = rng.random(n) < _MISSING_CA
    missing_thal = rng.random(n) < _MISSING_THAL

    inputs = {
        "age": age,
        "sex": sex,
        "cp": cp,
        "trestbps": trestbps,
        "chol": chol,
        "fbs": fbs,
        "restecg": restecg,
        "thalach": thalach,
        "exang": exang,
        "oldpeak": oldpeak,
        "slope": slope,
        "ca": ca,
        "thal": thal,
    }
    masks = {"ca": missing_ca, "thal": missing_thal}
    arrays = [pa.array(np.arange(1, n + 1, dtype=np.int64))]
    for column in schema.INPUTS:
        values = np.asarray(inputs[column], dtype=np.float64)
        arrays.append(pa.array(values, pa.float64(), mask=masks.get(column)))
    arrays.append(pa.array(num))
    arrays.append(pa.array((num > 0).astype(np.int64)))
    return pa.Table.from_arrays(arrays, schema=schema.raw_schema())


# --------------------------------------------------------------------------------------------------
# The file source: the UCI files, or a CSV with a header
# --------------------------------------------------------------------------------------------------

#: The fields of a line of the UCI ``processed.*.data`` files: the 13 inputs, then ``num``.
UCI_COLUMNS = (*schema.INPUTS, schema.DIAGNOSIS)
#: How the UCI files write a missing value.
UCI_MISSING = "?"
_SHOWN_LINES = 5
_LINE_CHARS = 80


class HeartContractError(contracts.ContractError):
    """A user's file cannot be read as the raw heart contract.

    The message names the file and every problem: the lines with the wrong number of values, the
    missing columns, and for each column with values that cannot be converted (or a ``num``
    outside 0-4, a ``target`` other than 0/1), how many there are and up to five ``(row, text)``
    samples (rows count from 1, a header excluded). The same facts are attributes; see
    :class:`mlops_assets.core.contracts.ContractError`.
    """


def read_uci_file(path: str | Path | Any) -> pa.Table:
    """Read a heart-disease file and coerce it to ``schema.raw_schema()``: every row, in order.

    Two layouts, told apart by the first line:

    * the UCI ``processed.*.data`` files: no header, 14 comma-separated values a line (the 13
      inputs in :data:`schema.INPUTS` order, then ``num``), ``?`` for a missing value;
    * a CSV whose header names the 13 inputs and ``num`` (0-4) and/or ``target`` (0/1), in any
      order (names are trimmed and lower-cased; extra columns are dropped). With ``target`` only,
      ``num`` is null: the severity is unknown. With both, they must agree.

    ``record_id`` is the row's 1-based number (a header excluded, blank lines skipped): the line
    number in a UCI file. ``target`` is ``num > 0``. Inputs follow the number rules of
    :mod:`mlops_assets.core.contracts` (``?``, empty, ``NA``... are nulls); ranges are judged
    downstream. Raises :class:`FileNotFoundError` when there is no such file, and
    :class:`HeartContractError` when it is empty or has a header only, a line has the wrong
    number of values, a column is missing, a value is not a number, or ``num`` / ``target`` is
    out of its range.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    p = Path(path) if isinstance(path, str) else path
    name = str(p)
    if isinstance(p, Path) and not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    with p.open("rb") as f:
        data = f.read()
    text = data.decode("utf-8-sig", errors="replace")
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise HeartContractError(name, ["the file is empty"])

    first = _fields(lines[0][1])
    has_header = not _is_value(first[0])
    if has_header:
        columns = tuple(c.strip().lower() for c in first)
        rows = lines[1:]
    else:
        columns = UCI_COLUMNS
        rows = lines
    if not rows:
        # A header and nothing else is an export cut short: publishing an empty table would only
        # fail later, in a model fitted on nothing.
        raise HeartContractError(name, ["the file has a header but no rows of patients"])
    _check_field_counts(name, rows, len(columns), has_header)

    body = "\n".join(line for _, line in rows)
    csv_bytes = (",".join(f'"{c}"' for c in columns) + "\n" + body + "\n").encode()
    table = contracts.read_csv_as_text(csv_bytes, source=name, error=HeartContractError)

    labels = [c for c in (schema.DIAGNOSIS, schema.TARGET) if c in columns]
    if not labels:
        labels = [schema.DIAGNOSIS]  # reported missing, with the inputs that are missing too
    file_contract = pa.schema(
        [*((c, pa.float64()) for c in schema.INPUTS), *((c, pa.int64()) for c in labels)]
    )
    rules = {c: contracts.ColumnRule(_number_or_missing) for c in schema.INPUTS}
    rules[schema.DIAGNOSIS] = contracts.ColumnRule(
        _code_in(0, 4), ("a diagnosis in 0-4", "diagnoses in 0-4")
    )
    rules[schema.TARGET] = contracts.ColumnRule(_code_in(0, 1), ("0 or 1", "0 or 1"))
    coerced = contracts.coerce(
        table, file_contract, source=name, rules=rules, error=HeartContractError
    ).table

    n = coerced.num_rows
    if schema.DIAGNOSIS in labels:
        num = coerced[schema.DIAGNOSIS].combine_chunks()
        target = pc.cast(pc.greater(num, 0), pa.int64())
        if schema.TARGET in labels:
            _check_agreement(name, num, coerced[schema.TARGET].combine_chunks())
    else:
        target = coerced[schema.TARGET].combine_chunks()
        num = pa.nulls(n, pa.int64())
    arrays = [
        pa.array(range(1, n + 1), pa.int64()),
        *(coerced[c] for c in schema.INPUTS),
        num,
        target,
    ]
    return pa.Table.from_arrays(arrays, schema=schema.raw_schema())


def _fields(line: str) -> list[str]:
    import csv

    return next(csv.reader([line]), [])


def _is_value(field: str) -> bool:
    """Whether a first field is data (a number or the UCI missing mark), not a column name."""
    field = field.strip().lstrip("\ufeff")
    if field == UCI_MISSING:
        return True
    try:
        float(field)
    except ValueError:
        return False
    return True


def _check_field_counts(
    name: str, rows: list[tuple[int, str]], expected: int, has_header: bool
) -> None:
    wrong = [(number, line, len(_fields(line))) for number, line in rows]
    wrong = [w for w in wrong if w[2] != expected]
    if not wrong:
        return
    count = "1 line has" if len(wrong) == 1 else f"{len(wrong)} lines have"
    layout = "the header's" if has_header else "the UCI layout's"
    shown = ", ".join(
        f"line {number} ({found} values) {line[:_LINE_CHARS]!r}"
        for number, line, found in wrong[:_SHOWN_LINES]
    )
    raise HeartContractError(
        name, [f"{count} a wrong number of values (expected {layout} {expected}): {shown}"]
    )


def _number_or_missing(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """A number, with the UCI files' ``?`` as missing."""
    import pyarrow.compute as pc

    if contracts.is_text(arr):
        arr = contracts.keep(arr, pc.not_equal(pc.utf8_trim_whitespace(arr), UCI_MISSING))
    return contracts.convert(arr, target)


def _code_in(low: int, high: int) -> contracts.Converter:
    """An integer code in ``[low, high]``; another integer fails like text would."""

    def convert(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
        import pyarrow.compute as pc

        values, bad = contracts.convert(arr, target)
        in_range = pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))
        out = pc.and_(pc.is_valid(values), pc.invert(pc.fill_null(in_range, False)))
        return contracts.keep(values, pc.fill_null(in_range, False)), pc.or_(bad, out)

    return convert


def _check_agreement(name: str, num: pa.Array, target: pa.Array) -> None:
    import numpy as np
    import pyarrow.compute as pc

    derived = pc.cast(pc.greater(num, 0), target.type)
    differ = pc.fill_null(pc.not_equal(derived, target), False).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(differ)
    if len(rows):
        shown = ", ".join(
            f"row {int(r) + 1} (num {num[int(r)].as_py()}, target {target[int(r)].as_py()})"
            for r in rows[:_SHOWN_LINES]
        )
        count = "1 row" if len(rows) == 1 else f"{len(rows)} rows"
        raise HeartContractError(
            name,
            [f"column 'target' disagrees with num > 0 in {count}: {shown}"],
            bad_values={schema.TARGET: len(rows)},
        )
