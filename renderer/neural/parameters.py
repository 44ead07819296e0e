"""The encoder's input: a material's spatially varying parameters, texel by texel.

Every non-constant texture the graph reads (lobe colours and roughnesses, layer
absorption and roughness, normal maps, mix masks...) is rasterised onto the finest latent
grid and stacked along channels (one channel for a grey texture, three otherwise). Flakes
lobes add three channels: their flake normal's x and y where a cell holds a flake, and
the flake's presence. Flakes are hashed per cell inside the shader, so their values come
from the Slang material itself (MaterialQueries.flakes), not from a copy of its hash.
Constants carry no per-texel information, so the decoder learns them directly. Coarser
levels are 2x2 box averages of the finer one ("prefiltered parameters"), which makes the
baked pyramid consistent across levels.

Grids follow the texture convention of shaders/materials/texture.slang: row 0 is the top
of the image (v = 1), texel centres sit at half-integer coordinates, lookups wrap.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from ..materials.graph import Layer, Lobe, MaterialGraph, Mix, Stack
from ..materials.texture import Texture

TEXELS_PER_CHECKER_CELL = 4
TEXELS_PER_FLAKE_CELL = 2
FlakeField = Callable[[np.ndarray, Lobe], np.ndarray]  # (uv [N, 2], lobe) -> [N, 4]


def spatial_textures(graph: MaterialGraph) -> list[Texture]:
    """Every non-constant texture the graph reads, once each, in graph order."""
    found: dict[int, Texture] = {}

    def add(texture: Texture | None) -> None:
        if texture is not None and texture.kind != "constant":
            found.setdefault(id(texture), texture)

    pending: list[Stack | Mix] = [graph.root]
    while pending:
        node = pending.pop(0)
        if isinstance(node, Mix):
            add(node.mask)
            pending += [node.a, node.b]
            continue
        add(node.normal_map)
        for part in [*node.lobes, *node.layers]:
            for f in fields(part):
                value = getattr(part, f.name)
                if isinstance(value, Texture):
                    add(value)
    return list(found.values())


def flake_lobes(graph: MaterialGraph) -> list[Lobe]:
    """Every flakes lobe of the graph, in graph order."""
    return [lobe for stack in graph.stacks() for lobe in stack.lobes if lobe.type == "flakes"]


def _next_power_of_two(n: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1.0))))


def native_resolution(textures: list[Texture], flakes: list[Lobe] | None = None) -> tuple[int, int]:
    """(width, height) at which one latent texel covers at most one texel of every texture
    (tiling included) and half a flake cell, rounded up to powers of two; 1x1 for a
    uniform material."""
    w = h = 1.0
    for lobe in flakes or []:
        w = h = max(w, TEXELS_PER_FLAKE_CELL * lobe.flake_scale)
    for t in textures:
        su, sv = (abs(float(s)) for s in t.uv_scale)
        if t.kind == "image":
            ih, iw = np.asarray(t.image).shape[:2]
            w, h = max(w, iw * su), max(h, ih * sv)
        else:  # checker
            w = max(w, TEXELS_PER_CHECKER_CELL * su)
            h = max(h, TEXELS_PER_CHECKER_CELL * sv)
    return _next_power_of_two(w), _next_power_of_two(h)


def _is_grey(t: Texture) -> bool:
    if t.kind == "image":
        image = np.asarray(t.image)
        return image.ndim == 2 or bool(np.all(image == image[..., :1]))
    return bool(np.all(t.value == t.value[0]) and np.all(t.value2 == t.value2[0]))


def _lookup(t: Texture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The numpy twin of eval_texture: [...] uv -> [..., 3]."""
    su, sv = (float(s) for s in t.uv_scale)
    s, q = u * su, v * sv
    if t.kind == "checker":
        odd = ((np.floor(s).astype(np.int64) + np.floor(q).astype(np.int64)) & 1) == 1
        return np.where(odd[..., None], t.value2[None], t.value[None]).astype(np.float32)
    image = np.asarray(t.image, np.float32)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    ih, iw = image.shape[:2]
    x = s * iw - 0.5
    y = (1.0 - q) * ih - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    tx, ty = (x - x0)[..., None], (y - y0)[..., None]
    ix, iy = x0.astype(np.int64), y0.astype(np.int64)

    def texel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return image[np.mod(b, ih), np.mod(a, iw)]

    top = texel(ix, iy) * (1 - tx) + texel(ix + 1, iy) * tx
    bottom = texel(ix, iy + 1) * (1 - tx) + texel(ix + 1, iy + 1) * tx
    return top * (1 - ty) + bottom * ty


