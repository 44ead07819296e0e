"""Material graph files (JSON, `"version": 1`) and dicts -> validated `MaterialGraph`.

The format is documented key by key in materials/README.md. As with scenes, every key is
typed and range-checked, and a key that is never read (unknown, misspelt, or not used by
the chosen type) is an error naming the file and the key path. Named textures and nodes
may reference each other; a cycle is an error that spells the cycle out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageError, MaterialError
from ..image_io import read_image
from ..input_files import check_path_text, read_json, resolve_path
from ..scene.reader import Section
from . import patterns
from .graph import LOBE_TYPES, Layer, Lobe, MaterialGraph, Mix, Node, Stack, constant
from .limits import material_limits
from .texture import Texture

MATERIAL_VERSION = 1
MAX_TEXTURE_RESOLUTION = 8192
# Below the top interface the layered estimator connects through every vertex, which a
# perfectly smooth (delta) vertex defeats; see shaders/materials/layer_stack.slang.
MIN_COATED_ROUGHNESS = 0.05
MIN_FLAKE_ROUGHNESS = 0.05
MAX_SCRATCH_POINTS = 2e7  # a few seconds of rasterising
TEXTURE_TYPES = (
    "constant",
    "image",
    "checker",
    "noise",
    "cellular",
    "scratches",
    "dust",
    "remap",
    "normal_map",
)

# Complex indices of refraction at roughly 650, 550 and 450 nm (R, G, B), as measured at
# those wavelengths (gold and silver: Johnson & Christy 1972); tests/test_bsdf_reference.py
# holds each against published data sets. They are single-wavelength values, not averages
# over each sRGB channel's response: on gold's absorption edge that puts blue reflectance
# at normal incidence at 0.41 where channel-averaged tables give 0.29-0.34.
METALS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "gold": ((0.156, 0.424, 1.383), (3.602, 2.472, 1.916)),
    "silver": ((0.052, 0.060, 0.040), (4.409, 3.597, 2.648)),
    "copper": ((0.200, 0.924, 1.102), (3.912, 2.452, 2.142)),
    "aluminium": ((1.657, 0.880, 0.521), (9.224, 6.270, 4.837)),
    "brass": ((0.444, 0.527, 1.094), (3.695, 2.765, 1.829)),
    "iron": ((2.91, 2.95, 2.58), (3.08, 2.93, 2.82)),
}


def load_material(
    source: str | os.PathLike[str] | dict[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> MaterialGraph:
    """Load a material graph from a JSON file or an equivalent dict.

    Relative texture paths resolve against the file's folder (for a dict: `base_dir`, by
    default the working folder).
    """
    if isinstance(source, dict):
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        return material_from_dict(source, name="<material dict>", base_dir=base)
    data = read_json(Path(source), MaterialError, "material file")
    path = Path(source)
    return material_from_dict(
        data, name=str(path), base_dir=Path(base_dir) if base_dir else path.parent
    )


def is_material_document(data: Any) -> bool:
    """True for a dict that is a material graph rather than a scene."""
    return isinstance(data, dict) and "camera" not in data and ("base" in data or "nodes" in data)


def material_from_dict(data: Any, *, name: str, base_dir: Path) -> MaterialGraph:
    root = Section(data, "", name, MaterialError)
    version = root.raw("version")
    if version != MATERIAL_VERSION:
        root.fail(
            f"unsupported material version {version!r}; this nrender reads version "
            f"{MATERIAL_VERSION}",
            "version",
        )
    title = root.string("name", Path(name).stem if name != "<material dict>" else "")
    root.string("description", "")
    reader = _MaterialReader(root, name, base_dir)
    if root.has("nodes"):
        root_name = root.string("root")
        node = reader.node(root_name, root, "root", depth=0)
        for key in reader.nodes_raw:
            if key not in reader.nodes:
                raise MaterialError(f"{name}: nodes.{key}: defined but not reachable from root")
    else:
        node = reader.stack(root)
    for key in reader.textures_raw:
        if key not in reader.textures:
            raise MaterialError(f"{name}: textures.{key}: defined but never used")
    root.finish()
    return MaterialGraph(root=node, name=title, source=name, textures=dict(reader.textures))


class _MaterialReader:
    def __init__(self, root: Section, name: str, base_dir: Path) -> None:
        self.name = name
        self.base_dir = base_dir
        self.resolution = root.integer("resolution", 512, low=1, high=MAX_TEXTURE_RESOLUTION)
        self.textures_raw = root.mapping("textures", {})
        self.nodes_raw = root.mapping("nodes", {})
        self.textures: dict[str, Texture] = {}
        self.nodes: dict[str, Node] = {}
        self.normal_maps: set[int] = set()  # ids of textures holding normals
        self._resolving: list[str] = []

    # --- references -------------------------------------------------------------------
    def _enter(self, kind: str, key: str, where: Section, at: str | int) -> None:
        chain = [*self._resolving, f"{kind}.{key}"]
        if f"{kind}.{key}" in self._resolving:
            start = chain.index(f"{kind}.{key}")
            where.fail(f"cyclic reference: {' -> '.join(chain[start:])}", at)
        self._resolving.append(f"{kind}.{key}")

    def named_texture(self, key: str, where: Section, at: str | int) -> Texture:
        if key in self.textures:
            return self.textures[key]
        if key not in self.textures_raw:
            defined = ", ".join(sorted(self.textures_raw)) or "none"
            where.fail(f"no texture named {key!r} (defined: {defined})", at)
        self._enter("textures", key, where, at)
        value = self.textures_raw[key]
        texture = self.texture_def(Section(value, f"textures.{key}", self.name, MaterialError))
        self._resolving.pop()
        self.textures[key] = texture
        return texture

    def node(self, key: str, where: Section, at: str | int, depth: int) -> Node:
        if key in self.nodes:
            return self.nodes[key]
        if key not in self.nodes_raw:
            defined = ", ".join(sorted(self.nodes_raw)) or "none"
            where.fail(f"no node named {key!r} (defined: {defined})", at)
        self._enter("nodes", key, where, at)
        s = Section(self.nodes_raw[key], f"nodes.{key}", self.name, MaterialError)
        max_depth = material_limits().mix_depth
        if depth >= max_depth:
            s.fail(f"mix nodes nest deeper than {max_depth}")
        kind = s.string("type", choices=("stack", "mix"))
        if kind == "stack":
            node: Node = self.stack(s)
        else:
            mask = self.param(s, "mask", low=0.0, high=1.0)
            a = self.node(s.string("a"), s, "a", depth + 1)
            b = self.node(s.string("b"), s, "b", depth + 1)
            s.finish()
            node = Mix(mask=mask, a=a, b=b)
        self._resolving.pop()
        self.nodes[key] = node
        return node

    # --- parameters -------------------------------------------------------------------
    def param(
        self,
        s: Section,
        key: str,
        default: Any = None,
        *,
        low: float | None = None,
        high: float | None = None,
    ) -> Texture:
        """A parameter: a number, an RGB list, a texture name or an inline texture."""
        if default is None and not s.has(key):
            s.raw(key)  # required: fails naming the key
        value = s.raw(key, default)
        if isinstance(value, str):
            texture = self.named_texture(value, s, key)
        elif isinstance(value, dict):
            texture = self.texture_def(s.child(value, key))
        else:
            texture = constant(s.check_color(value, key, low=-np.inf))
        self.check_range(texture, s, key, low, high)
        return texture

    def check_range(
        self, texture: Texture, s: Section, key: str, low: float | None, high: float | None
    ) -> None:
        values = (
            texture.image
            if texture.kind == "image"
            else np.stack(
                [texture.value, texture.value2] if texture.kind == "checker" else [texture.value]
            )
        )
        lo, hi = float(np.min(values)), float(np.max(values))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            s.fail("values must be finite", key)
        if low is not None and lo < low:
            s.fail(f"values must be >= {low:g}, got {lo:g}", key)
        if high is not None and hi > high:
            s.fail(f"values must be <= {high:g}, got {hi:g}", key)

    def normal_map(self, s: Section, key: str) -> Texture | None:
        if not s.has(key):
            s.raw(key, None)
            return None
        texture = self.param(s, key)
        if id(texture) not in self.normal_maps:
            s.fail("expected a texture of type 'normal_map'", key)
        return texture

    # --- textures ---------------------------------------------------------------------
    def texture_def(self, t: Section) -> Texture:
        kind = t.string("type", choices=TEXTURE_TYPES)
        if kind == "constant":
            texture = constant(t.color("value", low=-np.inf))
            t.finish()
            return texture
        if kind == "checker":
            even, odd = t.color_pair("colors", low=-np.inf)
            texture = Texture(
                kind="checker", value=even, value2=odd, uv_scale=t.uv_scale("tiling", 8.0)
            )
            t.finish()
            return texture
        if kind == "image":
            image = self.image(t, "path")
            texture = Texture(kind="image", image=image, path=str(t.data["path"]))
        elif kind == "normal_map":
            if t.has("path"):
                encoded = self.image(t, "path", srgb=False)
                n = encoded * 2.0 - 1.0
                length = np.linalg.norm(n, axis=-1, keepdims=True)
                if (length < 1e-3).any() or (n[..., 2] <= 0).any():
                    t.fail("normal map texels must encode normals with z > 0", "path")
                normals = (n / length).astype(np.float32)
            else:
                height = self.param(t, "height", low=0.0, high=1.0)
                if height.kind != "image":
                    t.fail("height must be an image or procedural texture", "height")
                depth = t.number("depth", 0.002, low=0.0, high=1.0)
                normals = patterns.normal_map_from_height(height.image[..., 0], depth)
            texture = Texture(kind="image", image=normals)
            self.normal_maps.add(id(texture))
        else:
            values = self.pattern(kind, t)
            low = np.broadcast_to(t.color("low", 0.0, low=-np.inf), (3,))
            high = np.broadcast_to(t.color("high", 1.0, low=-np.inf), (3,))
            image = low[None, None, :] + values[..., None] * (high - low)[None, None, :]
            texture = Texture(kind="image", image=image.astype(np.float32))
        texture.uv_scale = t.uv_scale("tiling", 1.0)
        t.finish()
        return texture

    def image(self, t: Section, key: str, srgb: bool | None = None) -> np.ndarray:
        rel = t.string(key)
        if problem := check_path_text(rel):
            t.fail(problem, key)
        path = resolve_path(rel, self.base_dir)
        if srgb is None:
            flag = t.raw("srgb", None)
            if flag is not None and not isinstance(flag, bool):
                t.fail("expected true, false or null", "srgb")
            srgb = flag
        try:
            return read_image(path, srgb=srgb)
        except ImageError as exc:
            t.fail(str(exc), key)

    def pattern(self, kind: str, t: Section) -> np.ndarray:
        res = t.integer("resolution", self.resolution, low=1, high=MAX_TEXTURE_RESOLUTION)
        seed = t.integer("seed", 0, low=0, high=2**31 - 1)
        if kind == "noise":
            return patterns.fbm(
                res,
                frequency=t.integer("frequency", 8, low=1, high=4096),
                octaves=t.integer("octaves", 5, low=1, high=12),
                gain=t.number("gain", 0.5, low=0.0, high=1.0),
                seed=seed,
                warp=t.number("warp", 0.0, low=0.0, high=1.0),
            )
        if kind == "cellular":
            return patterns.cellular(
                res,
                cells=t.integer("cells", 8, low=1, high=1024),
                coverage=t.number("coverage", 0.5, low=0.0, high=1.0),
                softness=t.number("softness", 0.1, low=0.0, high=10.0),
                seed=seed,
                warp=t.number("warp", 0.3, low=0.0, high=4.0),
            )
        if kind == "scratches":
            direction = t.raw("direction", None)
            if direction is not None:
                direction = t.check_number(direction, "direction")
            count = t.integer("count", 200, low=0, high=100000)
            length = t.number("length", 0.15, low=0.0, high=4.0)
            if patterns.scratch_points(res, count, length) > MAX_SCRATCH_POINTS:
                t.fail(
                    f"{count} scratches of length {length:g} at {res}x{res} is too much work; "
                    "use fewer, shorter scratches or a lower resolution",
                    "count",
                )
            return patterns.scratches(
                res,
                count=count,
                length=length,
                width=t.number("width", 1.0, low=0.0, high=16.0),
                direction=direction,
                spread=t.number("spread", 10.0, low=0.0, high=180.0),
                seed=seed,
            )
        if kind == "dust":
            return patterns.dust(
                res,
                frequency=t.integer("frequency", 6, low=1, high=1024),
                coverage=t.number("coverage", 0.3, low=0.0, high=1.0),
                seed=seed,
            )
        # remap: a smoothstep of another texture's first channel between two thresholds.
        source = self.param(t, "input")
        if source.kind != "image":
            t.fail("input must be an image or procedural texture", "input")
        edges = t.vector("threshold", 2, [0.0, 1.0])
        if edges[1] < edges[0]:
            t.fail("threshold must be [low, high] with low <= high", "threshold")
        x = source.image[..., 0].astype(np.float64)
        span = max(edges[1] - edges[0], 1e-6)
        s = np.clip((x - edges[0]) / span, 0.0, 1.0)
        if t.boolean("invert", False):
            s = 1.0 - s
        return (s * s * (3.0 - 2.0 * s)).astype(np.float32)

    # --- stacks and lobes -------------------------------------------------------------
    def stack(self, s: Section) -> Stack:
        limits = material_limits()
        base = s.sequence("base")
        if not 1 <= len(base) <= limits.base_lobes:
            s.fail(f"expected 1 to {limits.base_lobes} base lobes, got {len(base)}", "base")
        lobes = [self.lobe(s.child(item, f"base[{i}]")) for i, item in enumerate(base)]
        raw_layers = s.sequence("layers", [])
        if len(raw_layers) > limits.layers:
            s.fail(f"at most {limits.layers} layers, got {len(raw_layers)}", "layers")
        layers = [self.layer(s.child(item, f"layers[{i}]")) for i, item in enumerate(raw_layers)]
        normal_map = self.normal_map(s, "normal_map")
        s.finish()
        if any(lobe.type == "dielectric" for lobe in lobes) and (len(lobes) > 1 or layers):
            s.fail("a dielectric base lobe must be the only lobe, with no layers", "base")
        if layers:
            for i, lobe in enumerate(lobes):
                if (
                    lobe.type in ("conductor", "flakes")
                    and _min(lobe.roughness) < MIN_COATED_ROUGHNESS
                ):
                    s.fail(
                        f"under a layer a {lobe.type} lobe needs roughness >= "
                        f"{MIN_COATED_ROUGHNESS} (a perfect mirror inside a stack cannot be "
                        "evaluated)",
                        f"base[{i}].roughness",
                    )
            for j, layer in enumerate(layers[1:], start=1):
                if _min(layer.roughness) < MIN_COATED_ROUGHNESS and layer.ior != 1.0:
                    s.fail(
                        f"layers below the top need roughness >= {MIN_COATED_ROUGHNESS} "
                        "(a perfectly smooth interface inside a stack cannot be evaluated)",
                        f"layers[{j}].roughness",
                    )
        return Stack(lobes=lobes, layers=layers, normal_map=normal_map)

    def lobe(self, s: Section) -> Lobe:
        kind = s.string("type", choices=LOBE_TYPES)
        lobe = Lobe(kind, weight=self.param(s, "weight", 1.0, low=0.0, high=1.0))
        if kind == "diffuse":
            lobe.color = self.param(s, "albedo", 0.5, low=0.0, high=1.0)
        elif kind == "conductor":
            self.conductor(s, lobe)
            lobe.roughness = self.param(s, "roughness", 0.3, low=0.0, high=1.0)
            lobe.anisotropy = self.param(s, "anisotropy", 0.0, low=-1.0, high=1.0)
        elif kind == "dielectric":
            lobe.ior = s.number("ior", 1.5, low=0.2, high=4.0)
            lobe.roughness = self.param(s, "roughness", 0.0, low=0.0, high=1.0)
        elif kind == "sheen":
            lobe.color = self.param(s, "color", 1.0, low=0.0, high=1.0)
            lobe.roughness = self.param(s, "roughness", 0.5, low=0.0, high=1.0)
        else:
            lobe.color = self.param(s, "color", 0.9, low=0.0, high=1.0)
            lobe.color2 = self.param(s, "edge_tint", s.data.get("color", 0.9), low=0.0, high=1.0)
            lobe.roughness = self.param(s, "roughness", 0.2, low=MIN_FLAKE_ROUGHNESS, high=1.0)
            lobe.flake_scale = s.number("scale", 200.0, low=1.0, high=1e6)
            lobe.flake_spread = s.number("spread", 0.3, low=0.0, high=4.0)
            lobe.flake_density = s.number("density", 0.5, low=0.0, high=1.0)
        s.finish()
        return lobe

    def conductor(self, s: Section, lobe: Lobe) -> None:
        if s.has("metal"):
            metal = s.string("metal", choices=tuple(METALS))
            eta, k = METALS[metal]
            lobe.conductor_mode = "ior"
            lobe.color, lobe.color2 = constant(eta), constant(k)
        elif s.has("eta") or s.has("k"):
            lobe.conductor_mode = "ior"
            lobe.color = self.param(s, "eta", low=0.001, high=100.0)
            lobe.color2 = self.param(s, "k", low=0.0, high=100.0)
        else:
            lobe.color = self.param(s, "reflectivity", 0.9, low=0.0, high=1.0)
            lobe.color2 = self.param(
                s, "edge_tint", s.data.get("reflectivity", 0.9), low=0.0, high=1.0
            )

    def layer(self, s: Section) -> Layer:
        layer = Layer(
            ior=s.number("ior", 1.5, low=0.2, high=4.0),
            roughness=self.param(s, "roughness", 0.0, low=0.0, high=1.0),
            thickness=s.number("thickness", 0.1, low=0.0, high=1000.0, low_open=True),
            absorption=self.param(s, "absorption", 0.0, low=0.0, high=1e4),
            normal_map=self.normal_map(s, "normal_map"),
        )
        medium = s.section("scattering", None)
        if medium is not None:
            layer.scattering = medium.number("density", 1.0, low=0.0, high=1e4)
            layer.scatter_albedo = self.param(medium, "albedo", 0.8, low=0.0, high=1.0)
            layer.phase_g = medium.number("anisotropy", 0.0, low=-0.99, high=0.99)
            medium.finish()
        s.finish()
        return layer


def _min(texture: Texture) -> float:
    if texture.kind == "image":
        return float(np.min(texture.image[..., 0]))
    if texture.kind == "checker":
        return float(min(texture.value[0], texture.value2[0]))
    return float(texture.value[0])
