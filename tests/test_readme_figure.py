"""README's figure regenerates from the commands printed under it."""
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from fastnuma.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_figure_regenerates(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread
    text = (ROOT / "README.md").read_text()
    image = re.search(r"!\[[^\]]*\]\((docs/img/[^)]+\.png)\)", text).group(1)
    block = re.search(r"```bash\n(fastnuma replay [^\n]*--heat-buckets[^\n]*\n"
                      r"fastnuma plot [^\n]*)\n```", text).group(1)
    # run the commands in a copy of the layout they expect (the project root)
    (tmp_path / "traces").symlink_to(ROOT / "traces")
    monkeypatch.chdir(tmp_path)
    for line in block.splitlines():
        assert main(shlex.split(line)[1:]) == 0
    made = imread(tmp_path / image)
    committed = imread(ROOT / image)
    assert made.shape == committed.shape
    differ = np.abs(made - committed).max(axis=-1) > 0.1
    assert differ.mean() < 0.02          # the same picture (fonts may differ by a pixel)
    assert os.path.getsize(ROOT / image) < 100_000
