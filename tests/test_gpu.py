"""The same kernels on a GPU device: closed-form answers, traversal parity, CPU/GPU agreement.

Marked `gpu`: skipped where slangpy sees no CUDA or Vulkan adapter.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
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


def test_a_constant_pixel_stays_exact_on_gpu(gpu) -> None:
    # Catches: a GPU compiler folding the compensated pixel sums' (t - sum) - y to zero
    # (Vulkan's may without `precise`), which brings back the 1% drift of plain float32
    # sums at the 2^20-sample cap.
    scene = {
        "version": 1,
        "camera": {"position": [0, 0, 0], "look_at": [0, 0, -1], "resolution": [1, 1]},
        "integrator": {"spp": 1 << 20, "max_depth": 0},
        "environment": {"type": "constant", "radiance": [0.7, 0.3, 0.11]},
    }
    result = Renderer(load_scene(scene), gpu).render()
    np.testing.assert_allclose(result.radiance[0, 0], [0.7, 0.3, 0.11], rtol=1e-6)


def test_traversal_parity_with_cpu(cpu, gpu) -> None:
    tris = random_soup(3000, 4)
    o, d = random_rays(20000, 6)
    on_gpu = TriangleQueries(gpu, tris)
    on_cpu = TriangleQueries(cpu, tris, bvh=on_gpu.bvh)
    g, c = on_gpu.closest_hit(o, d), on_cpu.closest_hit(o, d)
    np.testing.assert_array_equal(g.primitive, on_gpu.closest_hit_brute_force(o, d).primitive)
    # Compilers may contract differently (FMA): allow a hair of rounding, but not more.
    # The error in t scales with the coordinates (~4 here), not with t itself.
    assert (g.primitive == c.primitive).mean() > 0.999
    both = (g.primitive == c.primitive) & g.hit
    np.testing.assert_allclose(g.t[both], c.t[both], rtol=1e-5, atol=4 * 4e-7)


def test_gpu_render_agrees_with_cpu_and_is_reproducible(cpu, gpu) -> None:
    scene = load_scene(lit_stage(spp=256))
    on_gpu = Renderer(scene, gpu).render()
    on_cpu = Renderer(scene, cpu).render()
    np.testing.assert_array_equal(Renderer(scene, gpu).render().radiance, on_gpu.radiance)
    diff = on_gpu.radiance.mean() - on_cpu.radiance.mean()
    se = np.sqrt(on_gpu.variance.sum() + on_cpu.variance.sum()) / on_gpu.radiance.size
    assert abs(diff) < 5 * se


def test_material_queries_agree_with_cpu(cpu, gpu) -> None:
    """The layered library on the GPU: the same random numbers give the same estimates as
    the CPU device up to float rounding (paths through a walk may diverge at a branch, so
    almost all, not all, queries must agree), and sampling stays consistent."""
    from bsdf_checks import direction, repeat

    from renderer.materials import MaterialQueries, load_material
    from renderer.paths import materials_dir

    n = 20000
    rng = np.random.default_rng(2)
    uv = rng.random((n, 2))
    wo = repeat(direction(40.0, 10.0), n)
    wi = repeat(direction(25.0, 200.0), n)
    for path in sorted(materials_dir().glob("*.json")):
        graph = load_material(path)
        on_cpu = MaterialQueries(graph, cpu).evaluate(uv, wi, wo, samples=4, seed=3)
        on_gpu = MaterialQueries(graph, gpu).evaluate(uv, wi, wo, samples=4, seed=3)
        close = np.isclose(on_gpu, on_cpu, rtol=1e-3, atol=1e-5).all(axis=1)
        assert close.mean() > 0.99, f"{path.stem}: {close.mean():.4f} of queries agree"
        q = MaterialQueries(graph, gpu)
        s_wi, weight, p, delta = q.sample(uv, wo, seed=4)
        ok = (p > 0) & ~delta
        np.testing.assert_allclose(q.pdf(uv, s_wi, wo, seed=4)[ok], p[ok], rtol=1e-3)
        assert np.isfinite(weight).all()


def test_bake_on_cuda_torch_matches_cpu(tmp_path, cpu, gpu) -> None:
    """Training on CUDA torch with GPU references gives a material of the same quality as
    the CPU bake (not the same bits: reductions run in another order)."""
    import torch
    from test_bake import TINY, _bake

    if not torch.cuda.is_available():
        pytest.skip("this torch has no CUDA")
    from dataclasses import replace

    longer = replace(TINY, encoder_steps=300, latent_steps=300, sampler_steps=100)
    on_cpu = _bake(tmp_path / "cpu.nmat", longer, device="cpu", reference_device=cpu)
    on_gpu = _bake(tmp_path / "gpu.nmat", longer, device="cuda", reference_device=gpu)
    a = on_cpu.report["metrics"]["heldout"]
    b = on_gpu.report["metrics"]["heldout"]
    assert abs(a["psnr_db"] - b["psnr_db"]) < 1.5, (a, b)
    assert abs(a["log_l1"] - b["log_l1"]) < 0.25 * a["log_l1"] + 1e-3, (a, b)


def _fp16_mlp(mlp, x: torch.Tensor) -> torch.Tensor:
    """The tensor-core path's arithmetic, simulated: inputs, weights and hidden activations
    rounded to fp16, products and sums in fp32, fp32 biases."""
    a = x.half().float()
    layers = list(mlp.layers)
    for i, layer in enumerate(layers):
        a = a @ layer.weight.half().float().t() + layer.bias
        if i + 1 < len(layers):
            a = torch.relu(a).half().float()
    return a


# fp16 bound of the tensor-core decoder against fp32, |log f_tc - log f_fp32|: measured with
# _fp16_mlp on the library's quick bakes (50k uniform queries each), median 0.1-0.3% and
# 99.9th percentile 0.9-1.9%.
FP16_MEDIAN, FP16_P999 = 0.005, 0.02


def test_tensor_core_decoder_within_the_fp16_bound(gpu) -> None:
    """The tensor-core decoder (CUDA, coherent warps) on a trained bake: equal to the
    simulated fp16 arithmetic up to summation order (catches a wrong tile layout, stride
    or bias), and within the stated fp16 bound of the fp32 per-lane decoder."""
    from neural_fixtures import SHIPPED_BAKE

    from renderer.neural import NeuralMaterial
    from renderer.neural.directions import uniform_hemisphere
    from renderer.neural.runtime_queries import RuntimeQueries

    if gpu.kind != "cuda":
        pytest.skip("the tensor-core path is CUDA only")
    material = NeuralMaterial.load(SHIPPED_BAKE)
    q = RuntimeQueries([material], gpu)
    n = 32 * 512
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(n, 2, generator=g)
    wi = uniform_hemisphere(torch.rand(n, 2, generator=g))
    wo = uniform_hemisphere(torch.rand(n, 2, generator=g))
    latent = material.pyramid()(uv, torch.zeros(n, dtype=torch.long))
    per_lane, _, tensor_core = q.decode(latent.detach().numpy(), wi.numpy(), wo.numpy())
    x = torch.cat([material.brdf.frames(latent, wi, wo), latent], -1)
    with torch.no_grad():
        simulated = torch.clamp(_fp16_mlp(material.brdf.mlp, x), max=material.brdf.raw_limit)
    raw_tc = np.log(tensor_core) + 3.0
    assert np.abs(raw_tc - simulated.numpy()).max() <= 2e-3
    error = np.abs(np.log(tensor_core) - np.log(per_lane)).max(1)
    assert np.median(error) <= FP16_MEDIAN and np.percentile(error, 99.9) <= FP16_P999


def test_coherent_and_divergent_dispatch_give_the_same_image(gpu) -> None:
    """The default scene with neural materials, tensor-core path on and off: the images
    agree within their noise (they differ by fp16 rounding, which may redirect a path)."""
    from renderer.paths import default_scene_path

    if gpu.kind != "cuda":
        pytest.skip("the tensor-core path is CUDA only")
    scene = load_scene(default_scene_path())
    scene.camera.resolution = (160, 90)
    coherent = Renderer(scene, gpu).render(spp=64, materials="neural")
    divergent = Renderer(scene, gpu, neural_mlp="per-lane").render(spp=64, materials="neural")
    assert_mean_close(
        coherent.radiance - divergent.radiance, coherent.variance + divergent.variance, 0.0
    )
