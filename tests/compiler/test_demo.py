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
