"""docs/study-file.md documents the study-file schema the loader (dse/_study.py) enforces: every
table, key, allowed value, range and default."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import hwconfigs
from dse import _study, parse_study
from dse.evaluate import SimulatorEvaluator

DOC = (Path(__file__).resolve().parents[1] / "docs" / "study-file.md").read_text()
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def section(table: str) -> str:
    """The text under ``## `[table]` `` up to the next ``## `` heading."""
    match = re.search(rf"^## `\[{re.escape(table)}\]`\n(.*?)(?=^## |\Z)", DOC, re.S | re.M)
    assert match, f"docs/study-file.md has no section for [{table}]"
    return match.group(1)


def rows(table: str) -> dict[str, list[str]]:
    """{key: its cells} of the section's first table whose first column is a `key`."""
    out = {}
    for line in section(table).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`([A-Za-z_]+)`", cells[0]) if line.startswith("|") else None
        if m and m.group(1) not in out:
            out[m.group(1)] = cells
    return out


SECTIONS = {"study": _study.STUDY_KEYS, "objectives": _study.OBJECTIVES, "hardware": _study.LOG_KEYS,
            "schedule": _study.SCHEDULE_KEYS, "constraints": _study.CONSTRAINT_KEYS}


def test_readme_links_the_study_file_reference():
    assert "docs/study-file.md" in README


def test_every_table_is_documented():
    assert set(_study.TOP_KEYS) == {*SECTIONS, "workloads"}
    for table in _study.TOP_KEYS:
        assert f"`[{table}]`" in DOC or f"`[[{table}]]`" in DOC, table


@pytest.mark.parametrize("table", sorted(SECTIONS))
def test_every_key_the_loader_accepts_is_documented_and_no_other(table):
    assert set(rows(table)) == set(SECTIONS[table])


def test_allowed_values_are_the_loaders():
    study, schedule = rows("study"), rows("schedule")
    listed = lambda cell: set(re.findall(r"`([a-z0-9]+)`", cell))   # noqa: E731
    assert listed(study["sampler"][2]) == set(_study.SAMPLERS)
    assert listed(study["verify"][2]) == set(_study.VERIFY)
    assert listed(study["runner"][2]) == set(_study.RUNNERS)
    assert listed(schedule["sampler"][2]) == set(_study.INNER_SAMPLERS)
    assert listed(rows("constraints")["board"][2]) == set(hwconfigs.FPGA_TARGETS)
    assert set(hwconfigs.preset_names()) <= listed(study["base"][2])
    for name, cells in rows("objectives").items():
        assert listed(cells[2]) == set(_study.DIRECTIONS), name
    for key, cells in rows("hardware").items():
        _, low, high = hwconfigs.FIELDS[key]
        assert cells[2] == f"{low} to {high}", key


def test_board_capacities_are_the_resource_models():
    text = section("constraints")
    for board, target in hwconfigs.FPGA_TARGETS.items():
        cap = hwconfigs.CAPACITIES[target.part]
        figures = f"{cap.bram:g}, {cap.dsp:g}, {cap.lut:g}"
        assert figures in text or f"BRAM {cap.bram:g}, DSP {cap.dsp:g}, LUT {cap.lut:g}" in text, board


def _default(cell: str):
    m = re.match(r"`(.*?)`", cell)
    if not m:
        return None                      # "none", "the file name ...", "required"
    text = m.group(1)
    return text.strip('"') if text.startswith('"') else int(text) if text.isdigit() else text


def test_documented_defaults_are_the_loaders():
    ops = SimulatorEvaluator().ops
    spec = parse_study({"workloads": [{"op": "dense", "in_features": 16, "out_features": 16}]}, "x/mine.toml", ops)
    study = rows("study")
    assert _default(study["base"][3]) == "default" and spec.base == hwconfigs.resolve_config("default")
    assert spec.name == "mine" and study["name"][3] == "the file name without `.toml`"
    for key, value in (("sampler", spec.sampler), ("seed", spec.seed), ("n_trials", spec.n_trials),
                       ("candidate_timeout", spec.candidate_timeout), ("verify", spec.verify),
                       ("verify_top_k", spec.verify_top_k), ("runner", spec.runner)):
        assert _default(study[key][3]) == value, key
    assert study["timeout"][3] == "none" and spec.timeout is None
    assert study["boards"][3] == "none" and spec.boards == ()
    assert study["board_token_file"][3] == "none" and spec.board_token_file is None
    schedule = rows("schedule")
    assert _default(schedule["sampler"][3]) == spec.schedule_sampler
    assert _default(schedule["trials_per_layer"][3]) == spec.trials_per_layer
    assert spec.objectives == (("latency", "minimize"),) and '`"minimize"` when the table is absent' in \
        rows("objectives")["latency"][3]
    assert spec.constraints == () and spec.hardware == ()
    workload = rows("[workloads]")
    assert spec.workloads[0].name == "dense1" and spec.workloads[0].count == _default(workload["count"][3])


def test_every_op_parameter_is_documented_with_its_default():
    documented = {}
    for line in section("[workloads]").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`\w+`", cells[0]) and re.fullmatch(r"`\w+`", cells[1]):
            documented[(cells[0].strip("`"), cells[1].strip("`"))] = cells[2]
    ops = SimulatorEvaluator().ops
    assert set(documented) == {(op, key) for op, schema in ops.items() for key in schema}
    for (op, key), cell in documented.items():
        default = ops[op][key]
        if default is _study.REQUIRED:
            assert cell == "required", (op, key)
        else:
            # as TOML writes it; an optional key without a default (None) is documented as `none`
            written = str(default).lower() if isinstance(default, bool) or default is None else default
            assert cell.startswith(f"`{written}`".replace("'", '"')), (op, key, cell)
    assert set(re.findall(r"`(\w+)`", rows("[workloads]")["op"][2])) == set(ops)
