"""The Slang neural-material runtime against the torch modules that trained it (DESIGN
rule 3), its sampler against its own pdf, and the energy normalisation.

Materials have random weights and latents of a real architecture (neural_fixtures.py):
parity holds for any weights, and random ones exercise every input of every layer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from neural_fixtures import random_material
from scipy import stats

from renderer.errors import NeuralMaterialError
from renderer.materials import MaterialQueries
from renderer.neural.architecture import ENERGY_ANGLES, ENERGY_GRID, Architecture
from renderer.neural.directions import uniform_hemisphere
from renderer.neural.energy import albedo_table, energy_scale
from renderer.neural.runtime import check_runtime_support
from renderer.neural.runtime_queries import RuntimeQueries
from renderer.neural.sampler import NeuralSampler

DEFENSIVE = 0.1  # DEFENSIVE_COSINE of shaders/neural/neural_bsdf.slang


def _no_energy_scaling(material):
    """Albedo 0 everywhere: the energy normalisation leaves f * cos alone."""
    material.energy = torch.zeros(ENERGY_GRID, ENERGY_GRID, ENERGY_ANGLES)
    return material


@pytest.fixture(scope="module")
def material():
    return _no_energy_scaling(random_material(seed=3, size=32))


@pytest.fixture(scope="module")
def runtime(material, cpu) -> RuntimeQueries:
    return RuntimeQueries([material], cpu)


def _queries(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    uv = torch.rand(n, 2, generator=g) * 3 - 1  # outside [0, 1) too: lookups wrap
    wi = uniform_hemisphere(torch.rand(n, 2, generator=g))
    wo = uniform_hemisphere(torch.rand(n, 2, generator=g))
    return uv, wi, wo


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def test_pyramid_lookup_matches_torch(material, runtime) -> None:
    # Catches a flipped v axis, a half-texel offset, wrong wrapping or a wrong fp16
    # unpacking order: each moves the latents far beyond rounding.
    n = 4000
    uv, _, _ = _queries(n, 1)
    level = torch.randint(
        0, len(material.arch.levels), (n,), generator=torch.Generator().manual_seed(2)
    )
    slang = runtime.lookup(uv.numpy(), level.numpy(), np.zeros(n))
    torch_ = material.pyramid()(uv, level).detach().numpy()
    assert np.max(np.abs(slang - torch_)) <= 1e-4 * np.max(np.abs(torch_))


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.85])
def test_stochastic_level_choice_averages_to_trilinear(material, runtime, fraction: float) -> None:
    # Catches choosing the wrong level for the fraction (u < 1 - f), always the finer level
    # or a clamp that never reaches the next one: the mean then sits far from the blend.
    points, draws = 32, 2048
    g = torch.Generator().manual_seed(5)
    uv = torch.rand(points, 2, generator=g).repeat_interleave(draws, 0)
    base = 2
    level = np.full(points * draws, base + fraction)
    u = np.random.default_rng(6).random(points * draws)
    slang = runtime.lookup(uv.numpy(), level, u).reshape(points, draws, -1).mean(1)
    fine = material.pyramid()(uv[::draws], torch.full((points,), base)).detach().numpy()
    coarse = material.pyramid()(uv[::draws], torch.full((points,), base + 1)).detach().numpy()
    trilinear = (1 - fraction) * fine + fraction * coarse
    # the share choosing the coarse level is binomial: allow 5 standard errors of it
    se = math.sqrt(fraction * (1 - fraction) / draws) * np.abs(coarse - fine)
    assert np.all(np.abs(slang - trilinear) <= 5 * se + 1e-4)


def test_frames_match_torch(material, runtime) -> None:
    # Catches a wrong row of the frame layer, T not made orthogonal to N, B = T x N (the
    # wrong sign) or a swapped wi/wo order: the 12 inputs then differ by O(1).
    uv, wi, wo = _queries(2000, 3)
    latent = material.pyramid()(uv, torch.zeros(len(uv), dtype=torch.long))
    slang = runtime.directions(latent.detach().numpy(), wi.numpy(), wo.numpy())
    torch_ = material.brdf.frames(latent, wi, wo).detach().numpy()
    assert np.max(np.abs(slang - torch_)) <= 1e-5


@pytest.mark.parametrize("decoder", [(16, 16), (32, 32), (64, 64, 64), (24, 24), (20, 40, 60)])
def test_decoder_matches_torch(cpu, decoder: tuple[int, ...]) -> None:
    # Catches a transposed or mis-padded weight layout (widths that are not a multiple of
    # the loop's compiled widths included), a missing ReLU, a bias read from the wrong row
    # or a latent part added twice: each changes f by far more than 1e-4.
    material = _no_energy_scaling(random_material(seed=7, size=8, decoder=decoder))
    runtime = RuntimeQueries([material], cpu)
    uv, wi, wo = _queries(3000, 4)
    latent = material.pyramid()(uv, torch.zeros(len(uv), dtype=torch.long))
    per_lane, full, _ = runtime.decode(latent.detach().numpy(), wi.numpy(), wo.numpy())
    expected = material.brdf(latent, wi, wo).detach().numpy()
    assert _relative_error(per_lane, expected) <= 1e-4
    assert _relative_error(full, expected) <= 1e-4


def test_sampler_matches_torch(material, runtime) -> None:
    # Catches a wrong Cholesky factor (rho on the wrong axis), a reflected instead of
    # refracted-sign half vector, softmax weights swapped or a missing Jacobian 1/(4 wo.h)
    # in the pdf: lobes, directions or densities then disagree with training.
    n = 4000
    uv, wi, wo = _queries(n, 8)
    latent = material.pyramid()(uv, torch.zeros(n, dtype=torch.long))
    lat = latent.detach().numpy()
    lobes = material.sampler.lobes(latent, wo)
    slang = runtime.lobes(lat, wo.numpy())
    for name in ("axis", "alpha", "rho", "mean", "weights"):
        expected = getattr(lobes, name).detach().numpy()
        assert np.max(np.abs(slang[name] - expected)) <= 1e-4 * max(1.0, np.abs(expected).max())
    u = torch.rand(n, 3, generator=torch.Generator().manual_seed(9))
    s_wi, s_ok = runtime.sample(lat, wo.numpy(), u.numpy())
    t_wi, t_ok = NeuralSampler.sample(lobes, wo, u)
    t_ok = t_ok.numpy()
    assert (s_ok == t_ok).mean() > 0.999  # a direction at the horizon may round either way
    both = s_ok & t_ok
    assert np.max(np.abs(s_wi[both] - t_wi.detach().numpy()[both])) <= 1e-4
    slang_pdf = runtime.pdf(lat, wi.numpy(), wo.numpy())
    torch_pdf = NeuralSampler.pdf(lobes, wo, wi).detach().numpy()
    assert _relative_error(slang_pdf[torch_pdf > 1e-3], torch_pdf[torch_pdf > 1e-3]) <= 1e-4


def test_bsdf_eval_matches_torch_at_every_level(material, cpu) -> None:
    # The whole BSDF as the path tracer calls it (MaterialQueries runs the material query
    # kernel), at each pyramid level: catches a level offset between host and shader.
    q = MaterialQueries(material, cpu)
    uv, wi, wo = _queries(1000, 10)
    for level in range(len(material.arch.levels)):
        slang = q.evaluate(uv.numpy(), wi.numpy(), wo.numpy(), level=float(level))
        expected = material.evaluate(uv, wi, wo, torch.full((len(uv),), level)).numpy()
        assert _relative_error(slang, expected) <= 1e-4, level


def _bsdf_pdf_torch(material, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> np.ndarray:
    """The runtime's sampling density, written again from the torch sampler."""
    latent = material.pyramid()(uv, torch.zeros(len(uv), dtype=torch.long))
    learned = NeuralSampler.pdf(material.sampler.lobes(latent, wo), wo, wi)
    pdf = (1 - DEFENSIVE) * learned + DEFENSIVE * torch.clamp(wi[:, 2], min=0) / math.pi
    return torch.where(wi[:, 2] > 1e-6, pdf, torch.zeros_like(pdf)).detach().numpy()


