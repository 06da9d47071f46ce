"""``mlops lineage``: from a prediction back to the data and the code that made it.

    mlops lineage request REQUEST_ID [--day D]     a request the API answered (its request log)
    mlops lineage score USE_CASE ID --day D         a row of a use case's batch scores
    mlops lineage model NAME@ALIAS|VERSION          a registered model version

Each prints the chain: the prediction → the model version and its alias history → its MLflow
run (params, metrics, code version) → the training set version (path, data version, manifest)
→ the feature partitions and their data versions → the bronze partitions and theirs → the
Dagster run that made each. ``--json`` prints the same as JSON. A link that cannot be found is
printed with why (``MISSING``), never left out; a partition whose data changed since it was read
is marked ``CHANGED``.

The walk itself is :mod:`mlops_assets.core.lineage`; this module finds the prediction, opens the
deployment (settings, Dagster instance, registry, asset store) and renders the result.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from mlops_assets.core.lineage import GIT_COMMIT_TAG
from mlops_assets.core.tracking import TAG_CODE_VERSION

if TYPE_CHECKING:
    import dagster as dg

    from mlops_assets.core.asset_store import AssetStore
    from mlops_assets.core.profiles import Settings
    from mlops_assets.core.tracking import MlflowTracking


@dataclass(frozen=True)
class ScoreTable:
    """Where a use case keeps its batch scores: one row per ``id_column`` value, partitioned by
    day, with the model that scored it in ``model_name`` / ``model_version``."""

    asset: str
    id_column: str
    what: str


# The use cases whose batch scores have one row per entity (demand's forecasts are per hour and
# respondent, with the champion per respondent: a forecast is traced with `lineage model`).
SCORE_TABLES: dict[str, ScoreTable] = {
    "fraud": ScoreTable(asset="fraud/scores", id_column="tx_id", what="transaction"),
}

# A group of more partitions of one asset than this is printed on one line (without --all).
GROUP_OVER = 3


class NotFound(LookupError):
    """The request, row or model asked for does not exist (exit code 2)."""


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """``env`` in ``os.environ`` inside the block; as it was after."""
    before = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


@dataclass
class Deployment:
    """What a lineage walk reads: the Dagster instance, the asset graph, the registry, the data."""

    settings: Settings
    instance: dg.DagsterInstance
    asset_graph: Any
    tracking: MlflowTracking
    asset_store: AssetStore

    @classmethod
    def open(cls, settings: Settings) -> Deployment:
        """The deployment of ``settings``: its instance (``DAGSTER_HOME`` as ``mlops`` sets it),
        the code location's asset graph and resources."""
        import dagster as dg

        from mlops_assets.tooling.cli import command_env

        # The instance's dagster.yaml (stack: PostgreSQL) reads the profile's variables when it
        # is opened; they are set for that moment only, so that a caller's environment (a test's
        # process) is left as it was.
        with _environ(command_env(settings)):
            instance = dg.DagsterInstance.get()
        with warnings.catch_warnings():
            # Dagster's notes about the project's own jobs (e.g. mixed backfill policies) concern
            # whoever writes them, not whoever asks for a lineage: they would lead its output.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"dagster\.")
            from mlops_assets.definitions import defs, resources_for

            asset_graph = defs.resolve_asset_graph()
        resources = resources_for(settings)
        return cls(
            settings=settings,
            instance=instance,
            asset_graph=asset_graph,
            tracking=resources["mlflow"],
            asset_store=resources["asset_store"],
        )

    def model(self, name: str, ref: str) -> dict[str, Any]:
        """The lineage of model ``name`` at ``ref`` (a version or an alias), as JSON-able values."""
        from mlops_assets.core.lineage import changed_links, model_lineage

        lineage = model_lineage(
            name,
            ref,
            tracking=self.tracking,
            asset_store=self.asset_store,
            instance=self.instance,
            asset_graph=self.asset_graph,
        )
        changed = (
            changed_links(lineage.model_materialization) if lineage.model_materialization else []
        )
        return lineage.to_dict() | {
            # What a rebuild would refuse: the sources whose data changed since they were read.
            "changed": [
                {
                    "asset_key": link.asset_key,
                    "partition": link.partition,
                    "data_version": link.data_version,
                    "current_data_version": link.current_data_version,
                }
                for link in changed
            ]
        }

    def model_or_missing(self, name: str | None, version: str | None) -> dict[str, Any]:
        """The lineage of the model that made a prediction; a missing link when the prediction
        names none or the registry no longer has it."""
        from mlops_assets.core.lineage import LineageError

        if not name or not version:
            return {"name": name, "version": version, "missing": ["the prediction names no model"]}
        try:
            return self.model(name, version)
        except LineageError as exc:
            return {"name": name, "version": version, "missing": [str(exc)]}


