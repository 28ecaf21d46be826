"""Where the published reference figures live: ``simulator/reference/``, one copy for the tests,
the examples, the benchmarks and ``vta-dse demo`` (its JSON files are package data, so an
installed package finds them too; the fsim corpus is in the source tree only)."""
from __future__ import annotations

from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


def reference_path(name: str) -> Path:
    """The path of reference file ``name`` (e.g. ``"tutorial_counters.json"``); it may not exist
    (the fsim corpus outside a source tree): callers that need it check ``is_file()``."""
    return REFERENCE_DIR / name
