"""The distribution ships what an installed vta-dse needs: every package of the source tree, the
tutorials and studies (for `vta-dse demo` and `vta-dse run` without a study) and the reference
figures the demo compares against."""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # python < 3.11
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_package_list_names_every_package_of_the_source_tree():
    mapped = {v: k for k, v in SETUPTOOLS["package-dir"].items()}
    found = set()
    for top in ("hwconfigs", "compiler", "simulator", "dse", "examples"):
        for init in (REPO_ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO_ROOT).as_posix()
            head = rel.split("/")[0]
            found.add(".".join([mapped.get(head, head), *rel.split("/")[1:]]))
    assert found <= set(SETUPTOOLS["packages"]), f"not installed: {sorted(found - set(SETUPTOOLS['packages']))}"


def test_the_source_tree_finds_its_tutorials_and_default_study():
    from dse._paths import EXAMPLES_DIR, STUDIES_DIR

    assert (EXAMPLES_DIR / "convolution_opt.py").is_file() and (STUDIES_DIR / "default.toml").is_file()


@pytest.mark.slow
def test_demo_and_run_work_from_a_non_editable_install(tmp_path):
    """`pip install .` into a fresh venv away from the source tree, then the two commands a user
    types first: `vta-dse demo` (published counters found) and `vta-dse run` without a study."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # the venv sees the test interpreter's packages (numpy, optuna, ray, ...) so nothing is
    # downloaded but the build backend; our own code comes only from the wheel
    site = subprocess.check_output([sys.executable, "-c", "import numpy, os; "
                                    "print(os.path.dirname(os.path.dirname(numpy.__file__)))"], text=True).strip()
    (next((env_dir / "lib").glob("python3*")) / "site-packages" / "deps.pth").write_text(site + "\n")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(REPO_ROOT)], check=True, cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run([py, "-c", "import dse; print(dse.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where, f"dse imported from {where}, not from the installed wheel"

    demo = subprocess.run([env_dir / "bin" / "vta-dse", "demo"], cwd=work, env=env, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "all counters equal the published figures" in demo.stdout

    run = subprocess.run([env_dir / "bin" / "vta-dse", "run", "--trials", "1", "--workers", "1", "--quiet",
                          "--out", str(work / "out")], cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"study default: \d+ complete trials \(\d+ scored exactly from the schedule tables\)|"
                     r"study default: 1 complete trials", run.stdout), run.stdout
    assert json.loads((work / "out" / "best_config.json").read_text())["TARGET"] == "pynq"

    # the examples of a checkout run on the installed package (their reference figures included),
    # and the installed copies run as modules
    example = subprocess.run([py, REPO_ROOT / "examples" / "resnet18_network.py"], cwd=work, env=env,
                             capture_output=True, text=True)
    assert example.returncode == 0 and "modelled VTA time" in example.stdout, example.stderr
    module = subprocess.run([py, "-m", "dse.examples.vta_get_started"], cwd=work, env=env, capture_output=True,
                            text=True)
    assert module.returncode == 0, module.stderr
