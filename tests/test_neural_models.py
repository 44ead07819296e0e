"""Neural material building blocks: shapes, frames, the sampler's density, the pyramid
lookup (against the Slang texture lookup), parameter stacks and training directions."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from renderer.errors import NrenderError
from renderer.materials import MaterialQueries, load_material, material_from_dict
from renderer.neural.architecture import DECODER_SIZES, Architecture
from renderer.neural.decoder import NeuralBrdf
from renderer.neural.directions import sample_levels, training_pairs
from renderer.neural.frames import ShadingFrames
from renderer.neural.parameters import (
    _lookup,
    downsample,
    material_hash,
    native_resolution,
    parameter_stack,
    spatial_textures,
)
from renderer.neural.pyramid import LatentPyramid, LevelIndex
from renderer.neural.sampler import NeuralSampler

CONDUCTOR = REPO / "tests" / "data" / "rough_conductor.json"


def test_architecture_levels_and_json() -> None:
    arch = Architecture(parameter_channels=5, width=8, height=2)
    assert arch.levels == [(2, 8), (1, 4), (1, 2), (1, 1)]
    assert Architecture.from_json(arch.to_json()) == arch
    assert arch.decoder_inputs == 20 and arch.sampler_inputs == 11
    with pytest.raises(NrenderError, match="power of two"):
        Architecture(parameter_channels=1, width=12, height=4)
    with pytest.raises(ValueError, match="unknown architecture keys"):
        Architecture.from_json('{"parameter_channels": 1, "width": 1, "height": 1, "depth": 3}')


@pytest.mark.parametrize("size", sorted(DECODER_SIZES))
def test_decoder_shapes(size: str) -> None:
    arch = Architecture(parameter_channels=1, width=1, height=1, decoder_hidden=DECODER_SIZES[size])
    brdf = NeuralBrdf(arch)
    sizes = [layer.in_features for layer in brdf.mlp.layers] + [3]
    assert sizes == [20, *DECODER_SIZES[size], 3]
    assert brdf.frames.weight.shape == (12, 8)
    assert all(layer.bias is not None for layer in brdf.mlp.layers)
    n = 64
    out = brdf(torch.randn(n, 8), _unit(torch.randn(n, 3)), _unit(torch.randn(n, 3)))
    assert out.shape == (n, 3) and bool((out > 0).all())


def _unit(v: torch.Tensor) -> torch.Tensor:
    v = v.clone()
    v[:, 2] = v[:, 2].abs() + 0.05
    return v / v.norm(dim=-1, keepdim=True)


def test_zero_frames_are_the_geometric_frame() -> None:
    frames = ShadingFrames(8)
    wi, wo = _unit(torch.randn(16, 3)), _unit(torch.randn(16, 3))
    out = frames(torch.randn(16, 8), wi, wo)
    expected = torch.cat([wi, wo, wi, wo], dim=-1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_learned_frames_are_orthonormal() -> None:
    torch.manual_seed(1)
    frames = ShadingFrames(8)
    torch.nn.init.normal_(frames.weight, std=0.5)
    wi, wo = _unit(torch.randn(256, 3)), _unit(torch.randn(256, 3))
    out = frames(torch.randn(256, 8), wi, wo)
    # a rotation keeps lengths: each (T, B, N) coordinate triple of a unit vector is unit
    for k in range(4):
        assert torch.allclose(out[:, 3 * k : 3 * k + 3].norm(dim=-1), torch.ones(256), atol=1e-5)


def _random_lobes(n: int, seed: int) -> tuple[NeuralSampler, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    arch = Architecture(parameter_channels=1, width=1, height=1)
    sampler = NeuralSampler(arch)
    for layer in sampler.mlp.layers:
        torch.nn.init.normal_(layer.weight, std=0.6)
    latent = torch.randn(1, 8).repeat(n, 1)
    wo = _unit(torch.randn(1, 3)).repeat(n, 1)
    return sampler, latent, wo


def _sphere_grid(n_theta: int, n_phi: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = (torch.arange(n_theta, dtype=torch.float64) + 0.5) / n_theta * math.pi
    p = (torch.arange(n_phi, dtype=torch.float64) + 0.5) / n_phi * 2 * math.pi
    tt, pp = torch.meshgrid(t, p, indexing="ij")
    dirs = torch.stack([tt.sin() * pp.cos(), tt.sin() * pp.sin(), tt.cos()], -1).reshape(-1, 3)
    area = (tt.sin() * (math.pi / n_theta) * (2 * math.pi / n_phi)).reshape(-1)
    return dirs.float(), area.float()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampler_density_matches_its_samples(seed: int) -> None:
    """The pdf integrates to the fraction of valid samples, and a histogram of samples in
    polar bands matches the pdf integrated over those bands."""
    n = 200_000
    sampler, latent, wo = _random_lobes(n, seed)
    with torch.no_grad():
        lobes = sampler.lobes(latent, wo)
        wi, valid = NeuralSampler.sample(lobes, wo, torch.rand(n, 3))
        dirs, area = _sphere_grid(400, 800)
        m = len(dirs)
        grid_lobes = sampler.lobes(latent[:1].repeat(m, 1), wo[:1].repeat(m, 1))
        density = NeuralSampler.pdf(grid_lobes, wo[:1].repeat(m, 1), dirs)
    mass = float((density * area).sum())
    valid_fraction = float(valid.float().mean())
    assert 0.0 < mass <= 1.0 + 2e-3
    assert abs(mass - valid_fraction) < 0.01, (mass, valid_fraction)
    edges = torch.tensor([0.0, 0.15, 0.35, 0.6, 0.9, 1.2, 1.5708])
    theta = torch.acos(wi[valid, 2].clamp(-1, 1))
    grid_theta = torch.acos(dirs[:, 2].clamp(-1, 1))
    for lo, hi in itertools.pairwise(edges):
        observed = float(((theta >= lo) & (theta < hi)).float().sum()) / n
        expected = float((density * area)[(grid_theta >= lo) & (grid_theta < hi)].sum())
        # 5 binomial standard errors plus the midpoint rule's error on the grid
        bound = 5 * math.sqrt(max(expected * (1 - expected), 1e-9) / n) + 2e-3
        assert abs(observed - expected) < bound, (lo, hi, observed, expected)


def test_sampler_pdf_is_zero_below_the_horizon() -> None:
    sampler, latent, wo = _random_lobes(128, 3)
    below = _unit(torch.randn(128, 3)) * torch.tensor([1.0, 1.0, -1.0])
    with torch.no_grad():
        lobes = sampler.lobes(latent, wo)
        assert bool((NeuralSampler.pdf(lobes, wo, below) == 0).all())
        assert bool((NeuralSampler.pdf(lobes, wo, _unit(torch.randn(128, 3))) > 0).any())


def test_pyramid_lookup_matches_the_texture_lookup() -> None:
    """LevelIndex.taps is the twin of image_bilinear: the same image read both ways."""
    rng = np.random.default_rng(3)
    image = rng.random((8, 16, 3), dtype=np.float32)
    arch = Architecture(parameter_channels=1, width=16, height=8, latent_channels=3)
    index = LevelIndex(arch.levels)
    flat = torch.zeros(index.texels, 3)
    flat[: 8 * 16] = torch.from_numpy(image.reshape(-1, 3))
    pyramid = LatentPyramid(arch, flat)
    uv = rng.random((500, 2)) * 3 - 1  # wraps
    got = pyramid(torch.from_numpy(uv).float(), torch.zeros(500, dtype=torch.long))
    from renderer.scene.types import Texture

    want = _lookup(Texture(kind="image", image=image), uv[:, 0], uv[:, 1])
    assert np.allclose(got.detach().numpy(), want, atol=1e-5)


def test_parameter_lookup_matches_the_slang_texture(cpu) -> None:
    """The parameters the encoder sees are the textures the Slang reference reads: a
    diffuse material's f*cos at normal incidence is albedo(uv) / pi."""
    rng = np.random.default_rng(5)
    image = rng.random((16, 16, 3), dtype=np.float32)
    from renderer.scene.types import Texture

    texture = Texture(kind="image", image=image, uv_scale=np.array([2.0, 3.0]))
    from renderer.materials.graph import MaterialGraph

    graph = MaterialGraph.diffuse(texture)
    uv = rng.random((256, 2)).astype(np.float32)
    up = np.tile(np.array([[0, 0, 1.0]], np.float32), (256, 1))
    f = MaterialQueries(graph, cpu).evaluate(uv, up, up)
    want = _lookup(texture, uv[:, 0], uv[:, 1]) / np.pi
    assert np.allclose(f, want, atol=1e-5)


