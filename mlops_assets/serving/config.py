"""The API's own settings: every one from an environment variable, with a default.

Where models, features and the asset store live comes from the active profile
(:mod:`mlops_assets.core.profiles`); these say how the API itself runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlops_assets.core.profiles import ProfileError

ENV_VARS: dict[str, str] = {
    "host": "MLOPS_SERVING_HOST",
    "port": "MLOPS_SERVING_PORT",
    "use_cases": "MLOPS_SERVING_USE_CASES",
    "poll_s": "MLOPS_SERVING_POLL_S",
    "log_dir": "MLOPS_SERVING_LOG_DIR",
    "ship_interval_s": "MLOPS_SERVING_LOG_SHIP_S",
    "segment_max_age_s": "MLOPS_SERVING_LOG_SEGMENT_S",
    "max_body_bytes": "MLOPS_SERVING_MAX_BODY_BYTES",
    "unknown_entities": "MLOPS_SERVING_UNKNOWN_ENTITIES",
    "shadow_max_pending": "MLOPS_SERVING_SHADOW_MAX_PENDING",
    "shadow_cpu_share": "MLOPS_SERVING_SHADOW_CPU_SHARE",
}

UNKNOWN_ENTITY_POLICIES = ("reject", "no_history")


@dataclass(frozen=True)
class ServingConfig:
    """How the API runs.

    ``use_cases``: the use cases to serve (empty: every use case that declares an endpoint).
    ``poll_s``: how often the registry is asked whether a ``champion`` alias moved.
    ``log_dir``: the request log's write-ahead folder (local disk, never S3: it must be fsync-able).
    ``ship_interval_s`` / ``segment_max_age_s``: how often sealed log segments are shipped to the
    asset store, and the longest a segment stays open.
    ``max_body_bytes``: larger request bodies get a 413 before they are read.
    ``unknown_entities``: what fraud does with a card or merchant the online store never saw.
    ``shadow_max_pending`` / ``shadow_cpu_share``: the budget of the predictions scored in shadow
    during a rollout: at most this many waiting or running, and at most this share of one core's
    time; a scoring over budget is skipped and counted, so the answers' latency never pays for it.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    use_cases: tuple[str, ...] = ()
    poll_s: float = 10.0
    log_dir: str = ""
    ship_interval_s: float = 5.0
    segment_max_age_s: float = 60.0
    max_body_bytes: int = 64 * 1024
    unknown_entities: str = "reject"
    shadow_max_pending: int = 32
    shadow_cpu_share: float = 0.25

    @classmethod
    def from_env(cls, home: str, environ: Mapping[str, str] | None = None) -> ServingConfig:
        env = os.environ if environ is None else environ

        def raw(name: str, default: str) -> str:
            return env.get(ENV_VARS[name], "").strip() or default

        def number(name: str, default: float, kind: type = float, minimum: float = 0) -> float:
            text = raw(name, str(default))
            try:
                value = kind(text)
            except ValueError:
                raise ProfileError(f"{ENV_VARS[name]}={text!r} is not a number") from None
            # float() takes "nan" and "inf", which pass the minimum: a NaN poll period spins on
            # the registry, an infinite one kills the poller thread (Event.wait overflows).
            if not math.isfinite(value):
                raise ProfileError(f"{ENV_VARS[name]}={text!r} is not a finite number")
            if value < minimum:
                raise ProfileError(f"{ENV_VARS[name]}={text!r} must be at least {minimum}")
            return value

        policy = raw("unknown_entities", "reject")
        if policy not in UNKNOWN_ENTITY_POLICIES:
            raise ProfileError(
                f"{ENV_VARS['unknown_entities']}={policy!r}: use one of {list(UNKNOWN_ENTITY_POLICIES)}"
            )
        use_cases = tuple(u.strip() for u in raw("use_cases", "").split(",") if u.strip())
        cpu_share = number("shadow_cpu_share", cls.shadow_cpu_share, float, 0.01)
        if cpu_share > 1:
            raise ProfileError(
                f"{ENV_VARS['shadow_cpu_share']}={raw('shadow_cpu_share', '')!r} must be at most 1 "
                "(a share of one core)"
            )
        return cls(
            host=raw("host", cls.host),
            port=_port(int(number("port", cls.port, int, 1))),
            use_cases=use_cases,
            poll_s=number("poll_s", cls.poll_s, float, 0.05),
            log_dir=raw("log_dir", str(Path(home) / ".serving" / "request-log")),
            ship_interval_s=number("ship_interval_s", cls.ship_interval_s, float, 0.05),
            segment_max_age_s=number("segment_max_age_s", cls.segment_max_age_s, float, 0.05),
            max_body_bytes=int(number("max_body_bytes", cls.max_body_bytes, int, 256)),
            unknown_entities=policy,
            shadow_max_pending=int(number("shadow_max_pending", cls.shadow_max_pending, int, 1)),
            shadow_cpu_share=cpu_share,
        )


def _port(port: int) -> int:
    if port > 65535:
        raise ProfileError(f"{ENV_VARS['port']}={port} is not a TCP port (1-65535)")
    return port