# --- finding the prediction ---------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A log or score row as JSON-able values, its ``*_json`` columns parsed."""
    out: dict[str, Any] = {}
    for column, value in record.items():
        if column.endswith("_json") and isinstance(value, str):
            try:
                out[column.removesuffix("_json")] = json.loads(value)
                continue
            except ValueError:
                pass
        out[column] = _plain(value)
    return out


def request_rows(deployment: Deployment, request_id: str, day: str | None) -> list[dict[str, Any]]:
    """The request log's rows of ``request_id`` (the answer, and a shadow prediction if the
    candidate scored it too), from day ``day`` or, without it, the newest day that has it."""
    import pyarrow.compute as pc

    from mlops_assets.serving.request_log import DATASET_PARTS, read_day

    root = deployment.asset_store.base
    if day is not None:
        days = [day]
    else:
        folder = root.joinpath(*DATASET_PARTS)
        entries = list(folder.iterdir()) if folder.exists() else []
        days = sorted((p.name for p in entries if p.is_dir()), reverse=True)
    for candidate in days:
        table = read_day(root, candidate)
        found = table.filter(pc.equal(table["request_id"], request_id))
        if found.num_rows:
            return [_row(r) | {"day": candidate} for r in found.to_pylist()]
    where = f"day {day}" if day else f"any of its {len(days)} day(s)"
    raise NotFound(
        f"request {request_id!r} is not in the request log ({where} under "
        f"{root.joinpath(*DATASET_PARTS)}); the API ships its log there within about a minute"
    )


def score_row(deployment: Deployment, use_case: str, row_id: str, day: str) -> dict[str, Any]:
    """The batch score of ``row_id`` on ``day`` in ``use_case``'s score table."""
    import dagster as dg
    import pyarrow.compute as pc

    from mlops_assets.core.storage import read_parquet

    table_of = SCORE_TABLES.get(use_case)
    if table_of is None:
        raise NotFound(
            f"use case {use_case!r} has no batch scores per id (those that do: "
            f"{', '.join(SCORE_TABLES)}); trace its models with `mlops lineage model NAME@champion`"
        )
    path = deployment.asset_store.path(dg.AssetKey.from_user_string(table_of.asset), day)
    if not path.exists():
        raise NotFound(f"{table_of.asset} has no partition {day} ({path})")
    table = read_parquet(path)
    ids = pc.cast(table[table_of.id_column], "string")
    found = table.filter(pc.equal(ids, str(row_id)))
    if not found.num_rows:
        raise NotFound(f"{table_of.what} {row_id} is not in {table_of.asset} partition {day}")
    return _row(found.to_pylist()[0])


def parse_model_ref(text: str) -> tuple[str, str]:
    """``name@alias`` or ``name@version`` (``name@3``, ``name@v3``) as (name, reference)."""
    name, sep, ref = text.rpartition("@")
    if not sep or not name or not ref:
        raise NotFound(
            f"{text!r}: name the model as NAME@ALIAS or NAME@VERSION (fraud_classifier@champion)"
        )
    return name, ref


# --- the three questions --------------------------------------------------------------------------


def request_lineage(deployment: Deployment, request_id: str, day: str | None) -> dict[str, Any]:
    """A request the API answered: its log rows and the lineage of each model that scored it."""
    rows = request_rows(deployment, request_id, day)
    models = _models(deployment, rows)
    return {"kind": "request", "predictions": rows, "materialization": None, "models": models}


