"""Where the files shipped beside the code are: the ported tutorials (``examples/``) and the
study files (``studies/``). A source tree has them at the top level; an installed package has
them as ``dse/examples`` and ``dse/studies`` (pyproject.toml maps them there)."""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    installed = _HERE / name
    return installed if installed.is_dir() else _HERE.parent / name


EXAMPLES_DIR = _shipped("examples")
STUDIES_DIR = _shipped("studies")
