"""Where the Slang sources, example scenes and material library live, for editable and
wheel installs alike."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    # A wheel carries the folder inside the package (pyproject force-include); a checkout
    # or an editable install keeps it beside the package.
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"nrender installation is incomplete: no '{name}' folder found")


def shader_dir() -> Path:
    """Root of the Slang sources (`shaders/`)."""
    return _data_dir("shaders")


def scenes_dir() -> Path:
    """Root of the example scenes (`scenes/`)."""
    return _data_dir("scenes")


def materials_dir() -> Path:
    """The layered material library (`materials/`)."""
    return _data_dir("materials")


def default_scene_path() -> Path:
    """The scene `nrender render` draws when given none."""
    return scenes_dir() / "default" / "scene.json"
