"""NeRF volumes on a GPU: on CUDA, whole warps march in lockstep and evaluate the field's
networks on tensor cores (shaders/fields/nerf.slang, neural/coop_mlp.slang); these tests
hold that path to the fp32 per-lane one (neural_mlp="per-lane") and to a torch simulation
of its fp16 arithmetic. On Vulkan both builds are the per-lane path and must agree bit for
bit.

Marked `gpu`: skipped where slangpy sees no CUDA or Vulkan adapter. The bounds below come
from the fp16 arithmetic simulated in torch on the CPU (`fp16_field`), not from a GPU run:
no GPU was lent when they were written.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_mean_close
from nerf_fixtures import METADATA
from test_gpu import _fp16_mlp as fp16_mlp  # the tensor-core arithmetic, simulated
from test_nerf_field import AABB, march_rays, random_field, unit
from test_volumes import AROUND_BALL, stage

from renderer.fields.nerf import DENSITY_RAW_MAX, NerfField
from renderer.fields.nerf_buffers import PlacedField
from renderer.fields.nerf_queries import NerfQueries
from renderer.fields.spherical_harmonics import spherical_harmonics
from renderer.render.renderer import Renderer
from renderer.scene import load_scene

pytestmark = pytest.mark.gpu

# Queries per dispatch: a multiple of the 64-thread groups, so every warp is whole and
# takes the tensor-core path.
WHOLE_WARPS = 64 * 96


def fp16_field(
    field: NerfField, points: torch.Tensor, dirs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw density [B] (before the exponential) and colour [B, 3] with both networks in
    the simulated fp16 arithmetic (the encoding and the SH stay fp32, as on the GPU)."""
    raw = fp16_mlp(field.density, field.grid(field.to_unit(points)))
    sh = spherical_harmonics(dirs, field.config.sh_degree)
    rgb = torch.sigmoid(fp16_mlp(field.color, torch.cat([sh, raw[:, 1:]], -1)))
    return raw[:, 0].clamp(max=DENSITY_RAW_MAX), rgb


def both_builds(volumes: list[PlacedField], gpu) -> tuple[NerfQueries, NerfQueries]:
    return NerfQueries(volumes, gpu), NerfQueries(volumes, gpu, neural_mlp="per-lane")


def test_tensor_core_field_within_the_fp16_bound(gpu) -> None:
    """The field at points in whole warps. Catches, on CUDA: a wrong tile layout, stride
    or bias in the tensor-core networks (far from the simulation), geometry features or
    SH fed to the colour network from the wrong slots, and a dispatch that never takes
    the tensor-core path (then it equals the fp32 per-lane result)."""
    nerf = random_field(seed=1, density_offset=-1.0)
    auto, per_lane = both_builds([PlacedField(nerf, np.eye(4))], gpu)
    rng = np.random.default_rng(4)
    points = rng.uniform(AABB[0], AABB[1], (WHOLE_WARPS, 3)).astype(np.float32)
    dirs = unit(rng.normal(size=(WHOLE_WARPS, 3)))
    sigma, rgb = auto.field(points, dirs)
    sigma_fp32, rgb_fp32 = per_lane.field(points, dirs)
    if gpu.kind != "cuda":
        np.testing.assert_array_equal(sigma, sigma_fp32)
        np.testing.assert_array_equal(rgb, rgb_fp32)
        return
    with torch.no_grad():
        raw_sim, rgb_sim = fp16_field(nerf.field, torch.from_numpy(points), torch.from_numpy(dirs))
    raw = np.log(sigma)
    # Against the simulation only the summation order differs, and now and then a hidden
    # value that rounds to the neighbouring fp16 number (one ulp, ~1e-3 at most here).
    to_sim = np.abs(raw - raw_sim.numpy())
    assert np.median(to_sim) <= 2e-5 and to_sim.max() <= 5e-3, (np.median(to_sim), to_sim.max())
    rgb_to_sim = np.abs(rgb - rgb_sim.numpy()).max(1)
    assert np.median(rgb_to_sim) <= 2e-5 and rgb_to_sim.max() <= 5e-3
    # Against fp32: the simulation of this field differs by a median of 2.7e-4 and a
    # 99.9th percentile of 2.3e-3 in raw density, 2.5e-4 and 1.4e-3 in colour.
    to_fp32 = np.abs(raw - np.log(sigma_fp32))
    assert 2e-5 < np.median(to_fp32) <= 1e-3, np.median(to_fp32)  # > 0: tensor cores ran
    assert np.percentile(to_fp32, 99.9) <= 5e-3
    rgb_to_fp32 = np.abs(rgb - rgb_fp32).max(1)
    assert np.median(rgb_to_fp32) <= 1e-3 and np.percentile(rgb_to_fp32, 99.9) <= 4e-3


