"""Code versions derived from the source: a change in an asset's code, or in the project code it
calls, makes a new version and Dagster marks the asset and its descendants stale; nothing
changed, nothing is stale."""

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import (
    CachingStaleStatusResolver,
    StaleCauseCategory,
    StaleStatus,
)
from dagster._core.loader import LoadingContextForTest

from mlops_assets.core.code_versions import CodeVersions, with_code_versions

HELPERS = '''
def scale(x):
    """Used by b only, through the module: `helpers.scale`."""
    return x * 2


def offset(x):
    return x + 1


def unrelated():
    return "nobody calls this"
'''

LAZY = """
from PKG.helpers import offset

LIMIT = 100


def shift(x):
    return min(offset(x) - 3, LIMIT)
"""

ASSETS = """
import dagster as dg

from PKG import helpers
from PKG.helpers import offset


class CConfig(dg.Config):
    factor: int = 3


@dg.asset
def a() -> int:
    return offset(1)


@dg.asset
def b(a: int) -> int:
    return helpers.scale(a)


@dg.asset
def c(config: CConfig, b: int) -> int:
    # Imported here, as the project's assets do, to keep loading the code location cheap.
    from PKG import lazy

    return lazy.shift(b) * config.factor


@dg.asset(code_version="v7")
def pinned() -> int:
    return helpers.scale(7)


def make_threshold_asset(name, threshold):
    @dg.asset(name=name)
    def above(a: int) -> bool:
        return a > threshold

    return above
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A throwaway package of three assets a -> b -> c and their helpers, importable, under a
    name of its own (modules of other tests' packages never mix in)."""
    name = f"codeversions_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "helpers.py").write_text(HELPERS)
    (folder / "lazy.py").write_text(LAZY.replace("PKG", name))
    (folder / "assets.py").write_text(ASSETS.replace("PKG", name))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, folder
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _versions(name: str) -> dict[str, str | None]:
    """Each asset's version, computed by a fresh reader of the files, as a load would."""
    assets = importlib.reload(importlib.import_module(f"{name}.assets"))
    versions = CodeVersions(name)
    return {key: versions.of_asset(getattr(assets, key)) for key in ("a", "b", "c")} | {
        "factory": versions.of_functions(assets.make_threshold_asset)
    }


def test_a_version_changes_with_the_code_the_asset_reaches_and_only_with_it(package) -> None:
    name, folder = package
    before = _versions(name)
    assert all(isinstance(v, str) and len(v) == 20 for v in before.values())
    assert len(set(before.values())) == 4
    assert _versions(name) == before  # read again, nothing changed

    _edit(folder / "helpers.py", 'return "nobody calls this"', 'return "still nobody"')
    assert _versions(name) == before

    # Through a module attribute (`helpers.scale`): b only.
    _edit(folder / "helpers.py", "return x * 2", "return x * 3")
    after_scale = _versions(name)
    assert after_scale["b"] != before["b"]
    assert {k: after_scale[k] for k in ("a", "c")} == {k: before[k] for k in ("a", "c")}

    # Imported inside c's body, then a constant of that module: c only.
    _edit(folder / "lazy.py", "offset(x) - 3", "offset(x) - 4")
    after_shift = _versions(name)
    assert after_shift["c"] != after_scale["c"]
    assert after_shift["a"] == before["a"] and after_shift["b"] == after_scale["b"]
    _edit(folder / "lazy.py", "LIMIT = 100", "LIMIT = 50")
    after_limit = _versions(name)
    assert after_limit["c"] != after_shift["c"]

    # A function imported by name, reached directly (a) and through lazy.shift (c); b does not
    # call it.
    _edit(folder / "helpers.py", "return x + 1", "return x + 2")
    after_offset = _versions(name)
    assert after_offset["a"] != before["a"] and after_offset["c"] != after_limit["c"]
    assert after_offset["b"] == after_limit["b"]

    # A comment changes nothing; the default of c's config does.
    _edit(
        folder / "assets.py", "    factor: int = 3", "    # the usual factor\n    factor: int = 3"
    )
    assert _versions(name) == after_offset
    _edit(folder / "assets.py", "factor: int = 3", "factor: int = 4")
    after_config = _versions(name)
    assert after_config["c"] != after_offset["c"]
    assert {k: after_config[k] for k in ("a", "b")} == {k: after_offset[k] for k in ("a", "b")}


