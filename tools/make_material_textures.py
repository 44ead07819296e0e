"""Make the image textures of the shipped material library, and export every texture of
a material for inspection.

    python tools/make_material_textures.py                  # (re)write materials/textures/
    python tools/make_material_textures.py --export materials/leather.json out/

The library's patterns (noise, cells, scratches, dust) are procedural and rasterised when
a material loads; the leather grain ships as a 16-bit PNG height map so that the image
path of the material format is exercised by the library too. Deterministic: the same
command writes the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from renderer.image_io import atomic_path, linear_to_srgb, write_ldr
from renderer.materials import load_material, patterns

REPO = Path(__file__).resolve().parent.parent

RESOLUTION = 512


def leather_grain(resolution: int = RESOLUTION) -> np.ndarray:
    """Pebbled grain: rounded cells separated by creases, with fine pores."""
    cells = patterns.cellular(resolution, cells=24, coverage=1.0, softness=0.35, seed=11, warp=0.6)
    creases = patterns.fbm(resolution, frequency=6, octaves=4, gain=0.6, seed=12, warp=0.4)
    pores = patterns.fbm(resolution, frequency=64, octaves=2, gain=0.5, seed=13)
    height = 0.75 * cells + 0.2 * creases + 0.05 * pores
    return (height - height.min()) / (height.max() - height.min())


def write_library_textures(folder: Path) -> list[Path]:
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "leather_grain.png"
    data = np.round(leather_grain() * 65535).astype(np.uint16)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, data)
    return [path]


def export_textures(material: Path, out: Path) -> list[Path]:
    """Write every named texture of `material` as an sRGB PNG (normal maps as 0.5 + n/2)."""
    graph = load_material(material)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    normal_maps = {
        id(m)
        for stack in graph.stacks()
        for m in (stack.normal_map, *(layer.normal_map for layer in stack.layers))
    }
    for name, texture in graph.textures.items():
        if texture.kind != "image":
            continue
        image = np.asarray(texture.image, np.float32)
        normals = id(texture) in normal_maps
        pixels = 0.5 + 0.5 * image if normals else linear_to_srgb(np.clip(image, 0, 1))
        path = out / f"{graph.name or material.stem}_{name}.png"
        write_ldr(path, np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", nargs=2, metavar=("MATERIAL", "FOLDER"), type=Path)
    args = parser.parse_args()
    if args.export:
        paths = export_textures(*args.export)
    else:
        paths = write_library_textures(REPO / "materials" / "textures")
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
