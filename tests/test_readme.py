"""README.md's Python blocks run as written, at tiny sizes: a user who copies one gets
what it says, not a NameError."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import REPO
from test_bake import TINY

README = REPO / "README.md"
# What makes a block quick here; each replacement must match, so the README and this
# list cannot drift apart silently.
TINY_SIZES = {
    "(320, 180)": "(32, 18)",
    "(160, 90)": "(16, 9)",
    "spp=1024": "spp=2",
    "spp=16": "spp=1",
    "spp=32": "spp=2",
    'preset("quick")': "TINY_PRESET",
    "(1000, 2)": "(16, 2)",
    "(1000, 1)": "(16, 1)",
}


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_python_blocks() -> None:
    assert len(python_blocks()) >= 4


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Catches: README examples using names they never define, or an API whose argument
    # types or order changed under them (e.g. numpy arrays where torch was required).
    code = python_blocks()[index]
    for big, small in TINY_SIZES.items():
        code = code.replace(big, small)
    # the repository's folders, seen from a scratch working folder (outputs land there)
    for name in ("scenes", "materials"):
        os.symlink(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    tiny = replace(TINY, encoder_steps=2, latent_steps=2, sampler_steps=2)
    exec(compile(code, f"README.md python block {index}", "exec"), {"TINY_PRESET": tiny})


def test_tiny_sizes_all_apply() -> None:
    text = "".join(python_blocks())
    missing = [big for big in TINY_SIZES if big not in text]
    assert not missing, f"README no longer contains {missing}; update TINY_SIZES"