@dataclass
class ParameterStack:
    """Stacked parameters per level: levels[l] is [h_l, w_l, C] float32, finest first."""

    levels: list[np.ndarray]
    channel_names: list[str]

    @property
    def channels(self) -> int:
        return self.levels[0].shape[-1]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the finest level."""
        return self.levels[0].shape[1], self.levels[0].shape[0]


def rasterize(
    textures: list[Texture],
    width: int,
    height: int,
    native: tuple[int, int],
    flakes: list[Lobe] | None = None,
    flake_field: FlakeField | None = None,
) -> np.ndarray:
    """[height, width, C] parameters at texel centres, box-filtered over a grid of
    supersamples wherever a texel covers several texels of a source texture."""
    sx = max(1, math.ceil(native[0] / width))
    sy = max(1, math.ceil(native[1] / height))
    columns: list[np.ndarray] = []
    xs = np.arange(width)[None, :, None, None] + (np.arange(sx)[None, None, None, :] + 0.5) / sx
    ys = np.arange(height)[:, None, None, None] + (np.arange(sy)[None, None, :, None] + 0.5) / sy
    u = np.broadcast_to(xs / width, (height, width, sy, sx))
    v = np.broadcast_to(1.0 - ys / height, (height, width, sy, sx))
    for t in textures:
        values = _lookup(t, u, v).mean(axis=(2, 3))
        columns.append(values[..., :1] if _is_grey(t) else values)
    if flakes:
        if flake_field is None:
            raise ValueError("flakes lobes need a flake_field")
        spots = np.stack([u, v], -1).reshape(-1, 2).astype(np.float32)
        for lobe in flakes:
            flake = flake_field(spots, lobe).reshape(height, width, sy, sx, 4)
            present = flake[..., 3:4]
            values = np.concatenate([flake[..., :2] * present, present], -1)
            columns.append(values.mean(axis=(2, 3)))
    if not columns:  # a uniform material still needs one (constant) encoder input
        return np.ones((height, width, 1), np.float32)
    return np.concatenate(columns, axis=-1).astype(np.float32)


def downsample(level: np.ndarray) -> np.ndarray:
    """2x2 box average (1x2 or 2x1 once a side has reached 1)."""
    h, w, c = level.shape
    fh, fw = (2 if h > 1 else 1), (2 if w > 1 else 1)
    return level.reshape(h // fh, fh, w // fw, fw, c).mean(axis=(1, 3))


def parameter_stack(
    graph: MaterialGraph, max_resolution: int, flake_field: FlakeField | None = None
) -> ParameterStack:
    """The encoder's input at every level. The finest level has the material's native
    resolution, capped at `max_resolution` per side (a power of two). `flake_field`
    (MaterialQueries.flakes) is needed when the graph has flakes lobes."""
    textures = spatial_textures(graph)
    flakes = flake_lobes(graph)
    native = native_resolution(textures, flakes)
    width, height = min(native[0], max_resolution), min(native[1], max_resolution)
    finest = rasterize(textures, width, height, native, flakes, flake_field)
    levels = [finest]
    while levels[-1].shape[:2] != (1, 1):
        levels.append(downsample(levels[-1]))
    names = []
    for i, t in enumerate(textures):
        label = t.path or f"texture{i}"
        names += [label] if _is_grey(t) else [f"{label}.{c}" for c in "rgb"]
    for i, _ in enumerate(flakes):
        names += [f"flakes{i}.{c}" for c in ("x", "y", "present")]
    return ParameterStack(levels, names or ["one"])


def material_hash(graph: MaterialGraph) -> str:
    """sha256 of everything the device evaluates: structure, numbers and texel data, so a
    change to a texture file or a procedural pattern changes it, and a renamed file does
    not."""
    digest = hashlib.sha256()

    def feed(value: object) -> None:
        if isinstance(value, Texture):
            digest.update(f"tex:{value.kind}".encode())
            for array in (value.value, value.value2, value.uv_scale):
                digest.update(np.asarray(array, np.float64).tobytes())
            if value.image is not None:
                image = np.ascontiguousarray(value.image, np.float32)
                digest.update(str(image.shape).encode() + image.tobytes())
        elif isinstance(value, (Lobe, Layer)):
            digest.update(type(value).__name__.encode())
            for f in fields(value):
                digest.update(f.name.encode())
                feed(getattr(value, f.name))
        elif isinstance(value, Stack):
            digest.update(b"stack")
            feed(value.normal_map)
            for part in [*value.lobes, b"|", *value.layers]:
                feed(part)
        elif isinstance(value, Mix):
            digest.update(b"mix")
            for part in (value.mask, value.a, value.b):
                feed(part)
        elif value is None:
            digest.update(b"none")
        elif isinstance(value, bytes):
            digest.update(value)
        else:
            digest.update(repr(value).encode())

    feed(graph.root)
    return digest.hexdigest()
