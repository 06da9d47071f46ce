"""Importing a heavy library without the parts of it a step never touches.

Great Expectations imports every expectation it ships when it is imported, and one of them
(``expect_column_kl_divergence_to_be_less_than``) pulls in ``scipy.stats`` at module top, as its
rendering pulls in ``altair``: 1.4 s and 0.3 s of the ~4 s `import great_expectations` costs a
step on two cores, for a suite of null, range and set checks that uses neither.
:func:`deferred_imports` makes such modules *lazy* while the library imports: the module object
exists, names bound to it work, and its code runs the first time anything reads one of its
attributes (the standard library's :class:`importlib.util.LazyLoader`). Code that does use
``scipy.stats`` later in the process gets the whole module then, as if imported eagerly.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the named modules as the path finder would and hands them a lazy loader."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path=None, target=None) -> ModuleSpec | None:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None  # not a plain source or bytecode module: leave it to the usual import
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


@contextmanager
def deferred_imports(*names: str) -> Iterator[None]:
    """While in the block, a first import of any module in ``names`` creates it without running
    it; it runs on the first read of one of its attributes. Modules already imported, and
    imports after the block, are untouched.

    Python 3.11's lazy modules are not safe to load from two threads at once (fixed in 3.12):
    meant for modules that a step's own thread loads, if ever.
    """
    finder = _DeferringFinder([n for n in names if n not in sys.modules])
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


#: What Great Expectations imports at its top and our suites never use (see the module docstring).
GX_UNUSED_AT_IMPORT = ("scipy.stats", "altair")


def import_great_expectations() -> ModuleType:
    """``great_expectations``, imported with :data:`GX_UNUSED_AT_IMPORT` deferred."""
    if "great_expectations" not in sys.modules:
        with deferred_imports(*GX_UNUSED_AT_IMPORT):
            import great_expectations  # noqa: F401
    return sys.modules["great_expectations"]
