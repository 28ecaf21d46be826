"""Reading a run's tables back: knob values as the op library takes them.

The tables store a list-valued knob (``tile_h = [7, 8]``) as its JSON text, one format that
parquet and CSV both hold; these readers turn such cells back into lists, so a row's knobs go
straight back into ``workloads.build(layer, env=env, knobs=...)``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ._columns import row_columns

FIXED_COLUMNS = frozenset(row_columns(()))


def _decode(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _table(path, stem: str):
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        parquet = path / f"{stem}.parquet"
        path = parquet if parquet.is_file() else path / f"{stem}.csv"
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype_backend="numpy_nullable")
    return pd.read_parquet(path)


def knob_columns(frame) -> list[str]:
    """The schedule-knob columns of a results table (every column not of the fixed layout)."""
    return [c for c in frame.columns if c not in FIXED_COLUMNS]


def read_results(path):
    """The results table of a run (its folder, or a results .parquet/.csv file) as a DataFrame
    whose list-valued knob cells are Python lists."""
    frame = _table(path, "results")
    for col in knob_columns(frame):
        cells = frame[col]
        if any(isinstance(v, str) and v[:1] in "[{" for v in cells):
            frame[col] = cells.astype(object).map(_decode)
    return frame


def read_trials(path):
    """The trials table of a run (folder or file); ``schedules`` holds {workload: knobs} dicts."""
    frame = _table(path, "trials")
    if "schedules" in frame.columns:
        frame["schedules"] = frame["schedules"].astype(object).map(_decode)
    return frame


def row_knobs(row, knob_names=None) -> dict:
    """The knobs of one row of :func:`read_results` (a Series or a dict; by default its every
    non-fixed column), without those its op does not have (empty cells)."""
    import pandas as pd

    out = {}
    for name in (knob_names if knob_names is not None else [k for k in row.keys() if k not in FIXED_COLUMNS]):
        value = row[name]
        if isinstance(value, (list, dict)) or not pd.isna(value):
            out[name] = value.item() if hasattr(value, "item") else value
    return out
