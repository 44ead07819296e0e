"""`nrender bench materials`: what neural shading saves, measured in one run on one device.

- shading cost: per library material with a bake, the time of one shading event as the
  path tracer runs it (set up the BSDF for wo, eval and pdf towards a light direction, one
  sample) through the same kernel for the layered reference and the neural bake; best of
  `repeats` runs, interleaved so that both see the same machine state;
- frame time of a scene (default: scenes/default) with `--materials reference` and `neural`;
- scalability: a 4x4 grid of spheres with 1, 4 and 16 distinct neural materials (separate
  copies of the available bakes: each its own latent pyramid and weights on the device);
- warp coherence: for each path depth, the share of neural shading events whose 32-lane
  warp shades one neural material with every lane - the condition for the tensor-core
  path - one sample per pixel: for the megakernel (a warp is 8x4 pixels of an 8x8 thread
  group; from the shading trace) and for the wavefront schedule (a warp is 32
  consecutive paths of the material-sorted order);
- on CUDA, the same frame with the per-lane and the tensor-core decoder.

Numbers are reported, never asserted.
"""

from __future__ import annotations

import copy
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from .bench import tensor_core_frames
from .device import open_device
from .layout import INVALID_INDEX
from .materials import MaterialQueries, load_material
from .neural.nmat import NeuralMaterial
from .neural.runtime import load_for_rendering
from .paths import default_scene_path, materials_dir
from .render import Renderer
from .scene import load_scene
from .scene.types import Material, Scene
from .version import __version__

WARP = 32
GROUP = 8  # the path tracer's thread groups are 8x8 pixels
NEURAL_BIT = 0x80000000


def _directions(rng: np.random.Generator, count: int) -> np.ndarray:
    r, phi = np.sqrt(rng.random(count)), 2 * np.pi * rng.random(count)
    return np.stack([r * np.cos(phi), r * np.sin(phi), np.sqrt(1 - r * r)], axis=1)


def shading_costs(
    device: str, baked: Path, queries: int = 8192, events: int = 16, repeats: int = 3
) -> dict[str, Any]:
    """Microseconds per shading event, layered vs neural, per library material baked in
    `baked` (others are listed as missing)."""
    rng = np.random.default_rng(0)
    uv = rng.random((queries, 2))
    wo, wi = _directions(rng, queries), _directions(rng, queries)
    rows: dict[str, Any] = {}
    missing = []
    for path in sorted(materials_dir().glob("*.json")):
        nmat = baked / (path.stem + ".nmat")
        if not nmat.is_file():
            missing.append(path.stem)
            continue
        pair = {
            "layered": MaterialQueries(load_material(path), device),
            "neural": MaterialQueries(load_for_rendering(nmat), device),
        }
        best = {k: float("inf") for k in pair}
        for q in pair.values():
            q.shade(uv[:64], wi[:64], wo[:64])  # compile and upload
        for _ in range(repeats):
            for kind, q in pair.items():
                start = time.perf_counter()
                q.shade(uv, wi, wo, events)
                best[kind] = min(best[kind], time.perf_counter() - start)
        us = {k: 1e6 * v / (queries * events) for k, v in best.items()}
        rows[path.stem] = {
            "layered_us": round(us["layered"], 3),
            "neural_us": round(us["neural"], 3),
            "speedup": round(us["layered"] / us["neural"], 2),
        }
    speedups = [r["speedup"] for r in rows.values()]
    return {
        "queries": queries,
        "events_per_query": events,
        "repeats": repeats,
        "materials": rows,
        "missing_bakes": missing,
        "geometric_mean_speedup": round(float(np.exp(np.mean(np.log(speedups)))), 2)
        if speedups
        else None,
    }


def _ms_per_spp(renderer: Renderer, spp: int, materials: str) -> float:
    renderer.render(spp=1, materials=materials)  # compile and warm up
    result = renderer.render(spp=spp, materials=materials)
    return 1000.0 * result.seconds / spp


def frame_times(scene_path: Path, device: str, resolution: tuple[int, int], spp: int) -> dict:
    scene = load_scene(scene_path)
    scene.camera.resolution = resolution
    renderer = Renderer(scene, device)
    ms = {mode: _ms_per_spp(renderer, spp, mode) for mode in ("reference", "neural")}
    return {
        "scene": str(scene_path),
        "resolution": list(resolution),
        "spp": spp,
        "ms_per_spp": {k: round(v, 3) for k, v in ms.items()},
        "speedup": round(ms["reference"] / ms["neural"], 3),
    }


