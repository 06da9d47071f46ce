"""``mlops new-use-case NAME``: write a new use case that works end to end, to be made one's own.

The folder it writes, ``mlops_assets/<name>/``, is a small binary classifier on generated data:
raw records (or a CSV file) → a clean table published only if its blocking audits pass → features
→ a training set with a fixed holdout → a scikit-learn model registered in MLflow → the champion
gate, served at ``POST /predict/<name>``. It is found as it is: the code location, ``mlops demo``
and the prediction API read the use cases from the folders (:mod:`mlops_assets.use_cases`), so
nothing else in the project is edited.

The files come from the templates in ``templates/use_case/`` (``string.Template``: ``$name``,
``$title``, ``$class_prefix``). The folder is written beside its final place and renamed into it
at the end, so a failure never leaves half a use case for the code location to trip on.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
from pathlib import Path
from string import Template

from mlops_assets.use_cases import PLATFORM

TEMPLATES = Path(__file__).resolve().parent / "templates" / "use_case"
SUFFIX = ".tmpl"
# The platform's packages (never use cases: one of those names would be ignored by the scan).
RESERVED = PLATFORM | {"mlops_assets"}

# Lower-case ASCII, starting with a letter: it becomes a folder, a Python package, an asset-key
# prefix, a Dagster group, an MLflow experiment and a URL path. No double underscore: op names are
# `<use case>__<asset>`, and `a__b` would make them ambiguous.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def package_dir() -> Path:
    """The folder of the ``mlops_assets`` package, where use cases live."""
    return Path(__file__).resolve().parents[1]


def check_name(name: str, dest: Path) -> None:
    """Raise ``ValueError``, saying why, unless ``name`` can be a new use case in ``dest``."""
    if not dest.is_dir():
        raise ValueError(f"no folder {dest} to write the use case into")
    if not _NAME.match(name) or "__" in name or name.endswith("_"):
        raise ValueError(
            f"invalid use-case name {name!r}: use lower-case letters, digits and single "
            "underscores, starting with a letter (e.g. 'churn', 'credit_risk')"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ValueError(f"invalid use-case name {name!r}: it is a Python keyword")
    if name in RESERVED:
        raise ValueError(f"invalid use-case name {name!r}: reserved for the platform's own package")
    if (dest / name).exists() or (dest / f"{name}.py").exists():
        raise ValueError(f"{name!r} exists already in {dest}: pick another name")


def render(name: str) -> dict[str, str]:
    """The files of use case ``name``, by file name: the templates with its name filled in."""
    values = {
        "name": name,
        "title": name.replace("_", " ").capitalize(),
        "class_prefix": "".join(part.capitalize() for part in name.split("_")),
    }
    return {
        template.name.removesuffix(SUFFIX): Template(template.read_text()).substitute(values)
        for template in sorted(TEMPLATES.glob(f"*.py{SUFFIX}"))
    }


def new_use_case(name: str, dest: Path | None = None) -> Path:
    """Write the use case ``name`` into ``dest`` (the ``mlops_assets`` package by default) and
    return its folder.

    Raises ``ValueError`` when ``dest`` is not a folder, or the name is not a lower-case
    identifier, is reserved (``core``, ``serving``, ``tooling``) or is taken by a package or
    module of ``dest``.
    """
    dest = Path(dest) if dest is not None else package_dir()
    check_name(name, dest)
    files = render(name)
    # Written under a name the use-case scan skips (not an identifier), then renamed in one step;
    # what a killed earlier attempt left there goes first.
    staging = dest / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for file_name, text in files.items():
            (staging / file_name).write_text(text)
        target = dest / name
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
