"""Where the athletes use case's raw data comes from: a synthetic generator, or the user's file.

**The generator** (:func:`generate_athletes`) plays the CrossFit Games athletes export: one row per
registered athlete, ``athlete_id`` 1..n. About 70% are men; ages run 18-55, heights 60-78 in and
weights 110-260 lb (by gender, heavier for taller athletes). Each athlete has a latent strength
and a training age (``howlong``); the four lifts (pounds, rounded to 5 lb) grow with body weight,
strength and training age (men: deadlift ~400, back squat ~320, clean and jerk ~210, snatch ~165;
women ~60% of that), and the benchmark workouts (seconds; ``fgonebad`` and ``pullups`` in reps)
are better for stronger, more experienced athletes. Most athletes logged few workouts: each one
is missing for 50-80% of them. Survey answers follow the source's style (``|``-separated choices,
e.g. ``"I began CrossFit with a coach (e.g. at an affiliate)|"``); about 15% of athletes skipped
the survey (nulls) and some answers are ``"Decline to answer|"``.

A deterministic share of rows (:data:`JUNK_SHARE`, ~3%) carries one impossible value each, of the
kinds the source really has (:data:`JUNK_KINDS`: weight 2000 lb, height 10 or 200 in, age 5,
gender ``"--"``, a 5000 lb deadlift, a negative snatch...), so that the cleaning rules have work
to do; another ~1% has free-text noise in a survey answer. Everything is drawn from one ``numpy``
stream seeded from ``GeneratorConfig.seed`` alone: the same config gives the same bytes.

**The file source** (:func:`read_athletes_csv`) reads a user's CSV (or parquet) file with the
columns of :func:`mlops_assets.athletes.schema.raw_schema` (rules of
:mod:`mlops_assets.core.contracts`): extra columns are dropped, missing ones and values that
cannot be converted raise an :class:`AthletesContractError` naming them, with samples.

Pure code: no Dagster import; numpy and pyarrow are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.athletes import schema
from mlops_assets.core import contracts, synthetic

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

DECLINE = "Decline to answer|"

#: ``howlong`` answers, from the least to the most experienced (the training age).
HOWLONG = (
    "Less than 6 months|",
    "6-12 months|",
    "1-2 years|",
    "2-4 years|",
    "4+ years|",
)
_HOWLONG_WEIGHTS = (0.12, 0.18, 0.28, 0.27, 0.15)

BEGAN_WITH_COACH = "I began CrossFit with a coach (e.g. at an affiliate)|"
BEGAN_ALONE = "I began CrossFit by trying it alone (without a coach)|"
LEVEL1 = "I have completed the CrossFit Level 1 certificate course|"
_EXPERIENCE_EXTRAS = (
    (LEVEL1, 0.10),  # + 0.08 per step of training age
    ("I have attended one or more specialty courses|", 0.15),
    ("I have had a life changing experience due to CrossFit|", 0.35),
    ("I train other people|", 0.10),
)
_EAT = (
    "I eat whatever is convenient|",
    "I eat 1-3 full cheat meals per week|",
    "I eat quality foods but don't measure the amount|",
    "I eat strict Paleo|",
    "I weigh and measure my food|",
    "I eat quality foods but don't measure the amount|I eat 1-3 full cheat meals per week|",
)
_EAT_WEIGHTS = (0.20, 0.20, 0.35, 0.08, 0.10, 0.07)
_SCHEDULE_LOAD = (
    "I usually only do 1 workout a day|",
    "I do multiple workouts in a day 1x a week|",
    "I do multiple workouts in a day 2x a week|",
    "I do multiple workouts in a day 3+ times a week|",
)
_SCHEDULE_REST = (
    "",
    "I strictly schedule my rest days|",
    "I typically rest 4 or more days per month|",
    "I typically rest fewer than 4 days per month|",
)
_TRAIN = (
    "I workout mostly at a CrossFit Affiliate|",
    "I have a coach who determines my programming|",
    "I incorporate CrossFit.com workouts into my training|",
    "I write my own programming|",
    "I record my workouts|",
)
_BACKGROUND = (
    "I played youth or high school level sports|",
    "I played college sports|",
    "I played professional sports|",
    "I regularly play recreational sports|",
    "I have no athletic background besides CrossFit|",
)
_BACKGROUND_WEIGHTS = (0.35, 0.20, 0.03, 0.17, 0.25)
_NOISE = ("idk", "see above lol", "N/A", "asdfgh", "I do CrossFit", "?")

_FIRST = (
    "Alex", "Sam", "Chris", "Jordan", "Taylor", "Morgan", "Casey", "Jamie", "Riley", "Drew",
    "Dan", "Kate", "Mike", "Sara", "Ben", "Emma", "Luke", "Anna", "Matt", "Julia",
)  # fmt: skip
_LAST = (
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Moore",
    "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green",
)  # fmt: skip
_REGIONS = (
    "Central East", "Mid Atlantic", "North Central", "North East", "Northern California",
    "North West", "South Central", "South East", "Southern California", "South West",
    "Canada East", "Canada West", "Europe", "Australia", "Latin America", "Asia", "Africa",
)  # fmt: skip

# Male means (lb) at 190 lb body weight, a training age of "1-2 years" and average strength.
_LIFT_MEANS = {"deadlift": 400.0, "backsq": 320.0, "candj": 210.0, "snatch": 165.0}
_FEMALE_RATIO = 0.60
_LIFT_SIGMA = 0.16  # shared strength, log scale
_LIFT_OWN_SIGMA = 0.06  # each lift's own noise
_LIFT_WEIGHT_ELASTICITY = 0.6
_LIFT_PER_YEAR_STEP = 0.06
# Caps that keep every clean row inside the cleaning rules (mlops_assets.athletes.cleaning).
_LIFT_CAPS = {"deadlift": 1000.0, "backsq": 1000.0, "candj": 390.0, "snatch": 480.0}
_FEMALE_DEADLIFT_CAP = 630.0

# Workouts: male median, whether lower is better, the share of athletes who logged it.
_WORKOUTS = {
    "fran": (270.0, True, 0.45),
    "helen": (600.0, True, 0.35),
    "grace": (240.0, True, 0.40),
    "filthy50": (1_500.0, True, 0.20),
    "fgonebad": (300.0, False, 0.25),
    "run400": (75.0, True, 0.30),
    "run5k": (1_380.0, True, 0.40),
    "pullups": (25.0, False, 0.50),
}
_FEMALE_WORKOUT = {"pullups": 0.6, "fgonebad": 0.85}  # reps; times are 15% slower
_FEMALE_TIME = 1.15

_SURVEY_SKIPPED = 0.15
_DECLINE_SHARE = 0.04

#: The share of rows carrying one impossible value (rounded to whole rows).
JUNK_SHARE = 0.03
#: The share of rows with free-text noise in one survey answer (rounded to whole rows).
NOISE_SHARE = 0.01
#: The impossible values, ``(column, value)``; junk rows take them in turn.
JUNK_KINDS: tuple[tuple[str, Any], ...] = (
    ("weight", 2_000.0),
    ("height", 10.0),
    ("height", 200.0),
    ("age", 5.0),
    ("gender", "--"),
    ("deadlift", 5_000.0),
    ("snatch", -45.0),
    ("backsq", 0.0),
    ("candj", 1_500.0),
)
_STREAM = 0xA7B1E7  # SeedSequence salt of the generator's stream


@dataclass(frozen=True)
class GeneratorConfig:
    """How many athletes to generate and the seed that fixes every draw."""

    n_athletes: int = 5_000
    seed: int = 42

    def __post_init__(self) -> None:
        # The asset's run config is validated by Dagster; this is for configs built by hand.
        synthetic.check_count("n_athletes", self.n_athletes)
        synthetic.check_seed(self.seed)


def junk_count(n_athletes: int) -> int:
    """How many of ``n_athletes`` rows the generator makes impossible."""
    return round(JUNK_SHARE * n_athletes)


def generate_athletes(config: GeneratorConfig | None = None) -> pa.Table:
    """``config.n_athletes`` athletes with exactly ``schema.raw_schema()``, ``athlete_id`` 1..n.

    The same config always gives the same table. :func:`junk_count` rows carry one impossible
    value each (:data:`JUNK_KINDS`, in turn); the other rows pass every value rule of the cleaning.
    """
    import numpy as np
    import pyarrow as pa

    config = config or GeneratorConfig()
    n = config.n_athletes
    rng = synthetic.stream(config.seed, _STREAM)
    # Every draw below happens whatever the values, so the stream stays aligned.

    male = rng.random(n) < 0.70
    age = 18.0 + rng.gamma(2.2, 6.0, n)
    age = np.round(np.where(age > 55.0, rng.uniform(18.0, 55.0, n), age))  # no pile at 55
    height = np.where(male, 70.0, 64.5) + np.where(male, 2.8, 2.6) * rng.standard_normal(n)
    height = np.round(np.clip(height, 60.0, 78.0))
    weight = (
        np.where(male, 190.0, 140.0)
        + np.where(male, 5.0, 4.0) * (height - np.where(male, 70.0, 64.5))
        + np.where(male, 20.0, 15.0) * rng.standard_normal(n)
    )
    weight = np.round(np.clip(weight, np.where(male, 130.0, 110.0), np.where(male, 260.0, 220.0)))

    years = synthetic.draw(rng, np.asarray(_HOWLONG_WEIGHTS), n)  # 0..4, the training age
    strength = rng.standard_normal(n)
    level = (
        _LIFT_SIGMA * strength
        + _LIFT_PER_YEAR_STEP * (years - 2)
        + _LIFT_WEIGHT_ELASTICITY * np.log(weight / np.where(male, 190.0, 140.0))
    )
    columns: dict[str, Any] = {}
    for lift, mean in _LIFT_MEANS.items():
        base = mean * np.where(male, 1.0, _FEMALE_RATIO)
        value = base * np.exp(level + _LIFT_OWN_SIGMA * rng.standard_normal(n))
        cap = np.full(n, _LIFT_CAPS[lift])
        if lift == "deadlift":
            cap = np.where(male, cap, _FEMALE_DEADLIFT_CAP)
        columns[lift] = np.clip(np.round(value / 5.0) * 5.0, 45.0, cap)

    fitness = 0.6 * strength + 0.25 * (years - 2) + 0.5 * rng.standard_normal(n)
    for name, (median, lower_better, logged) in _WORKOUTS.items():
        noise = 0.12 * rng.standard_normal(n)
        seen = rng.random(n) < logged
        if lower_better:
            value = median * np.where(male, 1.0, _FEMALE_TIME) * np.exp(-0.12 * fitness + noise)
        else:
            scale = np.where(male, 1.0, _FEMALE_WORKOUT[name])
            value = median * scale * np.exp(0.18 * fitness + noise)
        columns[name] = np.where(seen, np.round(np.maximum(value, 1.0)), np.nan)

    survey = _survey(rng, n, years)

    # Identity.
    first = rng.integers(0, len(_FIRST), n)
    last = rng.integers(0, len(_LAST), n)
    region = rng.integers(0, len(_REGIONS), n)
    has_affiliate = rng.random(n) < 0.75
    affiliate_no = rng.integers(1, 400, n)
    on_team = rng.random(n) < 0.05
    name = [f"{_FIRST[a]} {_LAST[b]}" for a, b in zip(first, last, strict=True)]
    affiliate = [
        f"CrossFit Box {k}" if h else None for k, h in zip(affiliate_no, has_affiliate, strict=True)
    ]
    team = [f"Team {k}" if t else None for k, t in zip(affiliate_no, on_team, strict=True)]

    text: dict[str, list[Any]] = {
        "name": name,
        "region": [_REGIONS[r] for r in region],
        "team": team,
        "affiliate": affiliate,
        "gender": ["Male" if m else "Female" for m in male],
        **survey,
    }
    numbers: dict[str, Any] = {"age": age, "height": height, "weight": weight, **columns}

    # Junk: junk_count(n) distinct rows, one impossible value each, kinds in turn.
    junk_rows = rng.permutation(n)[: junk_count(n) + round(NOISE_SHARE * n)]
    noise_pick = rng.integers(0, len(_NOISE), len(junk_rows))
    noise_field = rng.integers(0, len(schema.SURVEY), len(junk_rows))
    for i, row in enumerate(junk_rows):
        if i < junk_count(n):
            column, value = JUNK_KINDS[i % len(JUNK_KINDS)]
            if column in text:
                text[column][row] = value
            else:
                numbers[column][row] = value
        else:
            field = schema.SURVEY[noise_field[i]]
            text[field][row] = _NOISE[noise_pick[i]]

    arrays: dict[str, pa.Array] = {
        schema.KEY: pa.array(np.arange(1, n + 1, dtype=np.int64), pa.int64())
    }
    arrays.update({k: pa.array(v, pa.string()) for k, v in text.items()})
    arrays.update(
        {
            k: pa.array(np.asarray(v, dtype=np.float64), pa.float64(), from_pandas=True)
            for k, v in numbers.items()
        }
    )
    raw = schema.raw_schema()
    return pa.Table.from_arrays([arrays[f.name] for f in raw], schema=raw)


def _survey(rng: np.random.Generator, n: int, years: np.ndarray) -> dict[str, list[Any]]:
    """The six survey answers, in the source's ``|``-separated style."""
    import numpy as np

    skipped = rng.random(n) < _SURVEY_SKIPPED
    declined = rng.random((n, len(schema.SURVEY))) < _DECLINE_SHARE
    coach = rng.random(n) < 0.65
    extras = rng.random((n, len(_EXPERIENCE_EXTRAS)))
    eat = synthetic.draw(rng, np.asarray(_EAT_WEIGHTS), n)
    load = synthetic.draw(rng, np.asarray((0.70, 0.12, 0.10, 0.08)), n)
    rest = rng.integers(0, len(_SCHEDULE_REST), n)
    train = rng.random((n, len(_TRAIN))) < np.asarray((0.6, 0.2, 0.3, 0.2, 0.5))
    background = synthetic.draw(rng, np.asarray(_BACKGROUND_WEIGHTS), n)

    out: dict[str, list[Any]] = {f: [] for f in schema.SURVEY}
    for i in range(n):
        experience = BEGAN_WITH_COACH if coach[i] else BEGAN_ALONE
        for j, (answer, p) in enumerate(_EXPERIENCE_EXTRAS):
            bonus = 0.08 * years[i] if answer == LEVEL1 else 0.0
            if extras[i, j] < p + bonus:
                experience += answer
        chosen = [t for t, on in zip(_TRAIN, train[i], strict=True) if on]
        answers = {
            "eat": _EAT[eat[i]],
            "train": "".join(chosen) or _TRAIN[0],
            "background": _BACKGROUND[background[i]],
            "experience": experience,
            "schedule": _SCHEDULE_LOAD[load[i]] + _SCHEDULE_REST[rest[i]],
            "howlong": HOWLONG[years[i]],
        }
        for j, f in enumerate(schema.SURVEY):
            out[f].append(None if skipped[i] else DECLINE if declined[i, j] else answers[f])
    return out


