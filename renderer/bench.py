"""`nrender bench`: render throughput, BVH build time, material evaluation cost and, for a
scene with NeRF volumes, what the volumes cost, measured in one run.

Numbers are reported, never asserted: timed tests are flaky, benchmarks are not tests.
"""

from __future__ import annotations

import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import slangpy as spy

from .accel import build_bvh
from .device import RenderDevice
from .materials import MaterialQueries, load_material
from .materials.graph import Layer, Lobe, MaterialGraph, Stack
from .paths import materials_dir
from .render import Renderer
from .scene import load_scene
from .scene.types import Scene
from .version import __version__


def random_triangle_soup(count: int, seed: int = 0) -> np.ndarray:
    """[N, 3, 3] small random triangles in a 10^3 box (a stand-in for a scanned mesh)."""
    rng = np.random.default_rng(seed)
    centres = rng.random((count, 1, 3), np.float32) * 10
    return centres + rng.normal(scale=0.02, size=(count, 3, 3)).astype(np.float32)


def bench_bvh(count: int) -> dict[str, Any]:
    tris = random_triangle_soup(count)
    bvh = build_bvh(tris.min(axis=1), tris.max(axis=1))
    return {
        "triangles": count,
        "build_seconds": round(bvh.build_seconds, 3),
        "nodes": bvh.node_count,
        "depth": bvh.depth,
    }


def bench_render(
    scene_path: Path, device: str, resolution: tuple[int, int], spp: int
) -> dict[str, Any]:
    scene = load_scene(scene_path)
    scene.camera.resolution = resolution
    start = time.perf_counter()
    renderer = Renderer(scene, device=device)
    renderer.render(spp=1)  # compiles the kernel and warms caches
    setup = time.perf_counter() - start
    result = renderer.render(spp=spp)
    pixels = resolution[0] * resolution[1]
    return {
        "scene": str(scene_path),
        "device": renderer.device.description,
        "resolution": list(resolution),
        "spp": spp,
        "setup_seconds": round(setup, 3),
        "render_seconds": round(result.seconds, 4),
        "samples_per_second": round(spp * pixels / result.seconds),
        "ms_per_spp": round(1000 * result.seconds / spp, 3),
        "triangles": renderer.buffers.stats.triangles,
    }


def best_frame(
    renderer: Renderer, spp: int, schedule: str, repeats: int = 3, materials: str | None = None
) -> float:
    """Seconds of the fastest of `repeats` frames, after one that compiles and warms up."""
    renderer.render(spp=1, schedule=schedule, materials=materials)
    return min(
        renderer.render(spp=spp, schedule=schedule, materials=materials).seconds
        for _ in range(repeats)
    )


def tensor_core_frames(scene: Scene, device: RenderDevice, materials: str | None = None) -> dict:
    """CUDA: one 1920x1080 1-spp frame of `scene` with its neural networks (materials and
    NeRF volumes) per lane and on tensor cores, with each schedule (the megakernel's
    warps are whole or coherent mostly at the first hit), best of 5, in ms."""
    hd = replace(scene, camera=replace(scene.camera, resolution=(1920, 1080)))
    ms: dict[str, float] = {}
    for mlp in ("per-lane", "auto"):
        renderer = Renderer(hd, device, neural_mlp=mlp)
        for schedule in ("megakernel", "wavefront"):
            key = f"{'tensor_core' if mlp == 'auto' else 'per_lane'}_{schedule}"
            seconds = best_frame(renderer, 1, schedule, repeats=5, materials=materials)
            ms[key] = round(1000 * seconds, 3)
    return {"resolution": [1920, 1080], "ms_per_frame_1spp": ms}


