"""Variance per sample of next-event estimation's light selection: the renderer's
camera-receiver estimate (renderer/render/light_selection.py) against the bounding-sphere
power estimate it replaced, on the default scene, a large ground plane and a Cornell box.

For each scene and selection it renders a few seeds at a small size and prints, as
Markdown, the environment probability, the image-mean variance of one sample (per-pixel
variance of the mean x spp), milliseconds per spp and the efficiency ratio
(1 / (variance x time), new over old). `--sweep` adds the variance at fixed probabilities.

    python tools/light_selection_study.py                      # ~1-2 min on one CPU core
    python tools/light_selection_study.py --spp 64 --seeds 3 --sweep 0.1,0.3,0.5,0.7,0.9

`--shaders DIR` measures against another copy of shaders/ (e.g. one with a fix not yet
merged); the renderer's own tree is not touched.

Numbers are reported, not asserted (tests/test_light_selection.py asserts a margin).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

import renderer.device as render_device
from renderer import Renderer, load_scene
from renderer.paths import scenes_dir
from renderer.render.light_selection import bounding_sphere_probability
from renderer.scene.types import Scene


def ground_plane_scene() -> dict:
    """Objects under a 0.8 m lamp on a 100 m ground under a dim evening sky with a low sun:
    the ground puts the bounding sphere's radius at ~70 m."""
    return {
        "version": 1,
        "camera": {"position": [0, 2.0, 4.5], "look_at": [0, 0.4, 0], "fov": 45},
        "integrator": {"spp": 64, "max_depth": 4, "seed": 0},
        "environment": {
            "type": "sky",
            "sun_angle": 3.0,
            "sun_radiance": 300.0,
            "sun_direction": [-0.6, 0.3, 0.4],
            "scale": 0.3,
        },
        "materials": {
            "floor": {"type": "diffuse", "albedo": 0.6},
            "red": {"type": "diffuse", "albedo": [0.7, 0.2, 0.1]},
            "lamp": {"type": "diffuse", "albedo": 0.0, "emission": 20.0},
        },
        "meshes": {
            "floor": {"type": "plane", "size": [100, 100]},
            "block": {"type": "box", "size": [0.8, 0.8, 0.8]},
            "ball": {"type": "sphere", "radius": 0.5, "segments": 24, "rings": 12},
            "lamp": {"type": "plane", "size": [0.8, 0.8]},
        },
        "instances": [
            {"mesh": "floor", "material": "floor"},
            {
                "mesh": "block",
                "material": "red",
                "transform": {"translate": [-0.7, 0.4, 0], "rotate": [0, 25, 0]},
            },
            {"mesh": "ball", "material": "floor", "transform": {"translate": [0.8, 0.5, 0.2]}},
            {
                "mesh": "lamp",
                "material": "lamp",
                "transform": {"translate": [0.3, 2.0, 0.5], "rotate": [180, 0, 0]},
            },
        ],
    }


def cornell_box_scene() -> dict:
    """A 2 m Cornell box, open at the front to a constant white environment, lit by a
    0.5 m ceiling lamp: the sky reaches the inside only through the opening."""
    wall = {"mesh": "wall"}
    return {
        "version": 1,
        "camera": {"position": [0, 1, 3.9], "look_at": [0, 1, 0], "fov": 40},
        "integrator": {"spp": 64, "max_depth": 4, "seed": 0},
        "environment": {"type": "constant", "radiance": 1.0},
        "materials": {
            "white": {"type": "diffuse", "albedo": 0.75},
            "red": {"type": "diffuse", "albedo": [0.63, 0.06, 0.05]},
            "green": {"type": "diffuse", "albedo": [0.14, 0.45, 0.09]},
            "lamp": {"type": "diffuse", "albedo": 0.0, "emission": 15.0},
        },
        "meshes": {
            "wall": {"type": "plane", "size": [2, 2]},
            "lamp": {"type": "plane", "size": [0.5, 0.5]},
            "tall": {"type": "box", "size": [0.6, 1.2, 0.6]},
            "short": {"type": "box", "size": [0.6, 0.6, 0.6]},
        },
        "instances": [
            {**wall, "material": "white"},  # floor
            {
                **wall,
                "material": "white",
                "transform": {"translate": [0, 2, 0], "rotate": [180, 0, 0]},
            },
            {
                **wall,
                "material": "white",
                "transform": {"translate": [0, 1, -1], "rotate": [90, 0, 0]},
            },
            {
                **wall,
                "material": "red",
                "transform": {"translate": [-1, 1, 0], "rotate": [0, 0, -90]},
            },
            {
                **wall,
                "material": "green",
                "transform": {"translate": [1, 1, 0], "rotate": [0, 0, 90]},
            },
            {
                "mesh": "lamp",
                "material": "lamp",
                "transform": {"translate": [0, 1.99, 0], "rotate": [180, 0, 0]},
            },
            {
                "mesh": "tall",
                "material": "white",
                "transform": {"translate": [-0.4, 0.6, -0.3], "rotate": [0, 20, 0]},
            },
            {
                "mesh": "short",
                "material": "white",
                "transform": {"translate": [0.4, 0.3, 0.3], "rotate": [0, -18, 0]},
            },
        ],
    }


