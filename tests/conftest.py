"""Shared fixtures: where the published reference figures live."""
import os
from pathlib import Path

import pytest

from simulator import REFERENCE_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]

# Studies share measurements through the user's cache folder (dse._identity); tests must not read
# what another run left there, nor write into it: the shared cache is off unless a test turns it on.
os.environ["VTA_DSE_CACHE_DIR"] = ""


def reference_file(name: str) -> Path:
    """A file of the in-repo reference figures (simulator/reference/); a missing file fails the
    test (it is the judge)."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.fail(f"reference file {path} is missing: the figures our numbers are judged against")
    return path
