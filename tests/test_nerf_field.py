"""NeRF volumes in Slang (shaders/fields/nerf.slang) against the torch model they mirror
(renderer/fields/nerf.py, marching.py): the field at points, the march along rays, and
the world placement the path tracer uses."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from renderer.fields import HashGridConfig
from renderer.fields.marching import TRANSMITTANCE_STOP, composite, sample_rays
from renderer.fields.nerf import NerfConfig, NerfField
from renderer.fields.nerf_buffers import NerfVolumeBuffers, PlacedField
from renderer.fields.nerf_queries import NerfQueries
from renderer.fields.nfield import NerfFile
from renderer.fields.occupancy import COARSE_FACTOR, OccupancyGrid, coarse_occupancy
from renderer.image_io import srgb_to_linear

# Small but complete: dense and hashed levels, every SH band, geometry features.
CONFIG = NerfConfig(
    grid=HashGridConfig(levels=4, features=2, log2_table=10, base_resolution=4, max_resolution=48),
    density_width=16,
    geometry_features=7,
    color_width=16,
    color_layers=2,
    sh_degree=4,
    occupancy_resolution=16,
    march_steps=96,
)
AABB = [[-1.0, -0.6, -0.8], [1.2, 0.8, 0.9]]


def random_field(
    seed: int, occupied_share: float = 0.6, density_offset: float = 0.0, config: NerfConfig = CONFIG
) -> NerfFile:
    """A field with random table and weights (unit-scale values, so every level and
    feature matters) and a random occupancy grid; `density_offset` is added to the raw
    density (larger: more rays turn opaque)."""
    field = NerfField(config, torch.tensor(AABB), seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        field.grid.table.copy_(torch.randn(field.grid.table.shape, generator=generator))
        for p in [*field.density.parameters(), *field.color.parameters()]:
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        field.density.layers[-1].bias[0] += density_offset
    occupancy = OccupancyGrid(config.occupancy_resolution)
    cells = config.occupancy_resolution**3
    occupancy.occupied = torch.rand(cells, generator=generator) < occupied_share
    return NerfFile(field, occupancy)


def pcg_hash(v: np.ndarray) -> np.ndarray:
    """shaders/core/rng.slang's pcg_hash, in uint32 arithmetic."""
    v = np.asarray(v, np.uint64)
    state = (v * 747796405 + 2891336453) & 0xFFFFFFFF
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & 0xFFFFFFFF
    return ((word >> 22) ^ word).astype(np.uint32)


def nerf_jitter(seed: np.ndarray, volume: int) -> np.ndarray:
    """fields/nerf.slang's nerf_jitter: the lattice offset of a volume for a ray seed."""
    h = pcg_hash(np.asarray(seed, np.uint32) ^ pcg_hash(np.uint32(volume + 0x632BE5AB)))
    return ((h >> 8).astype(np.float32) * np.float32(1.0 / 16777216.0)).astype(np.float32)


