"""The code's identity: what a cached measurement was computed by.

A measurement stays valid while the code that produced it is unchanged, so the evaluator's name,
which every cache key carries, ends in a digest of the source and data files of the stages it
runs (compiler, simulator, hwconfigs and its own module). Editing the compiler or the cycle model
changes the name, and no cache answers for the new code: nobody has to remember to bump a version.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

_SUFFIXES = (".py", ".json")


@functools.lru_cache(maxsize=None)
def code_identity(*modules: str) -> str:
    """Hex digest of every .py and .json file of the named packages or modules, with their paths."""
    digest = hashlib.sha256()
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:
            spec = None
        if spec is None or spec.origin is None:    # not part of this install: nothing of it measures
            digest.update(f"{name}: absent\0".encode())
            continue
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            root = origin.parent
            files = sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and "__pycache__" not in p.parts)
        else:
            root, files = origin.parent, [origin]
        for path in files:
            digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def shared_cache_dir() -> Path | None:
    """Where measurements are shared between studies: ``$VTA_DSE_CACHE_DIR`` (empty: none), else
    ``$XDG_CACHE_HOME/vta-dse`` or ``~/.cache/vta-dse``."""
    value = os.environ.get("VTA_DSE_CACHE_DIR")
    if value is not None:
        return Path(value) if value else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vta-dse"
