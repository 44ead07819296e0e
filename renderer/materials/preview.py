"""The preview scene `nrender render materials/X.json` draws: the material on a sphere
standing on a checkered floor, under the default scene's sky (renderer.scene.loader puts
the material in)."""

from __future__ import annotations

from typing import Any


def preview_scene_dict() -> dict[str, Any]:
    """The preview scene (format v1), with a grey stand-in for the material shown."""
    return {
        "version": 1,
        "camera": {
            "position": [0.0, 1.55, 3.9],
            "look_at": [0.0, 0.8, 0.0],
            "fov": 30.0,
            "resolution": [320, 240],
        },
        "integrator": {"spp": 64, "max_depth": 6, "seed": 0},
        "environment": {
            "type": "sky",
            "sun_direction": [0.6, 0.7, 0.35],
            "sun_angle": 3.0,
            "sun_radiance": [2500.0, 2300.0, 2000.0],
            "scale": 0.6,
        },
        "materials": {
            "subject": {"type": "diffuse", "albedo": 0.5},
            "floor": {
                "type": "diffuse",
                "albedo": {
                    "type": "checker",
                    "colors": [[0.75, 0.75, 0.72], [0.35, 0.35, 0.34]],
                    "scale": 12,
                },
            },
        },
        "meshes": {
            "ground": {"type": "plane", "size": [12.0, 12.0]},
            "ball": {"type": "sphere", "radius": 0.8, "segments": 128, "rings": 64},
        },
        "instances": [
            {"mesh": "ground", "material": "floor"},
            {"mesh": "ball", "material": "subject", "transform": {"translate": [0.0, 0.8, 0.0]}},
        ],
    }
