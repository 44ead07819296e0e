"""Energy of neural materials in the path tracer, with and without the renderer's energy
normalisation (renderer/neural/energy.py), and what the normalisation costs in quality.

For every `<name>.nmat` in a folder of library bakes:

- furnace: the material on a sphere in a white, constant environment, one bounce
  (max_depth 1), so each pixel is the directional albedo for its view direction; the mean
  over rings of cos(theta_o) for the layered reference, the bake as rendered, and the bake
  with the normalisation off (its albedo table replaced by zeros);
- quality: the material's preview scene, reference against neural with the normalisation
  on and off: mean HDR-FLIP and tonemapped PSNR (renderer.compare).

    python tools/energy_study.py /path/to/baked --out docs/energy  # .json + .md

Numbers are reported, not asserted. Runs on the CPU device by default (minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from renderer import Renderer, load_scene
from renderer.compare import flip_error, psnr_db, tonemapped
from renderer.image_io import LUMINANCE
from renderer.neural import NeuralMaterial
from renderer.neural.architecture import ENERGY_ANGLES, ENERGY_GRID
from renderer.neural.runtime import material_energy
from renderer.paths import materials_dir
from renderer.scene.loader import preview_scene
from renderer.scene.types import Material

RINGS = 8


def furnace(material: Material, device: str, res: int, spp: int) -> np.ndarray:
    """[RINGS] mean albedo over rings of cos(theta_o) (NaN for empty rings)."""
    scene = load_scene(
        {
            "version": 1,
            "camera": {
                "position": [0, 0, 6],
                "look_at": [0, 0, 0],
                "fov": 22,
                "resolution": [res, res],
            },
            "integrator": {"spp": spp, "max_depth": 1, "seed": 3},
            "environment": {"type": "constant", "radiance": 1.0},
            "materials": {"m": {"type": "diffuse"}},
            "meshes": {"ball": {"type": "sphere", "segments": 128, "rings": 64}},
            "instances": [{"mesh": "ball", "material": "m"}],
        }
    )
    scene.materials["m"] = material
    result = Renderer(scene, device).render()
    on = result.depth > 0
    lum = result.radiance @ LUMINANCE
    # the camera looks down -Z from far away: cos(theta_o) is the normal's z
    cos_o = np.clip(result.normal[..., 2], 0, 1)
    ring = np.minimum((cos_o * RINGS).astype(int), RINGS - 1)
    return np.array(
        [lum[on & (ring == k)].mean() if (on & (ring == k)).any() else np.nan for k in range(RINGS)]
    )


def study(
    path: Path, device: str, res: int, spp: int, preview_res: tuple[int, int], preview_spp: int
) -> dict:
    source = materials_dir() / (path.stem + ".json")
    bake = NeuralMaterial.load(path)
    table = material_energy(bake).copy()
    off = NeuralMaterial.load(path)
    off.energy = torch.zeros(ENERGY_GRID, ENERGY_GRID, ENERGY_ANGLES)
    reference = preview_scene(source).materials["subject"]
    rows = {
        "reference": furnace(reference, device, res, spp),
        "neural": furnace(Material(kind="neural", neural=bake), device, res, spp),
        "neural_unnormalised": furnace(Material(kind="neural", neural=off), device, res, spp),
    }
    scene = preview_scene(source)
    scene.camera.resolution = preview_res
    images = {"reference": Renderer(scene, device).render(spp=preview_spp)}
    for key, m in (("neural", bake), ("neural_unnormalised", off)):
        scene.materials["subject"] = Material(kind="neural", neural=m)
        images[key] = Renderer(scene, device).render(spp=preview_spp)
    quality = {}
    for key in ("neural", "neural_unnormalised"):
        _, flip = flip_error(images["reference"].radiance, images[key].radiance)
        quality[key] = {
            "flip_mean": round(flip, 5),
            "psnr_db": round(psnr_db(tonemapped(images["reference"]), tonemapped(images[key])), 3),
            "mean_radiance_ratio": round(
                float(images[key].radiance.mean() / images["reference"].radiance.mean()), 4
            ),
        }
    return {
        "table_max_albedo_per_angle": [round(float(v), 3) for v in table.max(axis=(0, 1))],
        "table_fraction_over_1": round(float((table > 1).mean()), 4),
        "furnace_rings": {k: [round(float(v), 4) for v in r] for k, r in rows.items()},
        "quality": quality,
    }


LABELS = {
    "reference": "reference",
    "neural": "neural",
    "neural_unnormalised": "neural, no normalisation",
}


def markdown(report: dict) -> str:
    lines = [
        "Furnace albedo by ring of cos(theta_o) (white constant environment, one bounce):",
        "",
        "| material | | 0-1/8 | 1/8-2/8 | 2/8-3/8 | mean of rings |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in report["materials"].items():
        for key, label in LABELS.items():
            ring = r["furnace_rings"][key]
            lines.append(
                f"| {name if key == 'reference' else ''} | {label} | {ring[0]:.3f} | "
                f"{ring[1]:.3f} | {ring[2]:.3f} | {np.nanmean(ring):.3f} |"
            )
    lines += [
        "",
        "Preview scene against the reference, normalisation on / off:",
        "",
        "| material | mean FLIP | PSNR dB | mean radiance / reference |",
        "| --- | --- | --- | --- |",
    ]
    for name, r in report["materials"].items():
        on, off = r["quality"]["neural"], r["quality"]["neural_unnormalised"]
        lines.append(
            f"| {name} | {on['flip_mean']:.4f} / {off['flip_mean']:.4f} | "
            f"{on['psnr_db']:.2f} / {off['psnr_db']:.2f} | "
            f"{on['mean_radiance_ratio']:.3f} / {off['mean_radiance_ratio']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baked", type=Path, help="folder of <library material>.nmat bakes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--res", type=int, default=96, help="furnace image size")
    parser.add_argument("--spp", type=int, default=256, help="furnace samples per pixel")
    parser.add_argument("--preview-spp", type=int, default=128)
    parser.add_argument("--out", type=Path, help="write <out>.json and <out>.md")
    args = parser.parse_args()
    report = {"materials": {}}
    for path in sorted(args.baked.glob("*.nmat")):
        print(f"{path.stem} ...", file=sys.stderr)
        report["materials"][path.stem] = study(
            path, args.device, args.res, args.spp, (160, 120), args.preview_spp
        )
    text = markdown(report)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