def torch_march(
    nerf: NerfFile,
    origins: np.ndarray,
    dirs: np.ndarray,
    jitter: np.ndarray,
    t_far: np.ndarray,
    decode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """marching.py's composite with the early stop (the path tracer's rule); colours
    decoded from sRGB per sample when `decode`."""
    t = torch.from_numpy
    with torch.no_grad():
        samples = sample_rays(
            nerf.field,
            nerf.occupancy,
            t(origins.astype(np.float32)),
            t(dirs.astype(np.float32)),
            t(jitter.astype(np.float32)),
            t_far=t(t_far.astype(np.float32)),
        )
        if len(samples.points):
            sigma, rgb = nerf.field(samples.points, samples.dirs)
        else:
            sigma, rgb = torch.zeros(0), torch.zeros((0, 3))
        if decode:
            rgb = t(srgb_to_linear(rgb.numpy()))
        color, remaining = composite(samples, sigma, rgb, nerf.field.step, early_stop=True)
    return color.numpy(), remaining.numpy()


@pytest.fixture(scope="module")
def field_a() -> NerfFile:
    return random_field(seed=1, density_offset=-1.0)


@pytest.fixture(scope="module")
def queries(cpu, field_a: NerfFile) -> NerfQueries:
    return NerfQueries([PlacedField(field_a, np.eye(4))], cpu)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_slang_field_equals_the_torch_model(queries: NerfQueries, field_a: NerfFile) -> None:
    # Catches: SH terms in another order or with a sign flipped, geometry features fed to
    # the colour network from the wrong density output, the density's cap or exponential
    # missing, a level's table read at another volume's offset, points encoded without
    # the box's normalisation. Both sides run float32 MLPs that sum in different orders:
    # sigma agrees to 1e-5 relative (exp of a raw value good to ~1e-6), rgb to 1e-5
    # (4e-7 and 4e-7 seen).
    rng = np.random.default_rng(2)
    lo, hi = np.array(AABB[0]), np.array(AABB[1])
    points = rng.uniform(lo - 0.1, hi + 0.1, (3000, 3)).astype(np.float32)  # some outside
    dirs = unit(rng.normal(size=(3000, 3)))
    dirs[:6] = np.concatenate([np.eye(3), -np.eye(3)])  # axis directions
    sigma, rgb = queries.field(points, dirs)
    with torch.no_grad():
        ref_sigma, ref_rgb = field_a.field(torch.from_numpy(points), torch.from_numpy(dirs))
    ref_sigma, ref_rgb = ref_sigma.numpy(), ref_rgb.numpy()
    assert np.percentile(ref_sigma, 1) < 1 < 20 < np.percentile(ref_sigma, 99)  # a real range
    np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-5)
    np.testing.assert_allclose(rgb, ref_rgb, atol=1e-5)
    assert rgb.std(axis=0).min() > 0.05  # colours vary: the test sees the networks


def march_rays(count: int, seed: int) -> tuple[np.ndarray, ...]:
    """Rays of every kind: from outside through the box, starting inside it, missing it,
    axis-aligned (zero direction components), and cut short by t_far."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array(AABB[0]), np.array(AABB[1])
    n = count // 4
    outside = rng.uniform(-4, 4, (n, 3))
    through = unit(rng.uniform(lo, hi, (n, 3)) - outside)
    inside = rng.uniform(lo, hi, (n, 3))
    missing = np.tile([5.0, 5.0, 5.0], (n, 1))
    away = unit(rng.uniform(0.1, 1.0, (n, 3)))
    axis_o = rng.uniform(lo, hi, (n, 3))
    axis_o[:, 0] = -3.0
    origins = np.concatenate([outside, inside, missing, axis_o]).astype(np.float32)
    dirs = np.concatenate(
        [through, unit(rng.normal(size=(n, 3))), away, np.tile([1.0, 0.0, 0.0], (n, 1))]
    ).astype(np.float32)
    jitter = rng.random(len(origins)).astype(np.float32)
    t_far = np.where(rng.random(len(origins)) < 0.3, rng.uniform(0.0, 5.0, len(origins)), np.inf)
    return origins, dirs, jitter, t_far.astype(np.float32)


def test_slang_march_equals_torch_compositing(queries: NerfQueries, field_a: NerfFile) -> None:
    # Catches: another sample lattice (t0 + k step without the jitter, or k from 1), the
    # occupancy test skipped or read with another bit order, empty-space skipping that
    # jumps over an occupied cell's samples, T taken after a sample instead of before,
    # no early stop (or a stop that leaves T > 0), t_far or the box exit not bounding
    # the samples, and rays that start inside the box clipped at their entry behind the
    # origin. Colours (sRGB space, as the network gives them) and T agree to 1e-5 (3e-7
    # seen: the samples are the same, only the MLPs' summation order differs).
    origins, dirs, jitter, t_far = march_rays(1600, seed=3)
    color, transmittance = queries.march(origins, dirs, jitter, t_far)
    ref_color, ref_t = torch_march(field_a, origins, dirs, jitter, t_far)
    np.testing.assert_allclose(color, ref_color, atol=1e-5)
    np.testing.assert_allclose(transmittance, ref_t, atol=1e-5)
    np.testing.assert_array_equal(transmittance == 0, ref_t == 0)
    # every case occurred: opaque rays, partly transparent ones, misses, t_far cuts
    assert 0.1 < (ref_t == 0).mean() < 0.7
    assert ((ref_t > TRANSMITTANCE_STOP) & (ref_t < 0.9)).mean() > 0.05
    misses = slice(800, 1200)
    assert np.all(transmittance[misses] == 1) and np.all(color[misses] == 0)
    cut = np.isfinite(t_far)
    assert (ref_t[cut] > ref_t[~cut].mean()).mean() > 0.5  # shorter rays let more through
    # the density-only march of shadow rays leaves exactly the same transmittance
    _, shadow_t = queries.march(origins, dirs, jitter, t_far, with_color=False)
    np.testing.assert_array_equal(shadow_t, transmittance)


def assert_march_matches_torch(cpu, nerf: NerfFile, rays: tuple[np.ndarray, ...]) -> np.ndarray:
    """The Slang march of `nerf` (placed as is) equals torch's on `rays` (march_rays'
    tuple) to 1e-5 in colour and transmittance; returns torch's transmittance."""
    q = NerfQueries([PlacedField(nerf, np.eye(4))], cpu)
    color, transmittance = q.march(*rays)
    ref_color, ref_t = torch_march(nerf, *rays)
    np.testing.assert_allclose(color, ref_color, atol=1e-5)
    np.testing.assert_allclose(transmittance, ref_t, atol=1e-5)
    return ref_t