def test_parameter_stack_levels_and_resolution() -> None:
    graph = load_material(CONDUCTOR)
    textures = spatial_textures(graph)
    assert len(textures) == 1 and native_resolution(textures) == (64, 64)
    stack = parameter_stack(graph, 32)  # supersampled 2x2 down to 32^2
    assert stack.channels == 1  # the roughness noise is grey
    assert [lvl.shape[:2] for lvl in stack.levels] == [
        (32, 32),
        (16, 16),
        (8, 8),
        (4, 4),
        (2, 2),
        (1, 1),
    ]
    for fine, coarse in itertools.pairwise(stack.levels):
        assert np.isclose(fine.mean(), coarse.mean(), atol=1e-6)
    assert np.allclose(downsample(stack.levels[0]), stack.levels[1])
    full = parameter_stack(graph, 4096).levels[0]
    assert np.allclose(downsample(full), stack.levels[0], atol=1e-6)


def test_uniform_material_gets_a_single_texel() -> None:
    graph = material_from_dict(
        {"version": 1, "base": [{"type": "diffuse", "albedo": 0.5}]},
        name="flat",
        base_dir=Path("."),
    )
    assert native_resolution(spatial_textures(graph)) == (1, 1)
    stack = parameter_stack(graph, 4096)
    assert stack.channels == 1 and len(stack.levels) == 1