def bench_volumes(
    scene_path: Path, device: str, resolution: tuple[int, int], spp: int
) -> dict[str, Any] | None:
    """A scene with NeRF volumes: its frame time with and without them, per schedule; on
    CUDA also one 1920x1080 1-spp frame with the volumes' networks per lane and on tensor
    cores. None for a scene without volumes."""
    scene = load_scene(scene_path)
    if not scene.volumes:
        return None
    scene.camera.resolution = resolution
    bare = replace(scene, volumes=[])
    with_volumes = Renderer(scene, device=device)
    without = Renderer(bare, device=with_volumes.device)
    seconds: dict[str, dict[str, float]] = {}
    for schedule in ("megakernel", "wavefront"):
        seconds[schedule] = {
            "with_volumes": round(best_frame(with_volumes, spp, schedule), 4),
            "without_volumes": round(best_frame(without, spp, schedule), 4),
        }
    report: dict[str, Any] = {
        "volumes": len(scene.volumes),
        "resolution": list(resolution),
        "spp": spp,
        "seconds_per_frame": seconds,
        "cost_ratio": {
            k: round(v["with_volumes"] / v["without_volumes"], 2) for k, v in seconds.items()
        },
    }
    if with_volumes.device.kind == "cuda":
        report["tensor_core"] = tensor_core_frames(scene, with_volumes.device)
    return report


def _cosine_directions(rng: np.random.Generator, count: int) -> np.ndarray:
    r, phi = np.sqrt(rng.random(count)), 2 * np.pi * rng.random(count)
    return np.stack([r * np.cos(phi), r * np.sin(phi), np.sqrt(1 - r * r)], axis=1)


def bench_materials(device: str, queries: int, samples: int = 8) -> dict[str, Any]:
    """Evaluations per second of every library material through the batched API, each
    query averaging `samples` stochastic evaluations in one kernel call (as baking asks
    for targets), plus samples per second; costs relative to a Lambert lobe and to a
    Lambert under one clear coat (the smallest layered stack)."""
    rng = np.random.default_rng(0)
    uv = rng.random((queries, 2))
    wo, wi = _cosine_directions(rng, queries), _cosine_directions(rng, queries)
    lambert = MaterialGraph(Stack([Lobe("diffuse")]), name="lambert")
    coated = MaterialGraph(Stack([Lobe("diffuse")], [Layer()]), name="coated_lambert")
    graphs = [lambert, coated] + [load_material(p) for p in sorted(materials_dir().glob("*.json"))]
    rows: dict[str, Any] = {}
    description = ""
    for graph in graphs:
        q = MaterialQueries(graph, device)
        description = q.device.description
        q.evaluate(uv[:64], wi[:64], wo[:64])  # compile and upload
        start = time.perf_counter()
        q.evaluate(uv, wi, wo, samples=samples)
        eval_seconds = time.perf_counter() - start
        start = time.perf_counter()
        q.sample(uv, wo)
        sample_seconds = time.perf_counter() - start
        rows[graph.name] = {
            "evaluations_per_second": round(queries * samples / eval_seconds),
            "samples_per_second": round(queries / sample_seconds),
        }
    for row in rows.values():
        rate = row["evaluations_per_second"]
        row["cost_vs_lambert"] = round(rows["lambert"]["evaluations_per_second"] / rate, 2)
        row["cost_vs_coated_lambert"] = round(
            rows["coated_lambert"]["evaluations_per_second"] / rate, 2
        )
    return {
        "device": description,
        "queries": queries,
        "evaluations_per_query": samples,
        "materials": rows,
    }


def run_benchmarks(
    *,
    scene_path: Path,
    device: str,
    resolution: tuple[int, int],
    spp: int,
    bvh_triangles: int,
    material_queries: int = 0,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "nrender": __version__,
        "slangpy": spy.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "render": bench_render(scene_path, device, resolution, spp),
    }
    if bvh_triangles > 0:
        report["bvh_build"] = bench_bvh(bvh_triangles)
    if material_queries > 0:
        report["material_evaluation"] = bench_materials(device, material_queries)
    volumes = bench_volumes(scene_path, device, resolution, spp)
    if volumes is not None:
        report["volumes"] = volumes
    return report
