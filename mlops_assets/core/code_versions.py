"""Code versions of the assets, derived from their source: no hand-maintained strings.

An asset's code version is a short hash of the source of its compute function and of every
function, class and module-level constant of the project that it reaches: names it uses
(``publish``, ``CASE``), attributes of project modules (``training_sets.build``), modules it
imports inside its body (``from mlops_assets.fraud import features``), its ``dg.Config`` class,
and, for a function made by a factory, the values it closes over; then, transitively, what those
reach. Dagster compares the version recorded with each materialization with the current one, so
after a change to any of that code the UI marks the asset, and everything downstream of it,
stale; unchanged code with unchanged inputs stays up to date.

What is not hashed, and why:

* library code (Dagster, Polars, scikit-learn...): a library upgrade is the lock file's business;
* Dagster resources (``AssetStore``, ``MlflowTracking``, ``FeastFeatureStore``, IO managers): they
  are where the deployment keeps data and runs, chosen per profile, not what an asset computes;
  hashing them would mark the whole graph stale after any storage fix;
* other Dagster definitions an asset names (an upstream asset in ``deps=[...]``): those are edges
  of the graph, whose changes reach the asset through the data versions of its inputs;
* comments and blank lines: they never change what the code does.

The source is read as text, never imported: much of the project's logic lives in modules that
the assets import inside their bodies so that loading the code location stays cheap
(``mlops_assets.definitions`` is imported by every Dagster process), and hashing must not undo
that. Each module file is read and scanned once per :class:`CodeVersions`: its top-level
statements are cut where a line starts in column 0 (the layout ``ruff format`` keeps), and the
names each statement uses are its words once comments and string literals are blanked. Parsing
the files with :mod:`ast` instead cost ~0.9 s, twice what the whole code location adds to a bare
``import dagster``; this reading costs ~0.25 s of CPU, paid once per source: the versions are kept
in the user's cache under a digest of every file of the package (:class:`CodeVersions`), and a
load that finds them there spends ~15 ms.
Reading words errs on the side of a dependency too many (a local variable spelled like a
module-level function), never one too few, except for code reached only through a value computed
at run time.

The hash depends only on module names, qualified names and source text: not on file paths, line
numbers, object ids or ``PYTHONHASHSEED``, so every process and machine computes the same version
from the same code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FunctionType
from typing import Any

import dagster as dg

PROJECT = "mlops_assets"
# Hex characters of the sha256 kept: 80 bits, plenty to tell the versions of an asset apart.
DIGEST_CHARS = 20

# One scan finds comments and string literals, so that a '#' inside a string or a quote inside a
# comment is read for what it is (each literal in the "unrolled loop" form: no backtracking).
_LITERAL = re.compile(
    r"#[^\n]*"
    r"|'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''"
    r'|"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""'
    r"|'[^'\\\n]*(?:\\.[^'\\\n]*)*'"
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
)
# The prefix of an f-string, just before its quote: its {expressions} are code.
_F_PREFIX = re.compile(r"(?<!\w)(?:[rR]?[fF]|[fF][rR])$")
_WORD = re.compile(r"[A-Za-z_]\w*")
# A name and the attributes read from it: `publish`, `training_sets.build`.
_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_][\w.]*")
_DEF = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)", re.M)
_ASSIGN = re.compile(r"([A-Za-z_][\w\s,]*?)\s*(?::[^=\n]*)?(?:[-+*/|&%@^]|//|\*\*|>>|<<)?=(?!=)")
_FROM_IMPORT = re.compile(r"\bfrom\s+([\w.]+)\s+import\s+(\([^)]*\)|[^\n;]*)")
_IMPORT = re.compile(r"^[ \t]*import\s+([^\n;]*)", re.M)
# Lines in column 0 that continue a statement rather than start one.
_CONTINUATION = ("else", "elif", "except", "finally", ")", "]", "}")

# What a name stands for: ("mod", module); ("sym", module, name), a top-level statement of a
# module; ("from", module, name), an import not resolved yet.
Target = tuple[str, ...]
# A node of the graph of code: ("fn", function), ("sym", module, name), ("value", key, repr).
Node = tuple[Any, ...]


@dataclass
class _Block:
    """One top-level statement of a module (a decorated def or class, an assignment, an
    import), or the lines of a nested function: the text hashed and the names it reads."""

    first: int  # its first line in the module (1-based): where a function object starts
    code: str  # comments and blank lines removed: what the hash covers
    names_text: str  # the same lines with string literals blanked: where names are read
    imports: dict[str, Target | None] = field(default_factory=dict)

    def references(self) -> set[str]:
        """The names the statement reads, with the attributes read from them: `publish`,
        `training_sets.build`.

        Every word counts, locals and keyword-argument names included: one spelled like a
        module-level name adds a dependency too many (a spurious "stale"), the safe side;
        telling scopes apart would take a parse of every file."""
        return set(_DOTTED.findall(self.names_text))


@dataclass
class _Module:
    """A project module read as text: its lines (for hashing, and with literals blanked for
    reading names), its top-level statements by the names they define, and its imports."""

    name: str
    code_lines: list[str]
    names_lines: list[str]
    blocks: dict[str, list[_Block]] = field(default_factory=dict)
    imports: dict[str, Target | None] = field(default_factory=dict)

    @functools.cached_property
    def names(self) -> set[str]:
        """Every top-level name: defined here or imported."""
        return set(self.blocks) | set(self.imports)

    def block(self, first: int, last: int) -> _Block:
        """The statement on lines ``first``..``last`` (1-based, inclusive)."""
        lines = self.code_lines[first - 1 : last]
        code = "\n".join(line.rstrip() for line in lines if line.strip())
        return _Block(first, code, "\n".join(self.names_lines[first - 1 : last]))


class CodeVersions:
    """The code versions of the functions of one package (``mlops_assets`` by default), each of
    its files read at most once: make one per load of the definitions, so that an edited file
    is read again on the next load.

    With a ``cache_dir``, versions computed for the package's current source (all its files,
    by content) are kept there and reused by the next process that loads the same source:
    reading the files costs a few milliseconds, analysing them a few hundred, and every Dagster
    process (webserver, daemon, each run's steps) loads the definitions. A cache that cannot be
    read or written is ignored.
    """

    def __init__(self, package: str = PROJECT, *, cache_dir: Path | None = None) -> None:
        self.package = package
        self.root = Path(sys.modules[package].__file__ or "").resolve().parent
        self.cache_dir = cache_dir
        self._cache: dict[str, str] | None = None
        self._cache_path: Path | None = None
        # Module name -> source, when the cache read every file (see `_cache_file`).
        self._sources: dict[str, str] | None = None
        self._cache_changed = False
        self._modules: dict[str, _Module | None] = {}
        self._paths: dict[str, Path | None] = {}
        self._nodes: dict[Node, tuple[str | None, str | None, list[Node]]] = {}
        # The functions memoized in `_nodes` by id, kept alive: a function freed after its version
        # was taken (an asset made, versioned and dropped) could hand its id to the next one, which
        # would then be read from the memo as the first (a factory's asset of other settings).
        self._memoized_functions: list[Any] = []
        self._resolved: dict[tuple[str, str, tuple[str, ...]], Target | None] = {}

    def of_functions(self, *functions: Callable[..., Any]) -> str | None:
        """The code version of a computation made of ``functions`` (an op's compute function,
        or the ops of a graph); ``None`` when none of them is the package's."""
        roots: list[Node] = [
            ("fn", fn) for fn in map(_unwrap, functions) if self._is_project_object(fn)
        ]
        if not roots:
            return None
        if self.cache_dir is None:
            return self._version(roots)
        cache = self._load_cache()
        key = "|".join(sorted(self._identity(fn) for _, fn in roots))
        if key not in cache:
            cache[key] = self._version(roots)
            self._cache_changed = True
        return cache[key]

    def _version(self, roots: list[Node]) -> str:
        """The digest of every statement reached from ``roots``, by key (never by path or
        line), in sorted order."""
        entries: dict[str, str] = {}
        stack, seen = roots, set()
        while stack:
            node = stack.pop()
            if _node_id(node) in seen:
                continue
            seen.add(_node_id(node))
            key, digest, children = self._expand(node)
            if key is not None and digest is not None:
                entries[key] = digest
            stack.extend(children)
        lines = "".join(f"{key}\0{entries[key]}\n" for key in sorted(entries))
        return hashlib.sha256(lines.encode()).hexdigest()[:DIGEST_CHARS]

    def of_asset(self, assets_def: dg.AssetsDefinition) -> str | None:
        """The code version of ``assets_def``'s computation, shared by every asset it
        materializes; ``None`` for one without a computation (external) or made by a library."""
        if not assets_def.is_executable:
            return None
        node_def = assets_def.node_def
        ops = (
            list(node_def.iterate_op_defs())
            if isinstance(node_def, dg.GraphDefinition)
            else [node_def]
        )
        return self.of_functions(
            *(getattr(op.compute_fn, "decorated_fn", op.compute_fn) for op in ops)
        )

    # -- the cache ------------------------------------------------------------------------------

    def _cache_file(self) -> Path:
        """The cache of this exact source, named by a digest of every file of the package. The
        files are read here once, and analysed from these very bytes: versions are never kept
        under the name of a source that was edited while they were computed."""
        if self._cache_path is None:
            digest, self._sources = hashlib.sha256(), {}
            for folder, dirs, files in os.walk(self.root):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(f for f in files if f.endswith(".py")):
                    relative = Path(folder, name).relative_to(self.root)
                    source = Path(folder, name).read_bytes()
                    digest.update(relative.as_posix().encode() + b"\0" + source + b"\0")
                    parts = [self.package, *relative.with_suffix("").parts]
                    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                    self._sources[module] = source.decode("utf-8")
            file_name = f"{self.package}-{digest.hexdigest()[:DIGEST_CHARS]}.json"
            self._cache_path = Path(self.cache_dir or ".") / file_name
        return self._cache_path

    def _load_cache(self) -> dict[str, str]:
        if self._cache is None:
            try:
                loaded = json.loads(self._cache_file().read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = None
            self._cache = loaded if isinstance(loaded, dict) else {}
        return self._cache

    def save(self) -> None:
        """Keep the versions computed by this instance for the next process (with a
        ``cache_dir``): written whole, then renamed, so that a reader never sees half a file;
        the 16 most recent sources are kept."""
        if self.cache_dir is None or not self._cache_changed or self._cache is None:
            return
        try:
            target = self._cache_file()
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=target.parent, suffix=".tmp", delete=False, encoding="utf-8"
            ) as out:
                json.dump(self._cache, out, sort_keys=True)
            os.replace(out.name, target)
            older = sorted(
                target.parent.glob(f"{self.package}-*.json"), key=lambda p: p.stat().st_mtime
            )
            for stale in older[:-16]:
                stale.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only home: the next process computes the versions again
        self._cache_changed = False

    # -- the graph of code ----------------------------------------------------------------------

    def _expand(self, node: Node) -> tuple[str | None, str | None, list[Node]]:
        """A node's key in the hash, the digest of its text, and the nodes it reaches."""
        node_id = _node_id(node)
        if node_id not in self._nodes:
            if node[0] == "fn":
                self._nodes[node_id] = self._expand_function(node[1])
                self._memoized_functions.append(node[1])
            elif node[0] == "sym":
                self._nodes[node_id] = self._expand_symbol(node[1], node[2])
            else:  # ("value", key, repr): a constant a factory's function closes over
                self._nodes[node_id] = (node[1], _digest(node[2]), [])
        return self._nodes[node_id]

    def _expand_symbol(self, module_name: str, name: str) -> tuple[str, str | None, list[Node]]:
        module = self._module(module_name)
        blocks = module.blocks.get(name, []) if module else []
        children = [child for block in blocks for child in self._children(module_name, block)]
        text = "\n\n".join(block.code for block in blocks)
        return f"{module_name}:{name}", (_digest(text) if blocks else None), children

    def _expand_function(self, fn: Any) -> tuple[str | None, str | None, list[Node]]:
        module_name, qualname = fn.__module__, fn.__qualname__
        module = self._module(module_name)
        code: CodeType | None = getattr(fn, "__code__", None)
        if module is None or code is None:
            return None, None, []
        if "." not in qualname and qualname in module.blocks:
            # A top-level function: its statement, decorators included, like any other name
            # (found by name, not line: the file may have been edited since it was imported).
            return None, None, [("sym", module_name, qualname)]
        # A function made by a factory (or a method): its own lines, and what it closes over.
        block = module.block(code.co_firstlineno, _last_line(code))
        if "import" in block.names_text:
            block.imports = _imports(block.names_text, self.package, self._is_module)
        children = self._children(module_name, block, skip=set(code.co_freevars))
        return f"{module_name}:{qualname}", _digest(block.code), children + self._held(fn)

    def _held(self, fn: Any) -> list[Node]:
        """What a function made by a factory closes over, and its default values."""
        key, code = f"{fn.__module__}:{fn.__qualname__}", fn.__code__
        nodes: list[Node] = []
        for var, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
            nodes += self._value_nodes(f"{key}:{var}", _cell_value(cell))
        defaults = [*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()]
        for i, default in enumerate(defaults):
            nodes += self._value_nodes(f"{key}:default{i}", default)
        return nodes

    def _identity(self, fn: Any, depth: int = 0) -> str:
        """What the files do not say about a computation: which function it is (and where),
        and, for one made by a factory, what it holds. With the package's files, this decides
        the version: the key of the cache."""
        code = getattr(fn, "__code__", None)
        if code is None:
            return f"{fn.__module__}:{fn.__qualname__}"
        identity = f"{fn.__module__}:{fn.__qualname__}:{code.co_firstlineno}"
        if "<locals>" not in fn.__qualname__ or depth > 3:
            return identity
        held = [
            self._identity(node[1], depth + 1) if node[0] == "fn" else repr(node)
            for node in self._held(fn)
        ]
        return f"{identity}({','.join(held)})"

    def _children(self, module_name: str, block: _Block, skip: set[str] | None = None) -> list:
        """The project statements ``block`` reads, Dagster definitions and resources aside."""
        module = self._module(module_name)
        known = (module.names if module else set()) | block.imports.keys()
        children: set[Node] = set()
        for reference in block.references():
            name, *chain = reference.split(".")
            if name not in known or (skip and name in skip):
                continue  # a local, a builtin, a library's name
            if name in block.imports:
                target = self._follow(self._bound(block.imports[name]), chain)
                if target is not None and self._is_definition(target[1], target[2]):
                    target = None
            else:
                target = self._resolve(module_name, name, tuple(chain))
            if target is not None:
                children.add(target)
        return sorted(children)

    def _resolve(self, module_name: str, name: str, chain: tuple[str, ...]) -> Target | None:
        """The statement that ``name.chain`` in ``module_name`` names, if the project's and
        not a Dagster definition or resource (memoized: modules share most names)."""
        key = (module_name, name, chain)
        if key not in self._resolved:
            target = self._follow(self._lookup(module_name, name), chain)
            if target is not None and self._is_definition(target[1], target[2]):
                target = None
            self._resolved[key] = target
        return self._resolved[key]

    def _value_nodes(self, key: str, value: Any, depth: int = 0) -> list[Node]:
        """The nodes of a value a factory's function closes over (or a default): project
        functions and classes by their code, plain constants by their repr."""
        if depth > 3:
            return []
        if isinstance(value, functools.partial):
            nodes = self._value_nodes(f"{key}.func", value.func, depth + 1)
            for i, arg in enumerate([*value.args, *value.keywords.values()]):
                nodes += self._value_nodes(f"{key}.arg{i}", arg, depth + 1)
            return nodes
        if isinstance(value, FunctionType):
            value = _unwrap(value)
            return [("fn", value)] if self._is_project_object(value) else []
        if isinstance(value, type):
            name = value.__qualname__.split(".")[0]
            if not self._is_project_object(value) or self._is_definition(value.__module__, name):
                return []
            return [("sym", value.__module__, name)]
        if value is None or isinstance(value, str | bytes | int | float | bool):
            return [("value", key, repr(value))]
        if isinstance(value, set | frozenset):
            return [("value", key, repr(sorted(map(repr, value))))]
        if isinstance(value, tuple | list):
            items = list(enumerate(value))
        elif isinstance(value, Mapping):
            items = sorted(value.items(), key=lambda item: repr(item[0]))
        elif self._is_project_object(type(value)) and not _is_dagster_definition(value):
            # An object of the project's: its class, and what it holds.
            nodes = self._value_nodes(key, type(value), depth + 1)
            for attr, held in sorted(getattr(value, "__dict__", {}).items()):
                nodes += self._value_nodes(f"{key}.{attr}", held, depth + 1)
            return nodes
        else:
            return []
        return [n for k, v in items for n in self._value_nodes(f"{key}[{k!r}]", v, depth + 1)]

    # -- names ----------------------------------------------------------------------------------

    def _lookup(self, module_name: str, name: str, depth: int = 0) -> Target | None:
        """What the top-level ``name`` of ``module_name`` stands for, re-exports followed."""
        module = self._module(module_name)
        if module is None or depth > 10:
            return None
        if name in module.blocks:
            return ("sym", module_name, name)
        if name in module.imports:
            return self._bound(module.imports[name], depth + 1)
        return None

    def _bound(self, target: Target | None, depth: int = 0) -> Target | None:
        """What an import binds: ``from m import x`` is m's ``x``, or its submodule ``m.x``."""
        if target is not None and target[0] == "from":
            return self._attribute(target[1], target[2], depth)
        return target

    def _attribute(self, module_name: str, name: str, depth: int = 0) -> Target | None:
        found = self._lookup(module_name, name, depth)
        if found is None and self._is_module(f"{module_name}.{name}"):
            return ("mod", f"{module_name}.{name}")
        return found

    def _follow(self, target: Target | None, chain: Sequence[str]) -> Target | None:
        """``target`` with the attributes of ``chain`` read from it while it is a module (an
        attribute of a function or class is part of its code already); only statements count."""
        for attr in chain:
            if target is None or target[0] != "mod":
                break
            target = self._attribute(target[1], attr)
        return target if target is not None and target[0] == "sym" else None

    def _is_definition(self, module_name: str, name: str) -> bool:
        """Whether ``module_name.name``, if loaded, is a Dagster definition or resource: an edge
        of the graph or the deployment's I/O, not code the asset runs (module docstring)."""
        module = sys.modules.get(module_name)
        return module is not None and _is_dagster_definition(getattr(module, name, None))

    # -- files ----------------------------------------------------------------------------------

    def _is_project_object(self, value: Any) -> bool:
        module = getattr(value, "__module__", None) or ""
        return module == self.package or module.startswith(self.package + ".")

    def _path(self, module_name: str) -> Path | None:
        if module_name not in self._paths:
            self._paths[module_name] = None
            if module_name == self.package or module_name.startswith(self.package + "."):
                folder = self.root.joinpath(*module_name.split(".")[1:])
                for path in (folder.with_suffix(".py"), folder / "__init__.py"):
                    if path.is_file():
                        self._paths[module_name] = path
                        break
        return self._paths[module_name]

    def _is_module(self, module_name: str) -> bool:
        return self._path(module_name) is not None

    def _module(self, module_name: str) -> _Module | None:
        if module_name not in self._modules:
            if self._sources is not None:
                source = self._sources.get(module_name)
            else:
                path = self._path(module_name)
                source = path.read_text(encoding="utf-8") if path else None
            self._modules[module_name] = self._read(module_name, source) if source else None
        return self._modules[module_name]

    def _read(self, name: str, source: str) -> _Module:
        """Cut ``source`` into its top-level statements, indexed by the names they define."""
        code, names = _strip_literals(source)
        module = _Module(name, code.split("\n"), names.split("\n"))
        starts = [
            i
            for i, line in enumerate(module.names_lines)
            if line[:1] not in ("", " ", "\t") and not line.startswith(_CONTINUATION)
        ]
        # A decorator and the def (or class) below it are one statement.
        starts = [
            start
            for j, start in enumerate(starts)
            if j == 0 or not module.names_lines[starts[j - 1]].startswith("@")
        ]
        for start, end in zip(starts, [*starts[1:], len(module.names_lines)], strict=True):
            block = module.block(start + 1, end)
            text = block.names_text
            if "import" in text:
                block.imports = _imports(text, self.package, self._is_module)
            if defined := _DEF.search(text):
                defines = {defined.group(1)}
            elif block.imports:  # imports (maybe under `if TYPE_CHECKING:` or `try:`)
                module.imports.update(block.imports)
                continue
            elif assigned := _ASSIGN.match(text):
                defines = set(_WORD.findall(assigned.group(1)))
            else:
                continue  # a call or an `if` at module level: nothing to look up by name
            for defined_name in defines:
                module.blocks.setdefault(defined_name, []).append(block)
        return module


def _imports(text: str, package: str, is_module: Callable[[str], bool]) -> dict[str, Target | None]:
    """The names the imports in ``text`` bind: to project modules and names, or to ``None`` for
    a library's (which hides any project name spelled the same)."""

    def in_package(module: str) -> bool:
        return module == package or module.startswith(package + ".")

    found: dict[str, Target | None] = {}
    for match in _FROM_IMPORT.finditer(text):
        source = match.group(1)
        for item in match.group(2).strip("()").split(","):
            parts = item.split()  # `name` or `name as alias`
            if parts:
                found[parts[-1]] = ("from", source, parts[0]) if in_package(source) else None
    for match in _IMPORT.finditer(text):
        for item in match.group(1).split(","):
            parts = item.split()  # `a.b` binds `a`; `a.b as c` binds `c` to `a.b`
            if parts:
                bound, module = (
                    (parts[-1], parts[0]) if len(parts) == 3 else (parts[0].split(".")[0],) * 2
                )
                found[bound] = ("mod", module) if in_package(module) and is_module(module) else None
    return found


def _strip_literals(source: str) -> tuple[str, str]:
    """``source`` without comments (what is hashed), and the same with string literals blanked
    too (where names are read; an f-string is kept: its expressions are code). Every line stays
    where it was."""
    code, names, last = [], [], 0
    for match in _LITERAL.finditer(source):
        start, text = match.start(), match.group(0)
        code.append(source[last:start])
        names.append(source[last:start])
        if not text.startswith("#"):
            code.append(text)
            is_f_string = _F_PREFIX.search(source, max(0, start - 2), start)
            names.append(text if is_f_string else '""' + "\n" * text.count("\n"))
        last = match.end()
    code.append(source[last:])
    names.append(source[last:])
    return "".join(code), "".join(names)


def _last_line(code: CodeType) -> int:
    """The last line holding code of ``code`` or of the functions nested in it."""
    lines = [line for _, _, line in code.co_lines() if line is not None]
    nested = [_last_line(const) for const in code.co_consts if isinstance(const, CodeType)]
    return max([code.co_firstlineno, *lines, *nested])


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not filled yet (a recursive inner function)
        return None


def _unwrap(fn: Any) -> Any:
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def _node_id(node: Node) -> Node:
    # A function node is memoized by its object's id (CodeVersions keeps the object alive, so the
    # id stays its own); the id never reaches the hash.
    return ("fn", id(node[1])) if node[0] == "fn" else node


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _is_dagster_definition(value: Any) -> bool:
    """A Dagster definition (asset, check, job, sensor, schedule) or resource, class or object."""
    if isinstance(value, type):
        return issubclass(
            value, (dg.ConfigurableResource, dg.ConfigurableIOManagerFactory, dg.IOManager)
        )
    return isinstance(
        value,
        (
            dg.AssetsDefinition,
            dg.AssetSpec,
            dg.SourceAsset,
            dg.AssetChecksDefinition,
            dg.JobDefinition,
            dg.SensorDefinition,
            dg.ScheduleDefinition,
            dg.ResourceDefinition,
            dg.ConfigurableResource,
            dg.IOManager,
        ),
    ) or (type(value).__name__ == "UnresolvedAssetJobDefinition")


def default_cache_dir() -> Path:
    """Where the code versions of a source are kept between processes: the user's cache."""
    from mlops_assets.core.storage import user_cache_dir

    return user_cache_dir("code")


def with_code_versions(
    defs: dg.Definitions, *, package: str = PROJECT, cache_dir: Path | None = None
) -> dg.Definitions:
    """``defs`` with every asset computed by ``package``'s code given its derived code version.
    A version an asset declares itself is kept; an asset without a computation (external,
    observed) is left as it is. ``cache_dir``: see :class:`CodeVersions`."""
    versions = CodeVersions(package, cache_dir=cache_dir)
    by_key: dict[dg.AssetKey, str] = {}
    for assets_def in defs.assets or []:
        if isinstance(assets_def, dg.AssetsDefinition):
            version = versions.of_asset(assets_def)
            if version is not None:
                by_key.update(dict.fromkeys(assets_def.keys, version))
    versions.save()

    def versioned(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.code_version is not None or spec.key not in by_key:
            return spec
        return spec.replace_attributes(code_version=by_key[spec.key])

    # The form of the public `Definitions.map_asset_specs` that passes source assets through
    # (the prediction log is observed, not computed); the public one refuses them. Specs are
    # replaced on each AssetsDefinition, keeping its op, checks, partitions and policies.
    return defs.permissive_map_resolved_asset_specs(func=versioned, selection=None)