@pytest.mark.parametrize("theta_o", [10.0, 50.0, 80.0])
def test_sample_weight_and_pdf_are_consistent(material, cpu, theta_o: float) -> None:
    # Weight and sampled pdf against f and the mixture's pdf written again in torch (not
    # the shader's own eval or pdf): catches a weight that forgets the defensive lobe or
    # divides by the learned pdf alone, and a sampled pdf of another mixture. That the
    # sampler draws from the pdf it reports is the chi-square test's job.
    q = MaterialQueries(material, cpu)
    n = 20000
    t = math.radians(theta_o)
    wo = np.tile([math.sin(t), 0.0, math.cos(t)], (n, 1))
    uv = np.tile([0.37, 0.61], (n, 1))
    wi, weight, pdf, delta = q.sample(uv, wo, seed=11)
    ok = pdf > 0
    assert not delta.any() and ok.mean() > 0.5
    f = material.evaluate(
        torch.from_numpy(uv[ok]).float(), torch.from_numpy(wi[ok]), torch.from_numpy(wo[ok]).float()
    )
    expected_pdf = _bsdf_pdf_torch(
        material,
        torch.from_numpy(uv[ok]).float(),
        torch.from_numpy(wi[ok]),
        torch.from_numpy(wo[ok]).float(),
    )
    np.testing.assert_allclose(pdf[ok], expected_pdf, rtol=1e-4)
    np.testing.assert_allclose(weight[ok], f.numpy() / expected_pdf[:, None], rtol=1e-3)