def test_sparse_occupancy_is_skipped_exactly(cpu) -> None:
    # Catches: empty-space skipping that jumps past the first lattice sample of the next
    # occupied cell (or lands between lattice points): with one cell in ten occupied,
    # most of a ray's samples are skipped, and the result must still be the per-sample
    # test's.
    nerf = random_field(seed=4, occupied_share=0.1, density_offset=2.0)
    ref_t = assert_march_matches_torch(cpu, nerf, march_rays(1200, seed=5))
    assert (ref_t < 0.9).mean() > 0.2


def test_world_placement_marches_in_field_units(cpu) -> None:
    # Catches: the march taken in world distances under a scaled placement (the step and
    # sigma are per field unit), the world ray's direction renormalised before the
    # transform (wrong t_far), the colour network given the world direction instead of
    # the field-space one, no sRGB decode of the samples, and two volumes composited in
    # list order instead of the order the ray enters them. Reference: torch marching of
    # the rays mapped to field space by float64 numpy, colours decoded per sample.
    a = random_field(seed=6, density_offset=1.5)
    b = random_field(seed=7, density_offset=0.5)
    rng = np.random.default_rng(8)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    placements = []
    for offset in ([0.3, 0.0, 0.0], [0.0, 0.2, 4.0]):
        m = np.eye(4)
        m[:3, :3] = rotation @ np.diag([1.7, 0.6, 1.1])
        m[:3, 3] = offset
        placements.append(m)
    # volume 1 is listed second but sits first along the rays (they go -Z from z = 9)
    volumes = [PlacedField(a, placements[0]), PlacedField(b, placements[1])]
    q = NerfQueries(volumes, cpu)
    n = 600
    origins = np.tile([0.0, 0.0, 9.0], (n, 1)) + rng.uniform(-0.8, 0.8, (n, 3)) * [1, 1, 0]
    targets = rng.uniform(-0.8, 0.8, (n, 3)) * [1, 1, 0]
    dirs = (targets - origins) * rng.uniform(0.5, 2.0, (n, 1))  # not unit
    t_end = np.where(rng.random(n) < 0.3, rng.uniform(3.0, 10.0, n), 3e38) / np.linalg.norm(
        dirs, axis=1
    )
    seeds = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    color, transmittance = q.composite(origins, dirs, seeds, t_end)

    total_color = np.zeros((n, 3))
    total_t = np.ones(n)
    for index in (1, 0):  # the order of entry
        placed = volumes[index]
        inverse = np.linalg.inv(placed.world_from_field)
        o_f = origins @ inverse[:3, :3].T + inverse[:3, 3]
        d_f = dirs @ inverse[:3, :3].T
        s = np.linalg.norm(d_f, axis=1)
        c, t = torch_march(
            placed.nerf,
            o_f,
            d_f / s[:, None],
            nerf_jitter(seeds, index),
            np.minimum(t_end * s, 3e38),
            decode=True,
        )
        total_color += total_t[:, None] * c
        total_t *= t
    # float32 placement in the kernel vs float64 here: 2e-5 seen
    np.testing.assert_allclose(color, total_color, atol=1e-4)
    np.testing.assert_allclose(transmittance, total_t, atol=1e-4)
    assert (total_t < 0.9).mean() > 0.3 and (total_t > 0).mean() > 0.2