def test_tiling_raises_the_native_resolution() -> None:
    graph = load_material(REPO / "materials" / "leather.json")
    assert native_resolution(spatial_textures(graph)) == (2048, 2048)  # 512 texels tiled 3x


def test_material_hash_follows_content_not_names(tmp_path: Path) -> None:
    text = CONDUCTOR.read_text()
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    c = tmp_path / "c.json"
    a.write_text(text)
    b.write_text(text.replace('"rough_conductor"', '"renamed"'))
    c.write_text(text.replace('"seed": 7', '"seed": 8'))
    ha, hb, hc = (material_hash(load_material(p)) for p in (a, b, c))
    assert ha == hb
    assert ha != hc


def test_training_pairs_are_reproducible_and_above_the_horizon() -> None:
    uv, wi, wo = training_pairs(5000, seed=4)
    uv2, wi2, wo2 = training_pairs(5000, seed=4)
    assert uv.shape == (5000, 2) and wi.shape == wo.shape == (5000, 3)
    assert np.array_equal(wi, wi2) and np.array_equal(uv, uv2) and np.array_equal(wo, wo2)
    assert wi[:, 2].min() > 0 and wo[:, 2].min() > 0
    assert np.allclose(np.linalg.norm(wi, axis=1), 1, atol=1e-6)
    assert (uv >= 0).all() and (uv < 1).all()
    # half-vector crowding: many pairs close to the mirror configuration
    h = wi + wo
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    assert (h[:, 2] > np.cos(0.1)).mean() > 0.15
    _, wi3, _ = training_pairs(5000, seed=5)
    assert not np.array_equal(wi, wi3)


def test_levels_favour_the_finest() -> None:
    g = torch.Generator().manual_seed(0)
    levels = sample_levels(g, 20000, 6)
    counts = torch.bincount(levels, minlength=6).float() / 20000
    assert abs(counts[0] - 0.5) < 0.02
    assert bool((counts[1:] > 0.08).all())
    assert bool((sample_levels(g, 10, 1) == 0).all())


def test_flake_field_is_the_flake_eval_uses(cpu) -> None:
    """MaterialQueries.flakes reports the flakes the Slang BSDF reflects from: empty cells
    reflect nothing, and a present flake's mirror direction is its highlight."""
    graph = material_from_dict(
        {
            "version": 1,
            "base": [
                {
                    "type": "flakes",
                    "color": 0.9,
                    "roughness": 0.1,
                    "scale": 64,
                    "spread": 0.4,
                    "density": 0.5,
                }
            ],
        },
        name="flakes",
        base_dir=Path("."),
    )
    queries = MaterialQueries(graph, cpu)
    lobe = graph.stacks()[0].lobes[0]
    rng = np.random.default_rng(2)
    uv = rng.random((4000, 2)).astype(np.float32)
    flake = queries.flakes(uv, lobe)
    present = flake[:, 3] == 1
    assert set(np.unique(flake[:, 3])) <= {0.0, 1.0}
    assert np.allclose(np.linalg.norm(flake[:, :3], axis=1), 1, atol=1e-5)
    assert (flake[:, 2] > 0).all()
    # the same cell gives the same flake
    cell = np.floor(uv * 64) / 64 + 0.5 / 64
    assert np.array_equal(queries.flakes(cell.astype(np.float32), lobe), flake)
    # every one of the 64^2 cells once: density 0.5, within 4 binomial standard errors
    centres = (np.stack(np.meshgrid(np.arange(64), np.arange(64)), -1).reshape(-1, 2) + 0.5) / 64
    share = queries.flakes(centres.astype(np.float32), lobe)[:, 3].mean()
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / 64**2)
    wo = np.tile(np.array([[0.0, 0.0, 1.0]], np.float32), (len(uv), 1))
    n = flake[:, :3]
    mirror = (2 * n[:, 2:3] * n - wo).astype(np.float32)
    tilted = present & (n[:, 2] < 0.97) & (mirror[:, 2] > 0.2)
    assert tilted.sum() > 200
    f_mirror = queries.evaluate(uv, mirror, wo).sum(1)
    f_normal = queries.evaluate(uv, wo, wo).sum(1)
    assert (f_mirror[~present] == 0).all() and (f_normal[~present] == 0).all()
    assert (f_mirror[tilted] > 5 * f_normal[tilted]).all()


def test_car_paint_parameters_carry_its_flakes(cpu) -> None:
    graph = load_material(REPO / "materials" / "car_paint.json")
    queries = MaterialQueries(graph, cpu)
    stack = parameter_stack(graph, 64, queries.flakes)
    names = stack.channel_names
    assert [n for n in names if n.startswith("flakes")] == [
        "flakes0.x",
        "flakes0.y",
        "flakes0.present",
    ]
    present = stack.levels[0][..., names.index("flakes0.present")]
    # 32x32 supersamples per texel of 64^2 (700 cells per unit): the density, 0.7
    assert abs(present.mean() - 0.7) < 0.02 and present.std() > 0.01
    with pytest.raises(ValueError, match="flake_field"):
        parameter_stack(graph, 8)
