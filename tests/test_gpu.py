"""The same kernels on a GPU device: closed-form answers, traversal parity, CPU/GPU agreement.

Marked `gpu`: skipped where slangpy sees no CUDA or Vulkan adapter.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_mean_close, furnace_sphere_scene
from test_bvh import random_rays, random_soup
from test_integrator import lit_stage

from renderer import Renderer, load_scene
from renderer.accel import TriangleQueries

pytestmark = pytest.mark.gpu


def test_furnace_on_gpu(gpu) -> None:
    result = Renderer(load_scene(furnace_sphere_scene(resolution=64, spp=64)), gpu).render()
    on_sphere = result.albedo[..., 0] == np.float32(0.5)
    assert on_sphere.sum() > 1000
    assert_mean_close(result.radiance[on_sphere], result.variance[on_sphere], 0.5)
    np.testing.assert_array_equal(result.radiance[result.depth == 0], 1.0)


def test_traversal_parity_with_cpu(cpu, gpu) -> None:
    tris = random_soup(3000, 4)
    o, d = random_rays(20000, 6)
    on_gpu = TriangleQueries(gpu, tris)
    on_cpu = TriangleQueries(cpu, tris, bvh=on_gpu.bvh)
    g, c = on_gpu.closest_hit(o, d), on_cpu.closest_hit(o, d)
    np.testing.assert_array_equal(g.triangle, on_gpu.closest_hit_brute_force(o, d).triangle)
    # Compilers may contract differently (FMA): allow a hair of rounding, but not more.
    # The error in t scales with the coordinates (~4 here), not with t itself.
    assert (g.triangle == c.triangle).mean() > 0.999
    both = (g.triangle == c.triangle) & g.hit
    np.testing.assert_allclose(g.t[both], c.t[both], rtol=1e-5, atol=4 * 4e-7)


def test_gpu_render_agrees_with_cpu_and_is_reproducible(cpu, gpu) -> None:
    scene = load_scene(lit_stage(spp=256))
    on_gpu = Renderer(scene, gpu).render()
    on_cpu = Renderer(scene, cpu).render()
    np.testing.assert_array_equal(Renderer(scene, gpu).render().radiance, on_gpu.radiance)
    diff = on_gpu.radiance.mean() - on_cpu.radiance.mean()
    se = np.sqrt(on_gpu.variance.sum() + on_cpu.variance.sum()) / on_gpu.radiance.size
    assert abs(diff) < 5 * se
