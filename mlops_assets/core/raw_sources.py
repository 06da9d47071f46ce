"""Raw sources of the tabular use cases: a deterministic generator by default, or a user's file.

:class:`RawSourceConfig` holds the settings they share (which source, the file, the generator's
seed); a use case subclasses it to name its file format in ``source`` and add its generator's
size. :func:`load_raw_source` is the branch between the two, and turns a contract error of the
file into a failure that names the asset: no traceback, no retry (the same file fails the same
way), and nothing published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

T = TypeVar("T")

GENERATOR = "generator"


class RawSourceConfig(dg.Config):
    """Where the raw data come from. Subclasses narrow ``source`` to ``Literal["generator",
    "<file kind>"]`` with a description of the file they read."""

    source: str = Field(default=GENERATOR, description="'generator', or the kind of file to read.")
    path: str = Field(default="", description="With a file source: the file to read.")
    seed: int = Field(default=42, description="Generator: seed.")

    def describe(self) -> str:
        """What the data came from, for the materialization's metadata."""
        return GENERATOR if self.source == GENERATOR else self.path


def source_field(description: str) -> Any:
    """The ``source`` setting of a use case's raw config, the generator by default:
    ``source: Literal["generator", "csv"] = source_field("'generator': ...; 'csv': ...")``."""
    return Field(default=GENERATOR, description=description)


class SourceError(ValueError):
    """A raw file that breaks the use case's data contract (missing or mistyped columns, values
    out of range): the user's data is wrong, not the code."""


def load_raw_source(
    asset: dg.AssetKey | str,
    config: RawSourceConfig,
    *,
    generate: Callable[[], T],
    read: Callable[[str], T],
    contract_errors: tuple[type[Exception], ...] = (),
) -> T:
    """The raw data of ``asset``: ``generate()`` with the generator source, else ``read(path)``.

    A missing path, a missing file or a contract error of the file (``SourceError`` or one of
    ``contract_errors``) fails the step with a message naming the asset and the problem.
    """
    name = asset.to_user_string() if isinstance(asset, dg.AssetKey) else asset
    if config.source == GENERATOR:
        return generate()
    if not config.path:
        raise dg.Failure(
            f"{name}: source={config.source!r} needs `path` (the file to read)",
            allow_retries=False,
        )
    try:
        return read(config.path)
    except (SourceError, FileNotFoundError, *contract_errors) as exc:
        raise dg.Failure(f"{name}: {exc}", allow_retries=False) from exc
