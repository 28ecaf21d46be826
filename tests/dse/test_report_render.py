"""report.html as a browser draws it: headless Chromium renders it to a PNG, and the PNG holds
the page with its figures (the plot colours are there, in the places the figures take).

CI installs Debian's ``chromium`` (.ci/run); without a chromium binary the test is skipped and
says so."""
import shutil
import subprocess

import pytest

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (CI installs Debian's "
                                                         "`chromium`: apt-get install -y chromium)")

# Colours of the plots (dse._plots): the chosen configuration's bars, the stock's, the front.
CHOSEN_BAR, STOCK, FRONT = (0x3a, 0x6f, 0xc4), (0xe0, 0x8a, 0x00), (0xdd, 0x33, 0x33)


def render(html_path, png_path, width=1300, height=4400):
    res = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--no-first-run", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                          f"--screenshot={png_path}", html_path.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and png_path.is_file(), res.stderr[-2000:]
    from PIL import Image

    return Image.open(png_path).convert("RGB")


def near(pixel, colour, tol=24):
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour))


def count(image, colour, tol=24) -> int:
    import numpy as np

    pixels = np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(-1, 3).astype(int)
    return int((np.abs(pixels - np.array(colour)) <= tol).all(axis=1).sum())


def rows_with(image, colour) -> list[int]:
    w, h = image.size
    data = image.load()
    return [y for y in range(0, h, 2) if any(near(data[x, y], colour) for x in range(0, w, 2))]


def test_report_renders_with_its_figures(real_runs, tmp_path):
    image = render(real_runs["ok"] / "report.html", tmp_path / "report.png")
    w, h = image.size
    assert (w, h) == (1300, 4400)
    small = image.resize((w // 2, h // 2))
    # the utilisation and per-layer bars of the chosen and stock configurations, the front
    assert count(small, CHOSEN_BAR) > 500 and count(small, STOCK) > 500
    assert count(image, FRONT) > 20         # the front's markers and their legend (small: at full size)
    # the chosen bars are in two figures (utilisation, per layer), one under the other
    blue = rows_with(small, CHOSEN_BAR)
    assert any(b - a > 40 for a, b in zip(blue, blue[1:])), blue
    # the page is not blank below its last figure's start: text (dark pixels) over most of its height
    dark = [y for y in range(0, h // 2, 4) if any(sum(small.getpixel((x, y))) < 150 for x in range(0, w // 2, 4))]
    assert max(dark) > 0.4 * (h // 2)


def test_report_without_a_feasible_point_renders_its_warning(real_runs, tmp_path):
    image = render(real_runs["none"] / "report.html", tmp_path / "none.png", height=2600)
    small = image.resize((image.size[0] // 2, image.size[1] // 2))
    warning_fill = (0xff, 0xee, 0xee)           # the NO FEASIBLE CONFIGURATION box
    assert count(small, warning_fill, tol=4) > 2000     # (white is 17 away: a tight tolerance)
    assert count(small, STOCK) > 300            # the stock configuration's bars are still drawn
    assert count(small, CHOSEN_BAR) == 0        # and nothing is drawn for a chosen one
