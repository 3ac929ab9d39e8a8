# SPDX-License-Identifier: Apache-2.0
"""The example script runs and writes its picture."""

import os
import re
import subprocess
import sys

from test_png import read_png

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "video_psa.py")


def test_video_example(tmp_path):
    png = tmp_path / "levels.png"
    run = subprocess.run([sys.executable, EXAMPLE, "--grid", "4,8,16", "--png", str(png)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    density = float(re.search(r"density\s+([0-9.]+)", run.stdout).group(1))
    psa, binary = (float(x) for x in re.search(
        r"PSA ([0-9.]+); binary at the same density ([0-9.]+)", run.stdout).groups())
    assert 0 < density < 1 and psa < binary
    image = read_png(png)
    assert image.shape[0] > 8 and image.shape[1] > 8
