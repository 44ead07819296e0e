"""A non-editable install (a wheel) carries the Slang sources and the default scene."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO


def test_wheel_carries_shaders_scenes_and_materials(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("nrender-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for shader in (REPO / "shaders").rglob("*.slang"):
        assert f"renderer/_data/shaders/{shader.relative_to(REPO / 'shaders').as_posix()}" in names
    assert "renderer/_data/scenes/default/scene.json" in names
    for material in (REPO / "materials").rglob("*.*"):
        assert (
            f"renderer/_data/materials/{material.relative_to(REPO / 'materials').as_posix()}"
            in names
        )
    # Installed alone (no checkout beside it), the package finds its data inside itself.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    probe = (
        "import renderer.paths as p; print(p.shader_dir()); print(p.default_scene_path()); "
        "print(p.materials_dir())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    shader_dir, scene, materials = out.split()
    assert Path(shader_dir) == target / "renderer" / "_data" / "shaders"
    assert Path(scene).is_file()
    assert (Path(materials) / "leather.json").is_file()
