"""Numba's on-disk cache checks only the file of the function it caches, so the compiled drivers
carry a digest of every kernel source file they compile in (numba_chunks.sources_digest)."""
from __future__ import annotations

import inspect
import shutil
import types
from pathlib import Path

from numba.core.caching import NullCache
from numba.core.dispatcher import Dispatcher

import onlinedeep.kernels
from onlinedeep.kernels import numba_chunks

KERNELS = Path(onlinedeep.kernels.__file__).parent


def _compiled_in(module: types.ModuleType, seen: dict) -> None:
    """The Numba functions a module's functions may call, recursively (into ``seen``)."""
    for value in vars(module).values():
        if isinstance(value, Dispatcher) and value.py_func not in seen:
            seen[value.py_func] = value
            _compiled_in(inspect.getmodule(value.py_func), seen)


def test_the_drivers_compile_in_only_files_their_digest_covers():
    callees: dict = {}
    _compiled_in(numba_chunks, callees)
    files = {Path(inspect.getsourcefile(f)).resolve() for f in callees}
    assert len(files) >= 3, files
    assert {f.parent for f in files} == {KERNELS.resolve()}, files
    # and none is cached on its own but the drivers: a cached callee would keep its own callees'
    # old code
    drivers = (numba_chunks.SUPERVISED, numba_chunks.DAE, numba_chunks.RBM)
    cached = [f.__qualname__ for f, d in callees.items()
              if not isinstance(d._cache, NullCache) and d not in drivers]
    assert not cached
    digest = numba_chunks.sources_digest()
    for dispatcher in drivers:
        assert not isinstance(dispatcher._cache, NullCache)
        assert dispatcher.py_func.__qualname__.endswith(f"_{digest}")


def test_a_change_to_any_kernel_file_changes_the_digest(tmp_path, monkeypatch):
    copy = tmp_path / "kernels"
    shutil.copytree(KERNELS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(numba_chunks, "__file__", str(copy / "numba_chunks.py"))
    before = numba_chunks.sources_digest()
    assert before == numba_chunks._SOURCES
    rows = copy / "numba_rows.py"
    rows.write_text(rows.read_text() + "\n# a callee's file changed\n")
    assert numba_chunks.sources_digest() != before