def _sphere_bins(theta_bins: int, phi_bins: int, fine: int) -> tuple[np.ndarray, np.ndarray]:
    """Directions on a fine (theta, phi) grid over the whole sphere and their solid angles,
    [theta_bins * fine, phi_bins * fine, 3] and [theta_bins * fine, phi_bins * fine]."""
    t_edges = np.linspace(0, np.pi, theta_bins * fine + 1)
    p_edges = np.linspace(0, 2 * np.pi, phi_bins * fine + 1)
    t = 0.5 * (t_edges[1:] + t_edges[:-1])
    p = 0.5 * (p_edges[1:] + p_edges[:-1])
    tt, pp = np.meshgrid(t, p, indexing="ij")
    dirs = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], -1)
    solid = (np.cos(t_edges[:-1]) - np.cos(t_edges[1:]))[:, None] * (p_edges[1] - p_edges[0])
    return dirs, np.broadcast_to(solid, tt.shape)


@pytest.mark.parametrize("theta_o", [20.0, 65.0])
def test_sampler_chi_square_over_the_sphere(material, cpu, theta_o: float) -> None:
    # Counts of sampled directions in (theta, phi) bins over the whole sphere against N
    # times the integral of pdf() over each bin - never rescaled to the observed total, so
    # a pdf too large or too small by any factor fails, and so does mass below the horizon
    # (pdf() is 0 there and no sample may land there). Failed samples are the mass the
    # pdf does not cover: their share must match 1 - integral of the pdf.
    q = MaterialQueries(material, cpu)
    n, tb, pb, fine = 200_000, 16, 16, 6
    t = math.radians(theta_o)
    wo_dir = [math.sin(t), 0.0, math.cos(t)]
    wo = np.tile(wo_dir, (n, 1))
    uv = np.tile([0.71, 0.23], (n, 1))
    wi, _, pdf, _ = q.sample(uv, wo, seed=12)
    ok = pdf > 0
    dirs, solid = _sphere_bins(tb, pb, fine)
    flat = dirs.reshape(-1, 3)
    m = len(flat)
    density = q.pdf(np.tile([0.71, 0.23], (m, 1)), flat, np.tile(wo_dir, (m, 1))).reshape(
        dirs.shape[:2]
    )
    assert np.all(density[dirs[..., 2] <= 0] == 0)
    expected = (density * solid).reshape(tb, fine, pb, fine).sum((1, 3)) * n
    theta = np.arccos(np.clip(wi[ok, 2], -1, 1))
    phi = np.mod(np.arctan2(wi[ok, 1], wi[ok, 0]), 2 * np.pi)
    observed, _, _ = np.histogram2d(theta, phi, bins=[tb, pb], range=[[0, np.pi], [0, 2 * np.pi]])
    lost_expected = n - expected.sum()
    lost_observed = n - ok.sum()
    keep = expected.reshape(-1) >= 5
    obs = np.append(observed.reshape(-1)[keep], [observed.reshape(-1)[~keep].sum(), lost_observed])
    exp = np.append(expected.reshape(-1)[keep], [expected.reshape(-1)[~keep].sum(), lost_expected])
    chi2 = float(np.sum((obs - exp) ** 2 / np.maximum(exp, 1e-9)))
    p_value = stats.chi2.sf(chi2, len(obs) - 1)
    assert p_value > 1e-4, (chi2, len(obs), lost_expected, lost_observed)


def test_two_materials_share_one_table(cpu) -> None:
    # Catches offsets of the second material's levels, layers or weights that point into
    # the first one's: both must match their own torch modules.
    a = _no_energy_scaling(random_material(seed=1, size=16))
    b = _no_energy_scaling(random_material(seed=2, size=8, decoder=(64, 64, 64)))
    runtime = RuntimeQueries([a, b], cpu)
    uv, wi, wo = _queries(500, 13)
    for index, m in enumerate((a, b)):
        runtime.select(index)
        latent = runtime.lookup(uv.numpy(), np.zeros(len(uv)), np.zeros(len(uv)))
        expected = m.pyramid()(uv, torch.zeros(len(uv), dtype=torch.long)).detach().numpy()
        np.testing.assert_allclose(latent, expected, atol=1e-4)
        f, _, _ = runtime.decode(latent, wi.numpy(), wo.numpy())
        assert _relative_error(f, m.brdf(torch.from_numpy(latent), wi, wo).detach().numpy()) <= 1e-4


def test_unsupported_architectures_are_refused() -> None:
    check_runtime_support(Architecture(parameter_channels=1, width=4, height=4))
    with pytest.raises(NeuralMaterialError, match="latent channels"):
        check_runtime_support(Architecture(1, 4, 4, latent_channels=4))
    with pytest.raises(NeuralMaterialError, match="at most 64 wide"):
        check_runtime_support(Architecture(1, 4, 4, decoder_hidden=(128, 128)))
    with pytest.raises(NeuralMaterialError, match="sampler"):
        check_runtime_support(Architecture(1, 4, 4, sampler_hidden=(96,)))