def score_lineage(deployment: Deployment, use_case: str, row_id: str, day: str) -> dict[str, Any]:
    """A batch score: its row, the materialization of its partition with the chain above it,
    and the lineage of the model version that scored it."""
    import dagster as dg

    from mlops_assets.core.lineage import content_versions, manifest_reads, upstream

    row = score_row(deployment, use_case, row_id, day)
    key = dg.AssetKey.from_user_string(SCORE_TABLES[use_case].asset)
    # The latest materialization of the day's scores is the one that wrote the row read above.
    materialization = upstream(
        deployment.instance,
        deployment.asset_graph,
        key,
        day,
        current_version=content_versions(deployment.asset_store),
        reads_of=manifest_reads(deployment.asset_store, deployment.asset_graph),
    )
    return {
        "kind": "score",
        "predictions": [row | {"use_case": use_case, "day": day}],
        "materialization": materialization.to_dict(),
        "models": _models(deployment, [row]),
    }


def model_lineage_of(deployment: Deployment, ref: str) -> dict[str, Any]:
    """A registered model version (``NAME@ALIAS`` or ``NAME@VERSION``)."""
    from mlops_assets.core.lineage import LineageError

    name, version = parse_model_ref(ref)
    try:
        model = deployment.model(name, version)
    except LineageError as exc:
        raise NotFound(str(exc)) from None
    return {"kind": "model", "predictions": [], "materialization": None, "models": [model]}