# --------------------------------------------------------------------------------------------------
# The file source: the user's own data
# --------------------------------------------------------------------------------------------------


class AthletesContractError(contracts.ContractError):
    """A user's file cannot be read as the raw athletes contract.

    The message names the file and every problem: the missing columns, and for each column with
    values that cannot be converted, how many there are and a few ``(row, text)`` samples. The same
    facts are attributes (``missing_columns``, ``bad_values``, ``samples``): see
    :class:`mlops_assets.core.contracts.ContractError`.
    """


def read_athletes_csv(path: str | Path) -> pa.Table:
    """Read a user's athletes file (``.csv`` or ``.parquet``) coerced to ``schema.raw_schema()``.

    Column names must match the contract exactly (order free); extra columns are dropped. Empty
    cells (and ``NA``, ``NaN``... in number columns) are nulls; text is kept as written.

    Raises :class:`FileNotFoundError` when there is no such file, and
    :class:`AthletesContractError` when it has no rows (a header only), when a column is missing
    or values cannot be converted.
    """
    read = contracts.read_user_file(Path(path), schema.raw_schema(), error=AthletesContractError)
    if read.table.num_rows == 0:
        # A header and nothing else is an export cut short: publishing it would leave clean,
        # the features and the models nothing to learn from, and fail far from the cause.
        raise AthletesContractError(str(path), ["the file has no rows of athletes (a header only)"])
    return read.table
