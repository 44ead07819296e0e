"""`.nmat` files: a baked neural material.

A safetensors file (no pickle) holding

    latents.{l}            fp16 [h_l, w_l, C]  latent pyramid, finest level 0, row 0 = top (v = 1)
    brdf.frames.weight     fp32 [12, C]        learned shading frames
    brdf.raw_limit         fp32 []             output guard (decoder.py)
    brdf.mlp.layers.{i}.*  fp32                BRDF decoder
    sampler.mlp.layers.{i}.* fp32              learned sampler
    energy.albedo          fp32 [16, 16, 8]    optional: directional albedo per uv cell and
                                               view angle (energy.py), for the renderer's
                                               energy normalisation; files without it get
                                               it computed when loaded for rendering

and header metadata (strings): format, format_version, nrender_version, architecture
(JSON, see architecture.py), pyramid (JSON list of [h, w]), source (material path),
source_hash (renderer.neural.parameters.material_hash), preset (JSON), steps (JSON),
losses (JSON). Loading checks every name, shape, dtype and value and reports the first
problem as one NeuralMaterialError naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import NeuralMaterialError, NrenderError
from ..input_files import parse_json
from ..tensor_files import check_header, check_tensors, read_tensor_file, write_tensor_file
from ..version import __version__
from .architecture import ENERGY_ANGLES, ENERGY_GRID, Architecture
from .decoder import NeuralBrdf
from .pyramid import LatentPyramid
from .sampler import NeuralSampler

FORMAT = "nrender.nmat"
FORMAT_VERSION = "1"
REQUIRED_METADATA = (
    "format",
    "format_version",
    "nrender_version",
    "architecture",
    "pyramid",
    "source",
    "source_hash",
    "preset",
    "steps",
    "losses",
)
MAX_FILE_BYTES = 1 << 31
ENERGY_TENSOR = "energy.albedo"
ENERGY_SHAPE = (ENERGY_GRID, ENERGY_GRID, ENERGY_ANGLES)


@dataclass
class NeuralMaterial:
    """A baked material: latents, decoder, sampler and where they came from."""

    arch: Architecture
    levels: list[torch.Tensor]  # fp16 [h, w, C] per level
    brdf: NeuralBrdf
    sampler: NeuralSampler
    metadata: dict[str, str] = field(default_factory=dict)
    energy: torch.Tensor | None = None  # [G, G, A] albedo table (energy.py), if stored
    _pyramid: LatentPyramid | None = field(default=None, init=False, repr=False, compare=False)

    # --- evaluation (torch, for reports and tests) ----------------------------------
    def pyramid(self) -> LatentPyramid:
        """The levels as one float32 lookup table, built once (a 2048^2 pyramid is 180 MB
        in float32: the report reads it dozens of times)."""
        if self._pyramid is None:
            flat = torch.cat(
                [lvl.float().reshape(-1, self.arch.latent_channels) for lvl in self.levels]
            )
            self._pyramid = LatentPyramid(self.arch, flat)
        return self._pyramid

    def evaluate(
        self,
        uv: torch.Tensor | np.ndarray,
        wi: torch.Tensor | np.ndarray,
        wo: torch.Tensor | np.ndarray,
        level: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor | np.ndarray:
        """[N, 3] f * cos(theta_i) at uv [N, 2] (level [N], default finest). Takes what
        MaterialQueries.evaluate takes, in the same order: numpy arrays give a numpy
        array back, torch tensors a tensor."""
        as_numpy = isinstance(uv, np.ndarray)
        uv, wi, wo = (torch.as_tensor(a, dtype=torch.float32) for a in (uv, wi, wo))
        if level is None:
            level = torch.zeros(len(uv), dtype=torch.long)
        level = torch.as_tensor(level, dtype=torch.long)
        with torch.no_grad():
            f = self.brdf(self.pyramid()(uv, level), wi, wo)
        return f.numpy() if as_numpy else f

    # --- files -----------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"latents.{i}": lvl.contiguous() for i, lvl in enumerate(self.levels)}
        for prefix, module in (("brdf", self.brdf), ("sampler", self.sampler)):
            for name, value in module.state_dict().items():
                out[f"{prefix}.{name}"] = value.detach().float().contiguous()
        if self.energy is not None:
            out[ENERGY_TENSOR] = self.energy.detach().float().contiguous()
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        meta = {
            **self.metadata,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "nrender_version": __version__,
            "architecture": self.arch.to_json(),
            "pyramid": json.dumps([list(s) for s in self.arch.levels]),
        }
        write_tensor_file(
            path,
            self.tensors(),
            meta,
            REQUIRED_METADATA,
            lambda problem: NeuralMaterialError(f"{path}: {problem}"),
        )

    @staticmethod
    def load(path: str | os.PathLike[str]) -> NeuralMaterial:
        return _load(Path(path))


def expected_shapes(arch: Architecture) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    for i, (h, w) in enumerate(arch.levels):
        shapes[f"latents.{i}"] = ((h, w, arch.latent_channels), torch.float16)
    for prefix, module in (("brdf", NeuralBrdf(arch)), ("sampler", NeuralSampler(arch))):
        for name, value in module.state_dict().items():
            shapes[f"{prefix}.{name}"] = (tuple(value.shape), torch.float32)
    return shapes


def _load(path: Path) -> NeuralMaterial:
    def fail(problem: str) -> NeuralMaterialError:
        return NeuralMaterialError(f"{path}: {problem}")

    meta, tensors = read_tensor_file(path, fail, MAX_FILE_BYTES, "a neural material")
    check_header(
        meta, FORMAT, FORMAT_VERSION, REQUIRED_METADATA, fail, "a neural material", "bake it again"
    )
    try:
        arch = Architecture.from_json(meta["architecture"])
    except (ValueError, TypeError, OverflowError, NrenderError) as exc:  # keys, sizes
        raise fail(f"bad architecture in the header: {exc}") from None
    try:
        pyramid = [tuple(s) for s in parse_json(meta["pyramid"], "pyramid", NrenderError)]
    except (TypeError, NrenderError):
        raise fail("bad pyramid shapes in the header") from None
    if pyramid != arch.levels:
        raise fail(f"header pyramid {pyramid} does not match the architecture's {arch.levels}")
    expected = expected_shapes(arch)
    if ENERGY_TENSOR in tensors:
        expected[ENERGY_TENSOR] = (ENERGY_SHAPE, torch.float32)
    check_tensors(tensors, expected, fail)
    brdf, sampler = NeuralBrdf(arch), NeuralSampler(arch)
    for prefix, module in (("brdf", brdf), ("sampler", sampler)):
        module.load_state_dict(
            {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        )
    levels = [tensors[f"latents.{i}"] for i in range(len(arch.levels))]
    return NeuralMaterial(arch, levels, brdf, sampler, meta, tensors.get(ENERGY_TENSOR))


def read_header(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The header metadata of a `.nmat` file, or None when it is absent or unreadable
    (used to skip bakes whose source is unchanged)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None
    return meta if meta.get("format") == FORMAT else None
