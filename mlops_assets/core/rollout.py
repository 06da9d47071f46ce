"""How a new model version reaches live traffic: the rollout mode of a registered model.

A candidate (the version with alias ``candidate``) reaches requests in one of three modes:

* ``off``: only the champion answers.
* ``shadow``: the champion answers; a ``share`` of requests is also scored by the candidate
  after the answer is sent. Both predictions go to the request log (the candidate's with role
  ``shadow``), so they can be compared on the same requests once labels arrive.
* ``canary``: a ``share`` of *entities* (a stable hash of the endpoint's entity key, such as a
  fraud request's ``card_id``) is answered by the candidate; the answer names the version that
  answered. The champion scores those requests in shadow, so the comparison stays like for like.

The mode lives in the model registry, as tags of the registered model (``rollout.*``), next to the
aliases: the API follows it live, as it follows the aliases, and the promotion gate reads it. Only
the standard library here: the API and the CLI import it at start-up.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

RolloutMode = Literal["off", "shadow", "canary"]
MODES: tuple[str, ...] = get_args(RolloutMode)

# Tags of the registered model (not of a version: the mode outlives the candidate it first showed).
MODE_TAG = "rollout.mode"
SHARE_TAG = "rollout.share"
REASON_TAG = "rollout.reason"
UPDATED_TAG = "rollout.updated_at"

# Roles of a request-log record: the answer that was sent, or a prediction scored beside it and
# never sent. Old log batches have no role: they are answers.
SERVED_ROLE = "served"
SHADOW_ROLE = "shadow"

DEFAULT_SHARE = {"off": 0.0, "shadow": 1.0, "canary": 0.1}


class RolloutError(ValueError):
    """A rollout setting that cannot be followed (a mode or share out of range)."""


@dataclass(frozen=True)
class Rollout:
    """The rollout of one registered model: its mode and the share of requests (shadow) or of
    entities (canary) it applies to."""

    mode: RolloutMode = "off"
    share: float = 0.0
    reason: str = ""
    updated_at: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise RolloutError(f"rollout mode {self.mode!r}: use one of {list(MODES)}")
        if not (isinstance(self.share, int | float) and math.isfinite(self.share)):
            raise RolloutError(f"rollout share {self.share!r} is not a number")
        if not 0.0 <= self.share <= 1.0:
            raise RolloutError(f"rollout share {self.share} must be between 0 and 1")

    @classmethod
    def of(cls, mode: str, share: float | None = None, *, reason: str = "") -> Rollout:
        """A new setting: ``share`` defaults to the mode's (all requests in shadow, a tenth of
        the entities in canary), stamped now."""
        if mode not in MODES:
            raise RolloutError(f"rollout mode {mode!r}: use one of {list(MODES)}")
        return cls(
            mode=mode,  # type: ignore[arg-type]
            share=DEFAULT_SHARE[mode] if share is None else float(share),
            reason=reason,
            updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @property
    def active(self) -> bool:
        """Whether the candidate sees any request."""
        return self.mode != "off" and self.share > 0

    def tags(self) -> dict[str, str]:
        """The registered model's tags that hold this setting."""
        return {
            MODE_TAG: self.mode,
            SHARE_TAG: repr(float(self.share)),
            REASON_TAG: self.reason,
            UPDATED_TAG: self.updated_at,
        }


def rollout_from_tags(tags: Mapping[str, str]) -> Rollout:
    """The setting kept in a registered model's ``tags``; ``off`` when none was ever set.

    Raises :class:`RolloutError` for tags that do not make a setting (a hand-edited tag).
    """
    mode = tags.get(MODE_TAG, "off") or "off"
    text = tags.get(SHARE_TAG, "")
    try:
        share = float(text) if text else DEFAULT_SHARE.get(mode, 0.0)
    except ValueError:
        raise RolloutError(f"tag {SHARE_TAG}={text!r} is not a number") from None
    return Rollout(
        mode=mode,  # type: ignore[arg-type]
        share=share,
        reason=tags.get(REASON_TAG, ""),
        updated_at=tags.get(UPDATED_TAG, ""),
    )


def bucket(key: object) -> float:
    """A stable number in [0, 1) for ``key``: the same key gets the same number in every process
    and on every machine (unlike ``hash``, which is salted per process)."""
    digest = hashlib.blake2b(str(key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def selected(key: object, share: float) -> bool:
    """Whether ``key`` falls in the ``share`` of keys a rollout applies to. Growing the share
    only adds keys: an entity in a 10% canary stays in the 20% one."""
    return bucket(key) < share
