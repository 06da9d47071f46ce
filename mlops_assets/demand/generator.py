"""The offline source of hourly demand: a deterministic generator that looks like EIA-930 data.

Demand of a balancing authority is its base load shaped by what drives real demand:

* **the day**: low at night, a morning ramp and an evening peak, by the authority's *local* clock,
  so the profile shifts by an hour in UTC when daylight saving starts and ends;
* **the week**: Saturdays and Sundays are lighter, and so are US federal holidays;
* **the season**: cooling in summer, heating in winter, in proportions that differ by region
  (Texas cools a lot, New York heats more);
* **the weather**: a temperature-like anomaly that drifts smoothly over days (a sum of slow waves
  with phases drawn per authority), so some weeks run hot and some cold;
* **noise**: a few percent per hour;
* **a level shift** (a scenario, off by default): from a given UTC day on, demand of some or all
  authorities runs a fixed share higher or lower (a new large load connects, a plant closes), the
  change a forecaster must notice in its live errors.

Deterministic: an authority's shape comes from ``(seed, respondent)`` and an hour's noise from
``(seed, respondent, day)``, so a day regenerates to the same bytes whichever days are generated,
in whatever order. Values are whole MWh written as text, as the EIA API sends them.

Pure code: numpy and pyarrow are imported when a day is generated, not when the code location loads.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from mlops_assets.demand import schema

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# Mean hourly demand (MWh) and local time zone of the authorities the generator knows; any other
# code gets a base load and zone drawn from its name.
_KNOWN = {
    "CISO": (25_000.0, "America/Los_Angeles", 0.25, 0.05),
    "ERCO": (48_000.0, "America/Chicago", 0.35, 0.08),
    "PJM": (88_000.0, "America/New_York", 0.20, 0.12),
    "MISO": (75_000.0, "America/Chicago", 0.20, 0.12),
    "NYIS": (17_000.0, "America/New_York", 0.18, 0.10),
}
_OTHER_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")

# Share of the daily mean by local hour: trough at 4 am, a morning shoulder, an evening peak.
_DAILY_PROFILE = (
    0.84, 0.81, 0.79, 0.78, 0.78, 0.81, 0.87, 0.94, 0.99, 1.02, 1.04, 1.05,
    1.06, 1.07, 1.08, 1.10, 1.13, 1.17, 1.19, 1.17, 1.12, 1.05, 0.97, 0.90,
)  # fmt: skip
# Weekday factors, Monday first.
_WEEKLY = (1.0, 1.01, 1.01, 1.0, 0.98, 0.91, 0.87)
_HOLIDAY = 0.88
# Periods (days) of the slow waves that make the weather anomaly.
_WEATHER_PERIODS = (3.1, 5.3, 8.9, 13.7, 21.0)


@dataclass(frozen=True)
class GeneratorConfig:
    """Which authorities to generate, how noisy, the seed that fixes them, and an optional level
    shift: from the UTC day ``level_shift_from`` on, demand of ``level_shift_respondents`` (empty:
    all) is ``1 + level_shift`` times what it would have been (+0.25: a quarter higher). Off
    (``level_shift_from=None``), every series is exactly what it was without the option."""

    respondents: tuple[str, ...] = schema.RESPONDENTS
    noise: float = 0.02
    seed: int = 42
    level_shift_from: date | None = None
    level_shift: float = 0.0
    level_shift_respondents: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.respondents:
            raise ValueError("the generator needs at least one respondent")
        if len(set(self.respondents)) != len(self.respondents):
            raise ValueError(f"respondents repeat: {list(self.respondents)}")
        if not 0 <= self.noise < 0.5:
            raise ValueError(f"noise must be in [0, 0.5), got {self.noise}")
        # Demand stays positive: a shift of -100% or less would make it zero or negative.
        if not -1 < self.level_shift <= 10:
            raise ValueError(f"level_shift must be in (-1, 10], got {self.level_shift}")
        if self.level_shift and self.level_shift_from is None:
            raise ValueError(
                f"level_shift={self.level_shift} needs level_shift_from (the first shifted day)"
            )
        unknown = sorted(set(self.level_shift_respondents) - set(self.respondents))
        if unknown:
            raise ValueError(
                f"level_shift_respondents {unknown} are not among the respondents "
                f"{list(self.respondents)}"
            )

    def shift_of(self, respondent: str, day: date) -> float:
        """The relative level shift of ``respondent`` on the UTC ``day`` (0.0: none)."""
        if self.level_shift_from is None or day < self.level_shift_from:
            return 0.0
        if self.level_shift_respondents and respondent not in self.level_shift_respondents:
            return 0.0
        return self.level_shift


@dataclass(frozen=True)
class _Profile:
    base: float
    zone: ZoneInfo
    cooling: float
    heating: float
    weather_amplitude: float
    weather_phases: tuple[float, ...]


def _key(*parts: object) -> int:
    # crc32, not hash(): Python salts str hashes per process, and days must regenerate identically.
    return zlib.crc32("/".join(str(p) for p in parts).encode())


@cache
def _profile(seed: int, respondent: str) -> _Profile:
    import numpy as np

    rng = np.random.default_rng([seed, _key("profile", respondent)])
    if respondent in _KNOWN:
        base, zone, cooling, heating = _KNOWN[respondent]
    else:
        base = float(rng.uniform(5_000, 50_000))
        zone = _OTHER_ZONES[_key(respondent) % len(_OTHER_ZONES)]
        cooling, heating = float(rng.uniform(0.1, 0.3)), float(rng.uniform(0.03, 0.12))
    return _Profile(
        base=base,
        zone=ZoneInfo(zone),
        cooling=cooling,
        heating=heating,
        weather_amplitude=float(rng.uniform(0.03, 0.06)),
        weather_phases=tuple(float(p) for p in rng.uniform(0, 2 * math.pi, len(_WEATHER_PERIODS))),
    )


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th ``weekday`` (Monday=0) of a month; n=-1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


@cache
def us_holidays(year: int) -> frozenset[date]:
    """US federal holidays of ``year`` (the fixed-date ones on their calendar day)."""
    return frozenset(
        {
            date(year, 1, 1),
            _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
            _nth_weekday(year, 2, 0, 3),  # Presidents' Day
            _nth_weekday(year, 5, 0, -1),  # Memorial Day
            date(year, 6, 19),
            date(year, 7, 4),
            _nth_weekday(year, 9, 0, 1),  # Labor Day
            _nth_weekday(year, 10, 0, 2),  # Columbus Day
            date(year, 11, 11),
            _nth_weekday(year, 11, 3, 4),  # Thanksgiving
            date(year, 12, 25),
        }
    )


def _hours(day: date) -> list[datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [start + timedelta(hours=h) for h in range(24)]


def demand_of_day(respondent: str, day: date, config: GeneratorConfig) -> np.ndarray:
    """Demand (MWh, whole numbers) of ``respondent`` for the 24 UTC hours of ``day``."""
    import numpy as np

    p = _profile(config.seed, respondent)
    hours = _hours(day)
    local = [h.astimezone(p.zone) for h in hours]
    shape = np.array([_DAILY_PROFILE[t.hour] for t in local])
    week = np.array(
        [_HOLIDAY if t.date() in us_holidays(t.year) else _WEEKLY[t.weekday()] for t in local]
    )
    # Day of year as a continuous angle: coldest mid-January, hottest late July.
    epoch_days = np.array([h.timestamp() / 86_400 for h in hours])
    angle = 2 * math.pi * (epoch_days - 19.0) / 365.25  # day 0 of the cycle is 1970-01-20
    summer = np.clip(-np.cos(angle), 0, None)
    winter = np.clip(np.cos(angle), 0, None)
    # Cooling load peaks in the afternoon, heating load in the morning and evening.
    afternoon = np.array([1.0 + 0.5 * math.sin(math.pi * (t.hour - 9) / 12) for t in local])
    season = 1 + p.cooling * summer * afternoon + p.heating * winter
    weather = p.weather_amplitude * sum(
        np.sin(2 * math.pi * epoch_days / period + phase) / len(_WEATHER_PERIODS) * 2
        for period, phase in zip(_WEATHER_PERIODS, p.weather_phases, strict=True)
    )
    rng = np.random.default_rng([config.seed, _key("noise", respondent), day.toordinal()])
    noise = rng.normal(0.0, config.noise, 24)
    demand = p.base * shape * week * season * (1 + weather) * (1 + noise)
    shift = config.shift_of(respondent, day)
    if shift:
        # Applied only when on, after everything else: without a shift the arithmetic (and so
        # every byte of the existing series) is exactly what it was before the option existed.
        demand = demand * (1 + shift)
    return np.round(demand)


def generate_day(day: date, config: GeneratorConfig) -> pa.Table:
    """Every respondent's 24 hourly demand rows of the UTC ``day``, in the raw contract."""
    return generate(day, day + timedelta(days=1), config)


def generate(start: date, end: date, config: GeneratorConfig) -> pa.Table:
    """Hourly demand of every respondent for the UTC days ``[start, end)``, sorted by respondent
    and hour, in the raw contract (``schema.raw_schema()``)."""
    import pyarrow as pa

    if end <= start:
        raise ValueError(f"empty range: {start} .. {end}")
    days = [start + timedelta(days=i) for i in range((end - start).days)]
    respondents, periods, values = [], [], []
    for respondent in config.respondents:
        for day in days:
            respondents += [respondent] * 24
            periods += _hours(day)
            values += [str(int(v)) for v in demand_of_day(respondent, day, config)]
    n = len(values)
    return pa.table(
        {
            "respondent": respondents,
            "period": periods,
            "type": [schema.DEMAND_TYPE] * n,
            "value": values,
            "value_units": [schema.VALUE_UNITS] * n,
        },
        schema=schema.raw_schema(),
    )