def sphere_grid(materials: list[NeuralMaterial], resolution: tuple[int, int]) -> Scene:
    """16 spheres in a 4x4 grid under the sky; sphere i gets materials[i % len]."""
    instances = [
        {
            "mesh": "ball",
            "material": "m",
            "transform": {"translate": [1.1 * (i % 4) - 1.65, 1.1 * (i // 4) - 1.65, 0.0]},
        }
        for i in range(16)
    ]
    scene = load_scene(
        {
            "version": 1,
            "camera": {
                "position": [0, 0, 7.5],
                "look_at": [0, 0, 0],
                "fov": 40,
                "resolution": list(resolution),
            },
            "integrator": {"max_depth": 4},
            "environment": {"type": "sky", "scale": 0.6},
            "materials": {"m": {"type": "diffuse"}},
            "meshes": {"ball": {"type": "sphere", "radius": 0.5, "segments": 48, "rings": 24}},
            "instances": instances,
        }
    )
    scene.materials = {
        f"n{k}": Material(kind="neural", neural=m, neural_path=f"copy {k}")
        for k, m in enumerate(materials)
    }
    for i, instance in enumerate(scene.instances):
        instance.material = f"n{i % len(materials)}"
    return scene


def scalability(
    device: str, bakes: list[NeuralMaterial], resolution: tuple[int, int], spp: int
) -> dict[str, Any]:
    """Frame time with 1, 4 and 16 distinct neural materials on screen."""
    out = {}
    for count in (1, 4, 16):
        # distinct objects: the renderer uploads one material object once
        chosen = [copy.deepcopy(bakes[k % len(bakes)]) for k in range(count)]
        renderer = Renderer(sphere_grid(chosen, resolution), device)
        out[str(count)] = round(_ms_per_spp(renderer, spp, "neural"), 3)
    return {"resolution": list(resolution), "spp": spp, "ms_per_spp": out}


def warp_coherence(trace: np.ndarray) -> list[dict[str, Any]]:
    """From a shading trace [H, W, D] (RenderJob.shading_trace): per depth, the neural
    shading events, the share of them in warps whose 32 lanes all shade one neural
    material, and the share sorting by material could reach (full warps of 32)."""
    h, w, depths = trace.shape
    gh, gw = -(-h // GROUP), -(-w // GROUP)
    padded = np.full((gh * GROUP, gw * GROUP, depths), INVALID_INDEX, np.uint32)
    padded[:h, :w] = trace
    # [group row, group col, 8 rows, 8 cols, D] -> warps: rows 0-3 and 4-7 of each group
    groups = padded.reshape(gh, GROUP, gw, GROUP, depths).transpose(0, 2, 1, 3, 4)
    warps = groups.reshape(gh * gw * 2, WARP, depths)
    out = []
    for d in range(depths):
        lanes = warps[:, :, d]
        neural = (lanes != INVALID_INDEX) & ((lanes & NEURAL_BIT) != 0)
        events = int(neural.sum())
        if events == 0:
            out.append({"depth": d, "neural_events": 0})
            continue
        coherent = neural.all(axis=1) & (lanes == lanes[:, :1]).all(axis=1)
        _, counts = np.unique(lanes[neural], return_counts=True)
        out.append(
            {
                "depth": d,
                "neural_events": events,
                "coherent_share": round(float(coherent.sum() * WARP / events), 4),
                "sorted_share": round(float((counts // WARP).sum() * WARP / events), 4),
            }
        )
    return out


def sorted_coherence(sorted_keys: list[np.ndarray], neural: np.ndarray) -> list[dict[str, Any]]:
    """The wavefront's warps, per bounce: 32 consecutive entries of the material-sorted
    shading order (`WavefrontJob.sorted_keys` of one pass); `neural` [materials] says which
    materials render neural."""
    out = []
    for depth, keys in enumerate(sorted_keys):
        is_neural = neural[keys]
        events = int(is_neural.sum())
        if events == 0:
            out.append({"depth": depth, "neural_events": 0})
            continue
        whole = len(keys) // WARP * WARP
        warps = keys[:whole].reshape(-1, WARP)
        coherent = (warps == warps[:, :1]).all(axis=1) & neural[warps[:, 0]]
        out.append(
            {
                "depth": depth,
                "neural_events": events,
                "coherent_share": round(float(coherent.sum() * WARP / events), 4),
            }
        )
    return out


def coherence(scene_path: Path, device: str, resolution: tuple[int, int]) -> dict[str, Any]:
    """Warp coherence of neural shading with each schedule, one sample per pixel."""
    scene = load_scene(scene_path)
    scene.camera.resolution = resolution
    renderer = Renderer(scene, device)
    depths = scene.integrator.max_depth + 1
    job = renderer.start(spp=1, materials="neural", trace_depths=depths)
    while not job.done:
        job.step()
    wave = renderer.start(spp=1, materials="neural", schedule="wavefront")
    while not wave.done:
        wave.step()
    neural = renderer.buffers.material_tables.renders_neural(True)
    return {
        "resolution": list(resolution),
        "per_depth": warp_coherence(job.shading_trace()),
        "wavefront_per_depth": sorted_coherence(wave.sorted_keys, neural),
    }


def run_material_benchmarks(
    *,
    device: str,
    baked: Path,
    scene_path: Path | None = None,
    resolution: tuple[int, int] = (320, 180),
    spp: int = 8,
    queries: int = 8192,
) -> dict[str, Any]:
    import slangpy as spy

    scene_path = scene_path or default_scene_path()
    costs = shading_costs(device, baked, queries)
    bakes = [load_for_rendering(p) for p in sorted(baked.glob("*.nmat"))]
    renderer_device = open_device(device)
    report: dict[str, Any] = {
        "nrender": __version__,
        "slangpy": spy.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "device": renderer_device.description,
        "baked": str(baked),
        "shading": costs,
        "frame": frame_times(scene_path, device, resolution, spp),
        "scalability": scalability(device, bakes, resolution, spp) if bakes else None,
        "coherence": coherence(scene_path, device, resolution),
    }
    if renderer_device.kind == "cuda":
        scene = load_scene(scene_path)
        report["tensor_core"] = tensor_core_frames(scene, renderer_device, materials="neural")
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    s = report["shading"]
    lines = [
        f"# Neural vs layered materials ({report['device']})",
        "",
        f"Shading cost: microseconds per shading event (set-up, eval + pdf towards a light, "
        f"one sample), {s['queries']} queries x {s['events_per_query']} events, best of "
        f"{s['repeats']}.",
        "",
        "| material | layered us | neural us | speedup |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in s["materials"].items():
        lines.append(
            f"| {name} | {row['layered_us']:.2f} | {row['neural_us']:.2f} | {row['speedup']:.2f}x |"
        )
    lines += ["", f"Geometric mean speedup: {s['geometric_mean_speedup']}x."]
    if s["missing_bakes"]:
        lines.append(f"No bake in {report['baked']} for: {', '.join(s['missing_bakes'])}.")
    f = report["frame"]
    lines += [
        "",
        f"Frame time, {f['scene']} at {f['resolution'][0]}x{f['resolution'][1]}: "
        f"reference {f['ms_per_spp']['reference']:.1f} ms/spp, neural "
        f"{f['ms_per_spp']['neural']:.1f} ms/spp ({f['speedup']:.2f}x).",
    ]
    if report.get("scalability"):
        sc = report["scalability"]["ms_per_spp"]
        lines += [
            "",
            "| distinct neural materials | 1 | 4 | 16 |",
            "| --- | --- | --- | --- |",
            f"| ms per spp | {sc['1']:.1f} | {sc['4']:.1f} | {sc['16']:.1f} |",
        ]
    lines += [
        "",
        "Neural shading events in coherent warps (32 lanes, one neural material):",
        "",
        "| depth | neural events | megakernel | wavefront (sorted by material) |",
        "| --- | --- | --- | --- |",
    ]
    coh = report["coherence"]
    for row, wave in zip(coh["per_depth"], coh["wavefront_per_depth"], strict=False):
        if row["neural_events"]:
            lines.append(
                f"| {row['depth']} | {row['neural_events']} | {100 * row['coherent_share']:.1f}% "
                f"| {100 * wave.get('coherent_share', 0.0):.1f}% |"
            )
    if "tensor_core" in report:
        t = report["tensor_core"]["ms_per_frame_1spp"]
        lines += [
            "",
            "| 1920x1080, 1 spp, ms | per-lane decoder | tensor cores |",
            "| --- | --- | --- |",
        ]
        for schedule in ("megakernel", "wavefront"):
            lines.append(
                f"| {schedule} | {t[f'per_lane_{schedule}']} | {t[f'tensor_core_{schedule}']} |"
            )
    return "\n".join(lines) + "\n"
