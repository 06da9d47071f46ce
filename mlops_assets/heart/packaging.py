"""The deployment package of the heart champion: everything a serving team needs, in one folder
that a reader can check byte for byte.

::

    <package>/
      model/            the MLflow model, as downloaded from the registry
      environment.lock  every distribution installed where the package was built (name==version)
      config.json       model name/version, the inputs with their types and ranges, the decision
                        threshold, the engineered features, the training configuration
      model_card.md     what the model is, what it is for and not for, its data and figures
      MANIFEST.json     every other file's path, size and sha256, written LAST

A package is complete only when ``MANIFEST.json`` exists and every hash in it matches
(:func:`verify_package`). The package is written all-or-nothing: on disk it is assembled in a
hidden sibling folder and renamed into place; on an object store (S3, MinIO) each file is one
upload and the manifest is uploaded after all of them, so a crash leaves no manifest and readers
refuse the folder.

No Dagster; nothing heavy is imported here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mlops_assets.core.storage import TEMP_PREFIX, atomic_write, fsync_dir, is_local, sha256_file
from mlops_assets.heart.features import AGE_GROUPS, ENGINEERED
from mlops_assets.heart.schema import CATEGORICAL_INPUTS, INPUTS, RANGES, TARGET, THAL_CODES
from mlops_assets.heart.training import DECISION_THRESHOLD

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from upath import UPath

    from mlops_assets.core.tracking import MlflowTracking

MODEL_DIR = "model"
ENVIRONMENT_LOCK = "environment.lock"
CONFIG = "config.json"
MODEL_CARD = "model_card.md"
MANIFEST = "MANIFEST.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class PackageFile:
    path: str  # relative to the package root, with "/" separators
    size: int
    sha256: str


@dataclass(frozen=True)
class PackageManifest:
    """What ``MANIFEST.json`` says: the files (sorted by path), the model and where it came from."""

    files: tuple[PackageFile, ...]
    model_name: str
    model_version: str
    created_from: str

    def to_json(self) -> bytes:
        payload = {
            "format": MANIFEST_FORMAT,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "created_from": self.created_from,
            "files": [asdict(f) for f in self.files],
        }
        return json.dumps(payload, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> PackageManifest:
        try:
            payload = json.loads(data)
            files = tuple(
                PackageFile(str(f["path"]), int(f["size"]), str(f["sha256"]))
                for f in payload["files"]
            )
            return cls(
                files=files,
                model_name=str(payload["model_name"]),
                model_version=str(payload["model_version"]),
                created_from=str(payload["created_from"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{MANIFEST} is not a package manifest: {exc}") from exc


# --- building -----------------------------------------------------------------------------------


def build_package(
    destination: UPath | Path,
    *,
    model_dir: Path,
    model_name: str,
    model_version: str,
    metrics: Mapping[str, Any],
    data_summary: Mapping[str, Any],
    config: Mapping[str, Any],
    created_from: str | None = None,
) -> PackageManifest:
    """Write the deployment package of ``model_dir`` (a downloaded MLflow model) to
    ``destination``, a folder that must not exist yet; return its manifest.

    * ``metrics``: the model's figures, ``{"cv": {...}, "holdout": {...}}`` (one table per
      section in the model card; plain numbers at the top level go in a table of their own);
    * ``data_summary``: the training data: ``rows``, ``prevalence`` and ``source`` are shown first,
      any other key after them;
    * ``config``: the training configuration (kind, seed, ...), kept in ``config.json``; a
      ``decision_threshold`` in it overrides the default of 0.5;
    * ``created_from``: where the model came from, by default ``models:/<name>/<version>``.

    Raises ``FileExistsError`` if ``destination`` exists (on S3: if any object lies under it),
    ``ValueError`` if ``model_dir`` is not an MLflow model folder. On any error nothing is left
    at ``destination`` that a reader would take for a package.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "MLmodel").is_file():
        raise ValueError(f"{model_dir} is not an MLflow model folder (no MLmodel file)")
    if _exists(destination):
        raise FileExistsError(f"the package destination {destination} already exists")
    origin = created_from or f"models:/{model_name}/{model_version}"

    if is_local(destination):
        target = _local_path(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{target.name}"
        try:
            manifest = _assemble(
                staging, model_dir, model_name, model_version, metrics, data_summary, config, origin
            )
            if target.exists():  # created by someone else while we were building
                raise FileExistsError(f"the package destination {destination} already exists")
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_dir(target.parent)
        return manifest

    with tempfile.TemporaryDirectory(prefix="heart-package-") as tmp:
        staging = Path(tmp) / "package"
        manifest = _assemble(
            staging, model_dir, model_name, model_version, metrics, data_summary, config, origin
        )
        try:
            for entry in manifest.files:
                source = staging / entry.path
                atomic_write(
                    destination / entry.path, lambda out, s=source: shutil.copyfile(s, out)
                )
            # Last: until this upload completes, readers see no package here.
            atomic_write(
                destination / MANIFEST, lambda out: shutil.copyfile(staging / MANIFEST, out)
            )
        except BaseException:
            with contextlib.suppress(Exception):
                destination.fs.rm(destination.path, recursive=True)
            raise
    return manifest


def package_version(
    folder: UPath | Path,
    mlflow: MlflowTracking,
    model_name: str,
    version: ModelVersion,
    data_summary: Mapping[str, Any],
) -> tuple[UPath | Path, PackageManifest, bool]:
    """The package of registered ``version`` of ``model_name`` in ``folder/v<version>``: built
    from the registry (the model, its run's ``cv_*`` and ``holdout_*`` metrics, the kind tag) the
    first time, verified every time after; a version's package never changes.

    Returns the package's folder, its manifest and whether this call built it.
    """
    destination = folder / f"v{version.version}"
    if destination.exists():
        return destination, verify_package(destination), False
    run = mlflow.client.get_run(version.run_id)
    sections = {
        part: {
            k.removeprefix(f"{part}_"): v
            for k, v in sorted(run.data.metrics.items())
            if k.startswith(f"{part}_")
        }
        for part in ("cv", "holdout")
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = mlflow.download_model(model_name, version.version, Path(tmp))
        manifest = build_package(
            destination,
            model_dir=model_dir,
            model_name=model_name,
            model_version=str(version.version),
            metrics=sections,
            data_summary=data_summary,
            config={"threshold": DECISION_THRESHOLD, "kind": version.tags.get("kind", "")},
        )
    return destination, manifest, True


def _assemble(
    root: Path,
    model_dir: Path,
    model_name: str,
    model_version: str,
    metrics: Mapping[str, Any],
    data_summary: Mapping[str, Any],
    config: Mapping[str, Any],
    created_from: str,
) -> PackageManifest:
    """Write the whole package into the local folder ``root`` (created), manifest last."""
    root.mkdir(parents=True)
    shutil.copytree(model_dir, root / MODEL_DIR)
    (root / ENVIRONMENT_LOCK).write_text(environment_lock())
    package_config = config_document(model_name, model_version, config)
    (root / CONFIG).write_text(
        json.dumps(package_config, indent=2, sort_keys=True, default=str) + "\n"
    )
    (root / MODEL_CARD).write_text(
        model_card(
            model_name,
            model_version,
            metrics=metrics,
            data_summary=data_summary,
            config=config,
            threshold=package_config["decision_threshold"],
            created_from=created_from,
        )
    )
    files = tuple(
        PackageFile(path=rel, size=(root / rel).stat().st_size, sha256=sha256_file(root / rel))
        for rel in _local_files(root)
        if rel != MANIFEST
    )
    manifest = PackageManifest(
        files=files, model_name=model_name, model_version=model_version, created_from=created_from
    )
    (root / MANIFEST).write_bytes(manifest.to_json())
    return manifest


def environment_lock() -> str:
    """Every installed distribution as ``name==version``, sorted by name, under a header line
    naming the Python that ran the build."""
    from importlib import metadata

    pins: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            pins.setdefault(name.lower().replace("_", "-"), f"{name}=={dist.version}")
    header = (
        f"# python {platform.python_version()} ({platform.python_implementation()}, "
        f"{platform.system()} {platform.machine()})"
    )
    return "\n".join([header, *(pins[k] for k in sorted(pins))]) + "\n"


def config_document(
    model_name: str, model_version: str, config: Mapping[str, Any]
) -> dict[str, Any]:
    """The content of ``config.json``: what a caller of the model must send, and how to read its
    answer."""
    inputs = []
    for name in INPUTS:
        entry: dict[str, Any] = {
            "name": name,
            "type": "float",
            "kind": "categorical" if name in CATEGORICAL_INPUTS else "numeric",
            "nullable": True,
        }
        if name in RANGES:
            low, high = RANGES[name]
            entry["range"] = [low, high]
        if name == "thal":
            entry["codes"] = list(THAL_CODES)
        inputs.append(entry)
    return {
        "model_name": model_name,
        "model_version": model_version,
        "inputs": inputs,
        "target": TARGET,
        "output": "probability of heart disease (num > 0)",
        "decision_threshold": float(config.get("decision_threshold", DECISION_THRESHOLD)),
        "engineered_features": list(ENGINEERED),
        "age_groups": list(AGE_GROUPS),
        "training": dict(config),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def model_card(
    model_name: str,
    model_version: str,
    *,
    metrics: Mapping[str, Any],
    data_summary: Mapping[str, Any],
    config: Mapping[str, Any],
    threshold: float,
    created_from: str,
) -> str:
    """The Markdown model card of the package."""
    lines = [
        f"# Model card: {model_name} v{model_version}",
        "",
        "## Model details",
        "",
        f"- Name: `{model_name}`, version {model_version} (from `{created_from}`)",
        "- Type: binary classifier, scikit-learn pipeline logged with MLflow (`model/`)",
        "- Input: the 13 clinical inputs of the UCI heart-disease data "
        f"({', '.join(INPUTS)}); missing values are imputed, unseen codes are ignored",
        f"- Engineered inside the model: {', '.join(ENGINEERED)}",
        f"- Output: probability of heart disease (`{TARGET}` = num > 0); "
        f"reported positive at >= {threshold:g}",
    ]
    lines += [f"- {key}: {_fmt(value)}" for key, value in sorted(config.items())]
    lines += [
        "",
        "## Intended use",
        "",
        "Ranking and flagging adult patients referred for chest-pain evaluation for further "
        "cardiology review, as decision support for clinicians, and for teaching and MLOps "
        "demonstration. Not for use on patients unlike the training cohort, and never as the "
        "sole basis of a diagnosis or a treatment decision.",
        "",
        "## Training data",
        "",
    ]
    first = ("rows", "prevalence", "source")
    for key in (*[k for k in first if k in data_summary], *sorted(set(data_summary) - set(first))):
        lines.append(f"- {key}: {_fmt(data_summary[key])}")
    if not data_summary:
        lines.append("- (no summary given)")
    lines += ["", "## Metrics", ""]
    flat = {k: v for k, v in metrics.items() if not isinstance(v, Mapping)}
    sections = [(k, v) for k, v in metrics.items() if isinstance(v, Mapping)]
    if flat:
        sections.insert(0, ("metrics", flat))
    titles = {"cv": "Cross-validation (mean over folds)", "holdout": "Holdout"}
    for section, values in sections:
        lines += [f"### {titles.get(section, section)}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(values.items())]
        lines.append("")
    if not sections:
        lines += ["(no metrics given)", ""]
    lines += [
        "## Limitations and ethical considerations",
        "",
        "- Small cohort: the UCI data are a few hundred patients, mostly the 1988 Cleveland Clinic "
        "series, referred for angiography; figures on such samples are noisy, and practice, "
        "populations and tests have changed since.",
        "- Not a diagnostic device: the model is not cleared by any regulator and has not been "
        "validated prospectively; a clinician decides.",
        "- Sex imbalance: about two thirds of the patients are men, so the model is less well "
        "informed about women, whose symptoms also present differently; check performance by sex "
        "before any use.",
        "- Age and ethnicity: few young patients, and no record of ethnicity, so performance on "
        "groups absent from the cohort is unknown.",
        "- The probability is calibrated on a referred population with high prevalence; in a "
        "general population the same score means a much lower risk.",
        "- Missing `ca` and `thal` are imputed; predictions for patients without them rest on "
        "the other inputs.",
        "",
    ]
    return "\n".join(lines)


# --- reading ------------------------------------------------------------------------------------


def verify_package(path: UPath | Path) -> PackageManifest:
    """The package's manifest, once every file it lists is there with its size and sha256, and
    no other file is.

    Raises ``ValueError`` naming the first problem: no manifest, a missing file, a size or hash
    mismatch, or a file the manifest does not list.
    """
    manifest_path = path / MANIFEST
    try:
        data = manifest_path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path} is not a complete package: no {MANIFEST}") from None
    manifest = PackageManifest.from_json(data)
    present = set(_files(path))
    for entry in manifest.files:
        parts = PurePosixPath(entry.path).parts
        if not parts or entry.path.startswith("/") or ".." in parts:
            raise ValueError(f"{MANIFEST} lists an unsafe path: {entry.path!r}")
        if entry.path not in present:
            raise ValueError(f"package file missing: {entry.path}")
        size, digest = _size_and_sha256(path / entry.path)
        if size != entry.size:
            raise ValueError(f"package file {entry.path}: {size} bytes, manifest says {entry.size}")
        if digest != entry.sha256:
            raise ValueError(f"package file {entry.path}: sha256 does not match the manifest")
    unlisted = sorted(present - {f.path for f in manifest.files} - {MANIFEST})
    if unlisted:
        raise ValueError(f"package file not in {MANIFEST}: {unlisted[0]}")
    return manifest


# --- helpers ------------------------------------------------------------------------------------


def _local_path(path: UPath | Path) -> Path:
    return Path(path.path if hasattr(path, "path") else path)


def _exists(path: UPath | Path) -> bool:
    if is_local(path):
        return os.path.lexists(_local_path(path))
    return bool(path.exists() or path.fs.find(path.path))


def _local_files(root: Path) -> list[str]:
    out = []
    for folder, _, names in os.walk(root):
        for name in names:
            out.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(out)


def _files(root: UPath | Path) -> list[str]:
    if is_local(root):
        return _local_files(_local_path(root))
    root.fs.invalidate_cache(root.path)
    base = root.path.rstrip("/") + "/"
    return sorted(p.removeprefix(base) for p in root.fs.find(root.path) if p.startswith(base))


def _size_and_sha256(path: UPath | Path) -> tuple[int, str]:
    if is_local(path):
        local = _local_path(path)
        return local.stat().st_size, sha256_file(local)
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