def test_lockstep_march_agrees_with_the_per_lane_march(gpu) -> None:
    """Rays of every kind in the same warps (misses, rays from inside, axis-aligned, cut
    short): lanes that miss or stop early feed dummy samples to the warp's networks.
    Catches a dummy lane's sample composited, a lane that stops marching when another
    stops, an early stop lost, and a warp that hangs (the test never returns)."""
    nerf = random_field(seed=1, density_offset=-1.0)
    auto, per_lane = both_builds([PlacedField(nerf, np.eye(4))], gpu)
    origins, dirs, jitter, t_far = march_rays(WHOLE_WARPS, seed=5)
    for with_color in (True, False):
        color, t = auto.march(origins, dirs, jitter, t_far, with_color=with_color)
        color_fp32, t_fp32 = per_lane.march(origins, dirs, jitter, t_far, with_color=with_color)
        if gpu.kind != "cuda":
            np.testing.assert_array_equal(color, color_fp32)
            np.testing.assert_array_equal(t, t_fp32)
            continue
        misses = slice(WHOLE_WARPS // 2, 3 * WHOLE_WARPS // 4)  # march_rays' third quarter
        assert np.all(t[misses] == 1) and np.all(color[misses] == 0)
        # The simulated fp16 march (torch_march over fp16_field) differs from fp32 on
        # these rays by a median of 1.1e-4 and a 99th percentile of 7e-4 in colour, 2e-4
        # in T, with the same opaque rays. An early stop that fp16 moves by a sample
        # changes a colour by up to ~1% (the transmittance left at the stop).
        error = np.abs(color - color_fp32).max(1)
        assert np.median(error) <= 1e-3 and np.percentile(error, 99) <= 0.01
        assert np.mean((t == 0) == (t_fp32 == 0)) >= 0.98
        both = (t > 0) & (t_fp32 > 0)
        assert np.percentile(np.abs(t - t_fp32)[both], 99) <= 5e-3


def test_lockstep_composite_of_two_volumes(gpu) -> None:
    """Two overlapping placed volumes along world rays: the warp marches one volume at a
    time while each lane composites in its own order of entry. Catches a lane that
    marches a volume twice or skips one, and an order taken from the warp instead of the
    lane's ray."""
    a = random_field(seed=1, density_offset=-1.0)
    b = random_field(seed=2, density_offset=-0.5)
    moved = np.eye(4)
    moved[:3, 3] = [0.8, 0.2, -0.3]
    auto, per_lane = both_builds([PlacedField(a, np.eye(4)), PlacedField(b, moved)], gpu)
    rng = np.random.default_rng(6)
    targets = rng.uniform([-1.0, -0.6, -1.1], [2.0, 1.0, 0.9], (WHOLE_WARPS, 3))
    dirs = unit(rng.normal(size=(WHOLE_WARPS, 3)))  # from every side: both orders occur
    origins = (targets - 4.0 * dirs).astype(np.float32)
    seeds = rng.integers(0, 2**32, WHOLE_WARPS, dtype=np.uint32)
    t_end = np.where(rng.random(WHOLE_WARPS) < 0.3, rng.uniform(2.0, 6.0, WHOLE_WARPS), 1e30)
    color, t = auto.composite(origins, dirs, seeds, t_end.astype(np.float32))
    color_fp32, t_fp32 = per_lane.composite(origins, dirs, seeds, t_end.astype(np.float32))
    assert 0.1 < np.mean(t_fp32 == 0) < 0.9  # opaque and transparent rays both occur
    if gpu.kind != "cuda":
        np.testing.assert_array_equal(color, color_fp32)
        return
    error = np.abs(color - color_fp32).max(1)  # bounds as for one volume
    assert np.median(error) <= 1e-3 and np.percentile(error, 99) <= 0.01
    assert np.mean((t == 0) == (t_fp32 == 0)) >= 0.98


@pytest.mark.parametrize("schedule", ["megakernel", "wavefront"])
def test_volume_render_with_and_without_tensor_cores(gpu, tmp_path, schedule: str) -> None:
    """The stage with a field around the ball, tensor-core path on and off: the images
    agree within their noise (they differ by fp16 rounding, which may redirect a path).
    Catches the integrators' warp-wide loops (a path shaded after it ended, a shadow
    ray's transmittance applied to a lane that had none), the wavefront keeping ended
    paths in wave_intersect, and integrators whose warps never reach a volume whole
    (then the two images are equal)."""
    nerf = random_field(seed=11, occupied_share=0.7, density_offset=-1.0)
    nerf.metadata = dict(METADATA)
    nerf.save(tmp_path / "cloud.nfield")
    placement = {**AROUND_BALL, "rotate": [10, 30, 0]}
    scene_dict = stage(spp=32, volumes=[{"nerf": "cloud.nfield", "transform": placement}])
    scene_dict["camera"]["resolution"] = [128, 96]
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(scene_dict))
    scene = load_scene(path)
    auto = Renderer(scene, gpu).render(schedule=schedule)
    per_lane = Renderer(scene, gpu, neural_mlp="per-lane").render(schedule=schedule)
    if gpu.kind != "cuda":
        np.testing.assert_array_equal(auto.radiance, per_lane.radiance)
        return
    # the tensor cores ran in the integrators: fp16 rounding shows in the image
    assert not np.array_equal(auto.radiance, per_lane.radiance)
    assert_mean_close(auto.radiance - per_lane.radiance, auto.variance + per_lane.variance, 0.0)
    assert abs(auto.coverage.mean() - per_lane.coverage.mean()) <= 0.01
