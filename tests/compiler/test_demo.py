"""The README's first command before the search driver: `vta-dse demo`."""
import io

from dse.demo import run_demo
from simulator import REFERENCE_DIR
from tests.conftest import reference_file


def test_demo_reproduces_every_published_tutorial_counter():
    reference_file("tutorial_counters.json")
    out = io.StringIO()
    assert run_demo(out, REFERENCE_DIR) == 0
    text = out.getvalue()
    assert "all counters equal the published figures" in text
    assert text.count("output equals numpy") == 4 and "DIFFERS" not in text


def test_demo_without_the_published_figures_fails_instead_of_dropping_the_comparison(tmp_path):
    out = io.StringIO()
    assert run_demo(out, tmp_path) == 1
    assert "tutorial_counters.json are missing" in out.getvalue()