def _models(deployment: Deployment, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        ident = (row.get("model_name"), row.get("model_version"))
        if ident not in seen:
            seen[ident] = deployment.model_or_missing(*ident)
    return list(seen.values())


# --- rendering ------------------------------------------------------------------------------------


def _short(value: str | None, width: int = 12) -> str:
    return "none" if value is None else value[:width]


def _link_text(link: Mapping[str, Any]) -> str:
    """One link: asset, partition, the data version read, the run that made it, what is wrong."""
    parts = [link["asset_key"]]
    if link["partition"] is not None:
        parts.append(link["partition"])
    parts.append(f"data {_short(link['data_version'])}")
    if link["run_id"]:
        parts.append(f"run {link['run_id'][:8]}")
    if link.get("code_version"):
        parts.append(f"code {link['code_version'][:8]}")
    text = "  ".join(parts)
    if link["changed"]:
        text += f"  CHANGED since: now {_short(link['current_data_version'])}"
    if link["missing"]:
        text += f"  MISSING: {link['missing']}"
    return text


def _group_text(links: Sequence[Mapping[str, Any]]) -> str:
    """Several partitions of one asset on one line: their range, versions and runs."""
    partitions = sorted(str(link["partition"]) for link in links)
    versions = {link["data_version"] for link in links}
    runs: dict[str, int] = {}
    for link in links:
        if link["run_id"]:
            runs[link["run_id"][:8]] = runs.get(link["run_id"][:8], 0) + 1
    shown_runs = ", ".join(f"{run} ({n})" if n > 1 else run for run, n in sorted(runs.items()))
    changed = sum(1 for link in links if link["changed"])
    missing = sum(1 for link in links if link["missing"])
    status = "unchanged" if not changed else f"{changed} CHANGED"
    if missing:
        status += f", {missing} MISSING"
    return (
        f"{links[0]['asset_key']}  {len(links)} partitions {partitions[0]} .. {partitions[-1]}  "
        f"data: {len(versions)} version(s)  runs: {shown_runs or 'none'}  {status}"
    )


def _tree(links: Sequence[Mapping[str, Any]], prefix: str, show_all: bool, seen: set) -> list[str]:
    """The links (siblings) and their parents as tree lines; partitions of one asset grouped."""
    by_asset: dict[str, list[Mapping[str, Any]]] = {}
    for link in links:
        by_asset.setdefault(link["asset_key"], []).append(link)
    entries: list[tuple[str, Sequence[Mapping[str, Any]], list[Mapping[str, Any]]]] = []
    for group in by_asset.values():
        if show_all or len(group) <= GROUP_OVER:
            entries += [(_link_text(link), [link], []) for link in group]
        else:
            # Named one by one inside the group: a changed or missing partition is never hidden.
            odd = [link for link in group if link["changed"] or link["missing"]]
            entries.append((_group_text(group), group, odd))
    lines: list[str] = []
    for i, (text, members, odd) in enumerate(entries):
        last = i == len(entries) - 1
        lines.append(prefix + ("└─ " if last else "├─ ") + text)
        inner = prefix + ("   " if last else "│  ")
        lines += [inner + "   ! " + _link_text(link) for link in odd]
        parents: list[Mapping[str, Any]] = []
        repeated = 0
        for member in members:
            ident = (member["asset_key"], member["partition"], member["storage_id"])
            if member["storage_id"] is not None and ident in seen:
                repeated += bool(member["parents"])
                continue
            seen.add(ident)
            parents += member["parents"]
        if repeated and not parents:
            lines.append(inner + "   (its inputs are shown above)")
        lines += _tree(parents, inner, show_all, seen)
    return lines


def _fmt_metric(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _model_lines(model: Mapping[str, Any], show_all: bool, seen: set) -> list[str]:
    name, version = model.get("name"), model.get("version")
    if "run_id" not in model:  # the prediction's model could not be found
        return [f"model {name} v{version}", *(f"  MISSING: {m}" for m in model["missing"])]
    aliases = ", ".join(model["aliases"]) or "none"
    lines = [f"model {name} v{version}  (aliases now: {aliases})"]
    history = model["alias_history"]
    if history:
        lines.append(f"  champion history ({len(history)} move(s), oldest first):")
        for entry in history:
            previous = entry.get("previous")
            move = (
                f"v{previous} -> v{entry['version']}"
                if previous
                else f"v{entry['version']} (first)"
            )
            reason = entry.get("reason") or ""
            lines.append(
                f"    {entry.get('at', '?')}  {entry.get('kind', '?'):<9}  {move}  {reason}".rstrip()
            )
    else:
        lines.append("  champion history: none recorded")
    lines.append(f"  MLflow run {model['run_id']}")
    params = model["params"]
    if params:
        lines += _wrapped("    params: ", [f"{k}={v}" for k, v in sorted(params.items())])
    metrics = model["metrics"]
    if metrics:
        lines += _wrapped(
            "    metrics: ", [f"{k}={_fmt_metric(v)}" for k, v in sorted(metrics.items())]
        )
    tags = model["tags"]
    code = [
        f"{label} {tags[tag]}"
        for tag, label in ((TAG_CODE_VERSION, "asset"), (GIT_COMMIT_TAG, "git commit"))
        if tags.get(tag)
    ]
    lines.append(f"    code version: {', '.join(code) or 'none recorded'}")
    training = model["training_set"]
    if training:
        lines.append(
            f"  training set {training['asset_key']} dt={training.get('dt')}/run_id="
            f"{training.get('run_id')}  {training.get('row_count')} rows"
        )
        lines.append(f"    data version: {training.get('data_version')}")
        lines.append(f"    path: {training['path']}")
        days = training.get("days")
        if days:
            lines.append(f"    days read: {days[0]} .. {days[-1]} ({len(days)})")
        sources = training.get("source_data_versions") or {}
        for source, versions in sorted(sources.items()):
            if show_all or len(versions) <= GROUP_OVER:
                shown = ", ".join(f"{p} {_short(v)}" for p, v in sorted(versions.items()))
            else:
                shown = f"{len(versions)} partitions (--all lists each)"
            lines.append(f"    {source}: {shown}")
    for missing in model.get("missing") or []:
        lines.append(f"  MISSING: {missing}")
    chain = model["model_materialization"]
    if chain:
        lines.append("  materializations (data version as its reader recorded it, Dagster run):")
        lines += _tree([chain], "  ", show_all, seen)
        changed = model.get("changed") or []
        if changed:
            lines.append(f"  changed since read ({len(changed)}):")
            lines += [
                f"    {c['asset_key']} {c['partition'] or ''}  {_short(c['data_version'])} -> "
                f"{_short(c['current_data_version'])}"
                for c in changed
            ]
        else:
            lines.append("  changed since read: nothing")
    return lines


def render_text(result: Mapping[str, Any], show_all: bool = False) -> str:
    """The lineage as a compact tree (``--all``: every partition on its own line)."""
    lines: list[str] = []
    seen: set = set()
    for row in result["predictions"]:
        role = row.get("role") or ("served" if result["kind"] == "request" else None)
        if result["kind"] == "request":
            lines.append(
                f"request {row['request_id']}  {row.get('ts')}  {row.get('use_case')}  "
                f"status {row.get('status')}  prediction {_fmt_metric(row.get('prediction'))}  "
                f"by {row.get('model_name')} v{row.get('model_version')} "
                f"({row.get('alias') or 'champion'}, {role})"
            )
            if row.get("request") is not None:
                lines.append("  request: " + _clip(json.dumps(row["request"], sort_keys=True)))
            if row.get("features") is not None:
                lines.append("  features: " + _clip(json.dumps(row["features"], sort_keys=True)))
        else:
            table = SCORE_TABLES[row["use_case"]]
            value = {
                k: _fmt_metric(v)
                for k, v in row.items()
                if k not in (table.id_column, "model_name", "model_version", "use_case", "day")
            }
            lines.append(
                f"{table.what} {row[table.id_column]} on {row['day']}: "
                + ", ".join(f"{k} {v}" for k, v in value.items())
                + f"  by {row.get('model_name')} v{row.get('model_version')}"
            )
    if result.get("materialization"):
        lines.append("  scored in:")
        lines += _tree([result["materialization"]], "  ", show_all, seen)
    for model in result["models"]:
        lines += _model_lines(model, show_all, seen)
    return "\n".join(lines)


def _wrapped(head: str, items: Sequence[str], width: int = 100) -> list[str]:
    """``items`` after ``head``, comma-separated, wrapped under it at ``width`` characters."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = " " * len(head)
        line += piece + " "
    lines.append(line.rstrip())
    return lines


def _clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the command ----------------------------------------------------------------------------------


def lineage_command(
    settings: Settings,
    what: str,
    args: Sequence[str],
    *,
    day: str | None = None,
    as_json: bool = False,
    show_all: bool = False,
) -> int:
    """Run ``mlops lineage WHAT ARGS``; returns the exit code: 0 printed, 2 nothing of that name
    (or a wrong command line), 1 the registry or the instance could not be read."""
    import dagster as dg

    try:
        if what == "request":
            (request_id,) = _args(args, 1, "request REQUEST_ID")
            deployment = Deployment.open(settings)
            result = request_lineage(deployment, request_id, day)
        elif what == "score":
            use_case, row_id = _args(args, 2, "score USE_CASE ID --day D")
            if day is None:
                raise NotFound("score needs --day D: the day (partition) of the score")
            deployment = Deployment.open(settings)
            result = score_lineage(deployment, use_case, row_id, day)
        else:
            (ref,) = _args(args, 1, "model NAME@ALIAS|VERSION")
            deployment = Deployment.open(settings)
            result = model_lineage_of(deployment, ref)
    except NotFound as exc:
        print(f"mlops lineage: {exc}", file=sys.stderr)
        return 2
    except dg.Failure as exc:  # TrackingError: the registry could not be read
        print(f"mlops lineage: {exc.description}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2, sort_keys=True, default=str) if as_json else None
    try:
        print(text if text is not None else render_text(result, show_all=show_all), flush=True)
    except BrokenPipeError:
        # Piped into `head` or a pager that quit: what it wanted was printed. Python's own advice:
        # point stdout at devnull, so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _args(args: Sequence[str], count: int, usage: str) -> list[str]:
    """The ``count`` words after ``mlops lineage WHAT``; a usage line when they are not."""
    if len(args) != count:
        raise NotFound(f"usage: mlops lineage {usage}")
    return list(args)