def test_a_function_made_by_a_factory_is_versioned_with_what_it_holds(package) -> None:
    name, _ = package
    assets = importlib.import_module(f"{name}.assets")
    versions = CodeVersions(name)
    strict, strict_again, loose = (
        versions.of_asset(assets.make_threshold_asset(n, t))
        for n, t in (("strict", 5), ("strict_again", 5), ("loose", 1))
    )
    assert strict == strict_again != loose


def _statuses(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> dict[str, tuple[StaleStatus, set[StaleCauseCategory]]]:
    """Dagster's own verdict on each asset, as the UI shows it: status and causes."""
    resolver = CachingStaleStatusResolver(
        instance, defs.resolve_asset_graph(), LoadingContextForTest(instance)
    )
    return {
        key: (
            resolver.get_status(dg.AssetKey(key)),
            {cause.category for cause in resolver.get_stale_causes(dg.AssetKey(key))},
        )
        for key in ("a", "b", "c")
    }


def test_dagster_marks_the_changed_asset_stale_then_its_descendants(package) -> None:
    """Dagster 1.13's staleness: an asset whose code version changed is stale (CODE); its
    children become stale (DATA) once it is materialized again with a new data version, which a
    new code version gives it. Unchanged code: nothing is stale."""
    name, folder = package

    def load() -> dg.Definitions:
        assets = importlib.import_module(f"{name}.assets")
        defs = dg.Definitions(assets=[assets.a, assets.b, assets.c])
        return with_code_versions(defs, package=name)

    fresh = (StaleStatus.FRESH, set())
    # One instance outlives the reloads: its event log holds the code and data versions
    # recorded with each materialization, which the rebuilt definitions are compared with.
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize(load().assets, instance=instance).success
        assert _statuses(load(), instance) == {"a": fresh, "b": fresh, "c": fresh}

        _edit(folder / "helpers.py", "return x * 2", "return x * 3")
        importlib.reload(importlib.import_module(f"{name}.helpers"))
        importlib.reload(importlib.import_module(f"{name}.assets"))
        edited = load()
        assert _statuses(edited, instance) == {
            "a": fresh,
            "b": (StaleStatus.STALE, {StaleCauseCategory.CODE}),
            "c": fresh,
        }

        assert dg.materialize(edited.assets, instance=instance, selection=["b"]).success
        assert _statuses(load(), instance) == {
            "a": fresh,
            "b": fresh,
            "c": (StaleStatus.STALE, {StaleCauseCategory.DATA}),
        }


def test_every_asset_of_the_code_location_has_the_same_version_in_every_process(
    local_home: Path, tmp_path: Path
) -> None:
    import mlops_assets.definitions as definitions

    graph = definitions.defs.resolve_asset_graph()
    loaded = {
        key.to_user_string(): graph.get(key).code_version for key in graph.materializable_asset_keys
    }
    assert len(loaded) >= 30 and all(loaded.values())
    # Computed again here, without the cache the load used.
    versions = CodeVersions()
    computed = {
        key.to_user_string(): versions.of_asset(assets_def)
        for assets_def in definitions.defs.assets
        if isinstance(assets_def, dg.AssetsDefinition)
        for key in assets_def.keys
    }
    assert computed == loaded
    # A fresh process, another hash seed, an empty cache: the same versions.
    code = (
        "import json, mlops_assets.definitions as d; g = d.defs.resolve_asset_graph(); "
        "print(json.dumps({k.to_user_string(): g.get(k).code_version "
        "for k in g.materializable_asset_keys}))"
    )
    env = {
        **os.environ,
        "MLOPS_HOME": str(local_home),
        "PYTHONHASHSEED": "12345",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == loaded
    # ... which that process kept for the next one.
    assert list((tmp_path / "cache" / "mlops_assets" / "code").glob("mlops_assets-*.json"))


def test_a_declared_code_version_is_kept(package) -> None:
    name, _ = package
    assets = importlib.import_module(f"{name}.assets")
    defs = with_code_versions(dg.Definitions(assets=[assets.a, assets.pinned]), package=name)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("pinned")).code_version == "v7"
    assert graph.get(dg.AssetKey("a")).code_version == CodeVersions(name).of_asset(assets.a)