def test_a_field_placed_twice_is_packed_once(cpu, field_a: NerfFile) -> None:
    # Catches: every placement uploading its own copy of the tables (a scene that repeats
    # one field many times would multiply its memory).
    kernel = cpu.kernel("fields/nerf_query.slang", "nerf_query")
    once = NerfVolumeBuffers(cpu, kernel, [PlacedField(field_a, np.eye(4))])
    twice = NerfVolumeBuffers(cpu, kernel, [PlacedField(field_a, np.eye(4))] * 2)
    assert twice.count == 2
    for name in ("tables", "occupancy"):
        assert twice.buffers[name].size == once.buffers[name].size, name
    assert twice.net["weights"].size == once.net["weights"].size


def test_coarse_blocks_hold_any_of_their_cells() -> None:
    # Catches: blocks indexed in another order than the cells (i fastest), and the cells
    # of a partial block at the grid's edge (12 = 8 + 4) left out of it.
    g, factor = 12, 8
    occupied = torch.zeros(g**3, dtype=torch.bool)
    for i, j, k in [(0, 0, 0), (11, 0, 0), (3, 10, 0), (9, 9, 11)]:
        occupied[i + g * (j + g * k)] = True
    blocks = coarse_occupancy(occupied, g, factor)
    expected = np.zeros(8, bool)
    for i, j, k in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 1)]:
        expected[i + 2 * (j + 2 * k)] = True
    np.testing.assert_array_equal(blocks, expected)


def test_empty_blocks_are_skipped_exactly(cpu) -> None:
    # Catches: a block's bit read from another block (an occupied cell skipped as if its
    # block were empty), a block's box placed in cell units instead of block units (the
    # jump overshoots into the next block), and a jump past the first lattice sample of
    # an occupied block. A 32^3 grid in 4^3 blocks of 8^3: a third of the blocks hold
    # occupied cells (a third of theirs), the rest are empty.
    config = replace(CONFIG, occupancy_resolution=32, march_steps=160)
    nerf = random_field(seed=7, density_offset=1.0, config=config)
    g = torch.Generator().manual_seed(7)
    cells = torch.rand(32, 32, 32, generator=g) < 0.3  # [k, j, i]
    block_used = torch.rand(4, 4, 4, generator=g) < 0.35
    used = block_used.repeat_interleave(8, 0).repeat_interleave(8, 1).repeat_interleave(8, 2)
    nerf.occupancy.occupied = (cells & used).reshape(-1)
    blocks = coarse_occupancy(nerf.occupancy.occupied, 32, COARSE_FACTOR)
    assert 0.2 < blocks.mean() < 0.5
    ref_t = assert_march_matches_torch(cpu, nerf, march_rays(2000, seed=8))
    assert (ref_t < 0.9).mean() > 0.2 and (ref_t[:500] == 1).mean() > 0.05
