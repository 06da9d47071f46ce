"""Sampling helpers of the use cases' synthetic generators (heart patients, home sales, athletes).

A generator must give the same bytes for the same config, on every machine and release: the
pipelines' data versions and the sources tests depend on it. So every generator draws from ONE
``numpy`` stream (:func:`stream`), seeded from its config's seed and a salt of its own, makes every
draw whatever the values (the stream stays aligned), and samples categories by inverse CDF with
the helpers below, which consume exactly one uniform per draw, in order.

Also here: the checks of a generator's own config (:func:`check_count`, :func:`check_seed`),
for callers that build one by hand (tests, notebooks) rather than through the asset's validated
run config.

Pure code: no Dagster; numpy is imported inside the functions (the code location imports the use
cases' sources, which import this module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def entropy(seed: int, *keys: int) -> np.random.SeedSequence:
    """The seed sequence of ``seed`` and ``keys`` (a generator's salt, a day...). SeedSequence
    wants non-negative entropy: a negative seed maps to its two's complement."""
    import numpy as np

    return np.random.SeedSequence([seed % 2**64, *keys])


def stream(seed: int, *keys: int) -> np.random.Generator:
    """The random stream of ``seed`` and ``keys``: the same numbers for the same arguments."""
    import numpy as np

    return np.random.default_rng(entropy(seed, *keys))


def cumulative(weights: Any) -> np.ndarray:
    """The cumulative distribution of unnormalised ``weights`` (the last value is 1)."""
    import numpy as np

    cum = np.cumsum(weights, dtype=np.float64)
    return cum / cum[-1]


def draw_at(weights: Any, u: np.ndarray) -> np.ndarray:
    """The index drawn by each uniform ``u`` in [0, 1) with the (unnormalised) ``weights``."""
    import numpy as np

    cum = cumulative(weights)
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1).astype(np.int64)


def draw(rng: np.random.Generator, weights: Any, n: int) -> np.ndarray:
    """``n`` indices drawn with the given (unnormalised) weights: one uniform each."""
    return draw_at(weights, rng.random(n))


def draw_rows(rng: np.random.Generator, weight_rows: np.ndarray) -> np.ndarray:
    """One index per row, each row with its own (unnormalised) weights: one uniform per row."""
    import numpy as np

    cum = np.cumsum(weight_rows, axis=1, dtype=np.float64)
    cum /= cum[:, -1:]
    u = rng.random(len(weight_rows))
    # Zero-weight columns share the previous cumulative value, so they are never drawn.
    return np.minimum((u[:, None] >= cum).sum(axis=1), weight_rows.shape[1] - 1).astype(np.int64)


def sigmoid(x: Any) -> np.ndarray:
    """The logistic function: a probability from a linear risk."""
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def check_count(name: str, value: object, *, low: int = 1, high: int | None = None) -> None:
    """``value`` (the config's field ``name``) is an int (not a bool) in ``[low, high]``: a
    ``TypeError`` or ``ValueError`` naming the field otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bounds}, got {value}")


def check_seed(seed: object) -> None:
    """A generator's seed is any int (not a bool): a ``TypeError`` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