SCENES: dict[str, Callable[[], dict | str]] = {
    "default": lambda: str(scenes_dir() / "default"),
    "ground plane": ground_plane_scene,
    "cornell box": cornell_box_scene,
}


def _bounding_sphere_probability(renderer: Renderer) -> float:
    buffers = renderer.buffers
    return bounding_sphere_probability(
        renderer.scene.environment, buffers.bounds, buffers.emitter_lights
    )


def measure(renderer: Renderer, p_env: float, spp: int, seeds: int) -> tuple[float, float]:
    """(image-mean variance of one sample, seconds per spp) at selection probability p_env."""
    renderer.buffers.lights["environment_probability"] = float(p_env)
    variances, seconds = [], []
    for seed in range(seeds):
        job = renderer.start(spp=spp, seed=seed)
        while not job.done:
            job.step()
        result = job.result()
        variances.append(float((result.variance * spp).mean()))
        seconds.append(job.seconds / spp)
    return float(np.mean(variances)), float(np.mean(seconds))


def load(name: str, width: int, height: int) -> Scene:
    scene = load_scene(SCENES[name]())
    scene.camera.resolution = (width, height)
    return scene


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", default="64x48", help="width x height (default 64x48)")
    parser.add_argument("--spp", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sweep", default="", help="comma-separated fixed probabilities")
    parser.add_argument("--scenes", default=",".join(SCENES), help="comma-separated names")
    parser.add_argument("--shaders", type=Path, help="compile kernels from this shaders/ copy")
    args = parser.parse_args(argv)
    if args.shaders is not None:
        shaders = args.shaders.resolve()
        render_device.shader_dir = lambda: shaders  # before any device or kernel exists
    width, height = (int(x) for x in args.res.lower().split("x"))
    sweep = [float(x) for x in args.sweep.split(",") if x]
    device = render_device.open_device(args.device)

    header = (
        "| scene | p_env old | p_env new | variance/sample old | new | old/new "
        "| ms/spp old | new | efficiency new/old |"
    )
    rows = [header, "| " + " | ".join(["---"] * 9) + " |"]
    sweeps = []
    for name in args.scenes.split(","):
        renderer = Renderer(load(name, width, height), device)
        renderer.render(spp=1)  # the first dispatch pays one-off setup: keep it out of timings
        p_new = renderer.buffers.stats.environment_probability
        p_old = _bounding_sphere_probability(renderer)
        var_old, t_old = measure(renderer, p_old, args.spp, args.seeds)
        var_new, t_new = measure(renderer, p_new, args.spp, args.seeds)
        efficiency = (var_old * t_old) / (var_new * t_new)
        rows.append(
            f"| {name} | {p_old:.3f} | {p_new:.3f} | {var_old:.4g} | {var_new:.4g} "
            f"| {var_old / var_new:.2f} | {1e3 * t_old:.1f} | {1e3 * t_new:.1f} "
            f"| {efficiency:.2f} |"
        )
        print(rows[-1], flush=True)
        for p in sweep:
            var, _ = measure(renderer, p, args.spp, args.seeds)
            sweeps.append(f"| {name} | {p:.2f} | {var:.4g} |")
    source = f", shaders from {args.shaders}" if args.shaders else ""
    print(f"\n{width}x{height}, {args.spp} spp, seeds 0..{args.seeds - 1}, {device.kind}{source}\n")
    print("\n".join(rows))
    if sweeps:
        print("\n| scene | p_env fixed | variance/sample |\n| --- | --- | --- |")
        print("\n".join(sweeps))


if __name__ == "__main__":
    main()
