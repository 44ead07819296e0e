"""`nrender compare`: layered materials rendered as their reference and as their neural
bakes at equal sample count, side by side with the FLIP error map, with a JSON and a
Markdown report.

    result = compare_scene(load_scene("scenes/default"), spp=256, device="cpu")
    result.report["flip_mean"], result.report["psnr_db"]
    write_comparison(result, "out/default_compare")  # .png, .json, .md, .reference.exr...

A material file compares on its preview sphere (`comparison_scene`), with the bake found
next to it in `baked/<name>.nmat` unless another is named. Metrics: mean HDR-FLIP (NVIDIA's
`flip-evaluator`, on linear radiance) and the PSNR of the tonemapped sRGB images the PNGs
hold; both renders use the same seed and sample count, so the FLIP map also shows the
reference's own noise where it has more than the neural render.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import json_output
from .captions import captioned
from .errors import NrenderError
from .image_io import atomic_path, output_stem, write_ldr
from .render import Renderer, RenderResult
from .scene.loader import load_scene, preview_scene
from .scene.types import Scene


def default_bake_path(material_path: Path) -> Path:
    """Where a material's shipped or user bake lives: `baked/<name>.nmat` beside it."""
    return material_path.parent / "baked" / (material_path.stem + ".nmat")


def comparison_scene(source: str | Path, nmat: str | Path | None = None) -> Scene:
    """The scene to compare: a material file's preview with its bake, or a scene file
    whose layered materials name bakes (`"neural": ...`)."""
    from .materials import is_material_document
    from .neural.runtime import load_for_rendering

    path = Path(source)
    document = None
    if path.is_file() and path.suffix.lower() == ".json":
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = None  # load_scene reports it
    if is_material_document(document):
        bake = Path(nmat) if nmat is not None else default_bake_path(path)
        if not bake.is_file():
            raise NrenderError(
                f"{path}: no bake at {bake}; make one with `nrender bake {path} -o {bake}` "
                "or name one with --nmat"
            )
        scene = preview_scene(path)
        scene.materials["subject"].neural = load_for_rendering(bake)
        scene.materials["subject"].neural_path = str(bake)
        return scene
    if nmat is not None:
        raise NrenderError("--nmat applies to a material file; a scene names its bakes itself")
    scene = load_scene(path)
    if not any(m.graph is not None and m.neural is not None for m in scene.materials.values()):
        raise NrenderError(
            f"{path}: no layered material of this scene names a bake "
            '(add "neural": "X.nmat" to one), so there is nothing to compare'
        )
    return scene


@dataclass
class Comparison:
    reference: RenderResult
    neural: RenderResult
    flip_map: np.ndarray  # [H, W, 3] float32 in [0, 1], magma colour map
    report: dict[str, Any] = field(default_factory=dict)


def tonemapped(result: RenderResult) -> np.ndarray:
    """[H, W, 3] float in [0, 1]: exactly what the PNG holds."""
    return result.to_srgb8().astype(np.float32) / 255.0


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def flip_error(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float]:
    """HDR-FLIP of two linear images: (magma error map [H, W, 3], mean error)."""
    import flip_evaluator

    error_map, mean, _ = flip_evaluator.evaluate(
        np.ascontiguousarray(reference, np.float32),
        np.ascontiguousarray(test, np.float32),
        "HDR",
    )
    return np.asarray(error_map, np.float32), float(mean)


def compare_scene(
    scene: Scene,
    *,
    device: str = "auto",
    spp: int = 256,
    seed: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Comparison:
    """Render `scene` with reference and with neural materials (same seed and spp) and
    measure the difference. `progress(mode, done, total)` follows each pass; `stop()`
    true ends early with NrenderError."""
    renderer = Renderer(scene, device=device)
    renderer.render(spp=1, materials="neural")  # compile the kernel before timing either mode
    results: dict[str, RenderResult] = {}
    for mode in ("reference", "neural"):
        job = renderer.start(spp=spp, seed=seed, materials=mode)
        while not job.done:
            if stop():
                raise NrenderError("interrupted; nothing was written")
            job.step()
            if progress is not None:
                progress(mode, job.spp_done, job.settings.spp)
        results[mode] = job.result()
    reference, neural = results["reference"], results["neural"]
    started = time.perf_counter()
    error_map, flip_mean = flip_error(reference.radiance, neural.radiance)
    flip_seconds = time.perf_counter() - started
    baked = sorted(n for n, m in scene.materials.items() if m.graph is not None and m.neural)
    width, height = reference.resolution
    report = {
        "scene": str(scene.source) if scene.source else "<scene>",
        "materials": {name: scene.materials[name].neural_path for name in baked},
        "device": renderer.device.description,
        "resolution": [width, height],
        "spp": reference.spp,
        "seed": reference.info["seed"],
        "flip_mean": round(flip_mean, 5),
        "psnr_db": round(psnr_db(tonemapped(reference), tonemapped(neural)), 3),
        "seconds": {
            "reference": round(reference.seconds, 3),
            "neural": round(neural.seconds, 3),
            "flip": round(flip_seconds, 3),
        },
        "speedup": round(reference.seconds / max(neural.seconds, 1e-9), 3),
        "dropped_samples": {
            "reference": reference.dropped_samples,
            "neural": neural.dropped_samples,
        },
    }
    return Comparison(reference, neural, error_map, report)


def side_by_side(comparison: Comparison) -> np.ndarray:
    """reference | neural | FLIP error, 8-bit, captioned."""
    r = comparison.report
    panels = [
        captioned(comparison.reference.to_srgb8(), f"reference ({r['spp']} spp)"),
        captioned(comparison.neural.to_srgb8(), f"neural  PSNR {r['psnr_db']:.1f} dB"),
        captioned(
            np.round(np.clip(comparison.flip_map, 0, 1) * 255).astype(np.uint8),
            f"FLIP  mean {r['flip_mean']:.4f}",
        ),
    ]
    return np.concatenate(panels, axis=1)


def markdown(report: dict[str, Any], image_name: str) -> str:
    lines = [
        f"# Reference vs neural: {report['scene']}",
        "",
        f"![reference | neural | FLIP]({image_name})",
        "",
        "| | value |",
        "| --- | --- |",
        f"| baked materials | {', '.join(f'{k} ({v})' for k, v in report['materials'].items())} |",
        f"| device | {report['device']} |",
        f"| resolution, spp, seed | {report['resolution'][0]}x{report['resolution'][1]}, "
        f"{report['spp']}, {report['seed']} |",
        f"| mean FLIP (HDR) | {report['flip_mean']:.4f} |",
        f"| PSNR (tonemapped sRGB) | {report['psnr_db']:.2f} dB |",
        f"| render time reference / neural | {report['seconds']['reference']:.2f} s / "
        f"{report['seconds']['neural']:.2f} s ({report['speedup']:.2f}x) |",
        "",
    ]
    return "\n".join(lines)


def write_comparison(comparison: Comparison, stem: str | Path) -> list[Path]:
    """`stem`.png (side by side), .json, .md, .reference.exr and .neural.exr."""
    stem = output_stem(stem)
    png = stem.with_name(stem.name + ".png")
    written = [png]
    write_ldr(png, side_by_side(comparison))
    for name, text in (
        (".json", json_output.dumps(comparison.report, indent=2) + "\n"),
        (".md", markdown(comparison.report, png.name)),
    ):
        path = stem.with_name(stem.name + name)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        written.append(path)
    for mode, result in (("reference", comparison.reference), ("neural", comparison.neural)):
        written.append(result.write(stem.with_name(f"{stem.name}.{mode}.exr")))
    return written