def _energy_scale_numpy(scale: np.ndarray, uv: np.ndarray, cos_o: np.ndarray) -> np.ndarray:
    """The renderer's energy lookup (bilinear in uv, wrapping; linear in cos theta_o)."""
    n = scale.shape[0]
    x = uv[:, 0] * n - 0.5
    y = (1 - uv[:, 1]) * n - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    tx, ty = x - x0, y - y0
    a = np.clip(cos_o * ENERGY_ANGLES - 0.5, 0, ENERGY_ANGLES - 1)
    k0 = np.minimum(a.astype(int), ENERGY_ANGLES - 1)
    k1 = np.minimum(k0 + 1, ENERGY_ANGLES - 1)
    ta = a - k0
    out = np.zeros(len(uv))
    for dy in (0, 1):
        for dx in (0, 1):
            cy = np.mod(y0.astype(int) + dy, n)
            cx = np.mod(x0.astype(int) + dx, n)
            v = (1 - ta) * scale[cy, cx, k0] + ta * scale[cy, cx, k1]
            out += np.where(dx, tx, 1 - tx) * np.where(dy, ty, 1 - ty) * v
    return out


def test_energy_normalisation_scales_where_albedo_exceeds_one(cpu) -> None:
    # A table with albedo 2 in some entries and 0.5 in others: eval must be halved there
    # (interpolated between entries) and untouched elsewhere. Catches a scale applied as
    # albedo (x2), a transposed table, the angle read from wi instead of wo, or no scale.
    material = random_material(seed=4, size=8)
    rng = np.random.default_rng(14)
    table = np.where(rng.random((ENERGY_GRID, ENERGY_GRID, ENERGY_ANGLES)) < 0.5, 2.0, 0.5)
    material.energy = torch.from_numpy(table.astype(np.float32))
    q = MaterialQueries(material, cpu)
    uv, wi, wo = _queries(3000, 15)
    slang = q.evaluate(uv.numpy(), wi.numpy(), wo.numpy())
    plain = material.evaluate(uv, wi, wo).numpy()
    scale = _energy_scale_numpy(energy_scale(table), np.mod(uv.numpy(), 1.0), wo.numpy()[:, 2])
    assert scale.min() < 0.6 and scale.max() == pytest.approx(1.0)
    assert _relative_error(slang, plain * scale[:, None]) <= 1e-4


def test_albedo_table_of_a_constant_brdf(cpu) -> None:
    # A decoder whose output is a constant f * cos = c (every weight of the last layer 0)
    # has albedo 2 pi c for every view: the estimator must find it within its noise.
    # Catches a pdf without the defensive lobe, a missing cosine in that lobe, or samples
    # from the wrong lobe: each biases the estimate by 10% or more.
    material = random_material(seed=5, size=8)
    c = 0.08
    last = material.brdf.mlp.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(math.log(c) + 3.0)
    table = albedo_table(material, samples=64)
    assert table.shape == (ENERGY_GRID, ENERGY_GRID, ENERGY_ANGLES)
    np.testing.assert_allclose(np.median(table), 2 * math.pi * c, rtol=0.05)
    # entries are the largest of 4 azimuths' noisy estimates: most stay close
    assert np.percentile(np.abs(table / (2 * math.pi * c) - 1), 90) < 0.25


def test_albedo_table_rows_follow_the_pyramid(cpu) -> None:
    # Row 0 of the table is the top of the texture (v = 1), as the renderer reads it:
    # a material bright in its top-left quadrant only must have a bright top-left table.
    # Catches the writer flipping v or swapping u and v against the shader's lookup.
    from neural_fixtures import exp_channel_decoder

    material = exp_channel_decoder(random_material(seed=6, size=16))
    dark, bright = math.log(0.02 / (2 * math.pi)), math.log(0.6 / (2 * math.pi))
    for k, level in enumerate(material.levels):
        h, w = level.shape[:2]
        values = torch.full((h, w), dark)
        values[: h // 2, : w // 2] = bright  # rows from the top, columns from the left
        level[..., 0] = values.half() if k == 0 else level[..., 0]
    table = albedo_table(material, samples=128)  # groups of 16: near-normal means
    # cells away from the quadrant's edges (bilinear lookups blend across them, wrapping)
    h = ENERGY_GRID // 2
    assert table[1 : h - 1, 1 : h - 1].mean() == pytest.approx(0.6, rel=0.1)
    for block in (table[h + 1 : -1, 1 : h - 1], table[1 : h - 1, h + 1 : -1]):
        assert block.mean() == pytest.approx(0.02, rel=0.1)
