"""README's Python examples run as written (in a scratch folder with the sample image)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch, capsys):
    (tmp_path / "tests" / "data").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "data" / "sample.png", tmp_path / "tests" / "data")
    monkeypatch.chdir(tmp_path)
    code = BLOCKS[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out.split()
    from vqcodec.coders import ctx as ctxcoder

    if not ctxcoder.available():  # the sizes shown are those of the default coder, ctx
        pytest.skip("vqcodec._ctxcoder not built: README's sizes are the context model's")
    # a whole-line "# ..." comment shows printed output: its numbers must be what was printed
    for line in re.findall(r"^# (.+)$", code, re.M):
        for word in line.split():
            if word.endswith("..."):
                assert any(p.startswith(word[:-3]) for p in printed), (word, printed)
            else:
                assert word in printed, (word, printed)
