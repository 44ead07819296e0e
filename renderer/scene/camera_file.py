"""Saving a camera back into a scene file (the viewer's Ctrl+S), keeping the rest of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import SceneError
from ..image_io import atomic_path
from ..input_files import read_json

SAVED_KEYS = ("position", "look_at", "up", "fov")


def save_camera(path: str | Path | None, camera: dict[str, Any]) -> None:
    """Replace the camera's position, look_at, up and fov in the JSON scene file `path`
    (its resolution and every other key stay); the file is rewritten with two-space
    indentation, through a temporary file and a rename."""
    if path is None or Path(path).suffix.lower() != ".json":
        raise SceneError(f"{path}: only a JSON scene file can take a saved camera")
    path = Path(path)
    document = read_json(path, SceneError, "scene file")
    if not isinstance(document, dict) or not isinstance(document.get("camera"), dict):
        raise SceneError(f"{path}: not a scene file with a camera (a material preview?)")
    document["camera"].update({key: camera[key] for key in SAVED_KEYS})
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SceneError(f"{path}: cannot write ({exc.strerror or exc})") from None
