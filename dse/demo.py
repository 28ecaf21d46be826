"""``vta-dse demo``: the upstream tutorials compiled by our compiler and run on our simulator."""
from __future__ import annotations

import json
import time
from pathlib import Path

TUTORIALS = (
    ("vta_get_started", "seed_vta_get_started_vadd"),
    ("matrix_multiply", "tvm_tutorial_matrix_multiply_simple"),
    ("matrix_multiply_opt", "tvm_tutorial_matrix_multiply_opt_blocked_gemm"),
    ("convolution_opt", "tvm_tutorial_convolution_opt_resnet_c9_like"),
)


def _published(reference_dir: Path) -> dict:
    """Published per-call counters by reference name, when the reference figures are at hand."""
    path = reference_dir / "tutorial_counters.json"
    if not path.is_file():
        return {}
    return {entry["name"]: entry["per_call_counters"] for entry in json.loads(path.read_text())}


def _load_example(name: str):
    """The ported tutorial ``examples/<name>.py`` (of the source tree, or installed with dse)."""
    import importlib.util

    from ._paths import EXAMPLES_DIR

    path = EXAMPLES_DIR / f"{name}.py"
    if not path.is_file():
        raise SystemExit(f"vta-dse demo: {path} not found (a broken installation: reinstall vta-dse)")
    spec = importlib.util.spec_from_file_location(f"vta_dse_examples.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_demo(out, reference_dir: Path | None = None) -> int:
    from simulator import COUNTER_NAMES, REFERENCE_DIR

    reference_dir = reference_dir or REFERENCE_DIR
    published = _published(reference_dir)
    if not published:      # they ship with the package: without them the demo has nothing to show
        print(f"vta-dse demo: the published figures {reference_dir / 'tutorial_counters.json'} are missing "
              f"(a broken installation: reinstall vta-dse)", file=out)
        return 1
    failures = 0
    print("vta-dse demo: upstream VTA tutorials, compiled by compiler.build, run on simulator.run", file=out)
    for module_name, reference_name in TUTORIALS:
        example = _load_example(module_name)
        start = time.perf_counter()
        mod, result = example.main(verbose=False)   # each example checks its output against numpy
        elapsed = time.perf_counter() - start
        print(f"\n{module_name}: {len(mod.program)} instructions, output equals numpy, "
              f"{result.cycles} cycles = {result.seconds * 1e3:.3f} ms at the config's clock "
              f"(build + run {elapsed:.2f} s)", file=out)
        expected = published.get(reference_name)
        for name in COUNTER_NAMES:
            line = f"  {name:<18} {result.stats[name]:>10}"
            if expected is None:
                failures += 1
                line += "   published figure missing"
            else:
                same = result.stats[name] == expected[name]
                failures += not same
                line += f"   published {expected[name]:>10}  {'ok' if same else 'DIFFERS'}"
            print(line, file=out)
    print("\nall counters equal the published figures" if not failures else f"\n{failures} counter(s) differ",
          file=out)
    return 1 if failures else 0
