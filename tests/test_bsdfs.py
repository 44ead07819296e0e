"""BSDF lobes and layered stacks through the batched material API (the Slang code the path
tracer runs): sampling matches the pdf, weights are eval/pdf, pdfs agree, reflection is
reciprocal, no lobe creates energy, and stacks reduce to closed forms where they exist."""

from __future__ import annotations

import numpy as np
import pytest
from bsdf_checks import chi_square, direction, repeat

from renderer.device import RenderDevice
from renderer.materials import MaterialQueries, load_material

LOBES = {
    "lambert": [{"type": "diffuse", "albedo": 0.8}],
    "conductor": [{"type": "conductor", "metal": "gold", "roughness": 0.5, "anisotropy": 0.6}],
    "conductor_artist": [
        {"type": "conductor", "reflectivity": [0.9, 0.6, 0.3], "edge_tint": 1, "roughness": 0.3}
    ],
    "dielectric": [{"type": "dielectric", "ior": 1.5, "roughness": 0.5}],
    "sheen": [{"type": "sheen", "color": [1.0, 0.9, 0.8], "roughness": 0.4}],
    "flakes": [
        {"type": "flakes", "color": 0.9, "roughness": 0.4, "density": 1, "spread": 0.3, "scale": 10}
    ],
}
# Tilted normals (normal maps use the same reciprocal, energy-bounded tilted frame as
# flakes): this map tilts the normal by 13 degrees on average, 35 at most.
BUMPS = {"type": "normal_map", "height": {"type": "noise", "frequency": 2, "seed": 7}, "depth": 0.1}
LOBES["bumped_lambert"] = [{"type": "diffuse", "albedo": 0.8}]
LOBES["bumped_conductor"] = [{"type": "conductor", "metal": "silver", "roughness": 0.4}]
NORMAL_MAPPED = {"bumped_lambert", "bumped_conductor"}
LAYERED = {
    # Coated plastic: diffuse under a rough, slightly absorbing coat.
    "coated_plastic": {
        "base": [{"type": "diffuse", "albedo": [0.7, 0.2, 0.1]}],
        "layers": [{"ior": 1.5, "roughness": 0.3, "thickness": 0.2, "absorption": [0.5, 1, 2]}],
    },
    # Car paint: flakes and paint under a smooth clear coat, over a scattering tinted slab.
    "car_paint": {
        "base": [
            {"type": "flakes", "color": 0.9, "roughness": 0.3, "density": 1, "weight": 0.4},
            {"type": "diffuse", "albedo": [0.5, 0.05, 0.05]},
        ],
        "layers": [
            {
                "ior": 1.5,
                "roughness": 0.0,
                "thickness": 0.5,
                "scattering": {"density": 0.5, "albedo": 0.9, "anisotropy": 0.3},
            }
        ],
    },
}
ALL = {
    **{
        k: {"base": v, "resolution": 64, **({"normal_map": BUMPS} if k in NORMAL_MAPPED else {})}
        for k, v in LOBES.items()
    },
    **LAYERED,
}
ANGLES = (5.0, 35.0, 65.0, 85.0)


@pytest.fixture(scope="module")
def queries(cpu: RenderDevice) -> dict[str, MaterialQueries]:
    return {
        name: MaterialQueries(load_material({"version": 1, **spec}), cpu, walk_depth=64)
        for name, spec in ALL.items()
    }


def _incident(name: str) -> list[np.ndarray]:
    dirs = [direction(a, 20.0) for a in ANGLES]
    if name == "dielectric":
        dirs.append(direction(140.0, 20.0))  # from inside the medium
    return dirs


@pytest.mark.parametrize("name", list(ALL))
def test_sampling_matches_pdf(queries: dict[str, MaterialQueries], name: str) -> None:
    for wo in _incident(name):
        p_value = chi_square(queries[name], wo, samples=100_000)
        assert p_value > 1e-3, f"{name}: chi-square p = {p_value:.2e} at wo = {wo.round(3)}"


@pytest.mark.parametrize("name", [n for n in ALL if n != "dielectric"])
def test_no_density_below_an_opaque_surface(queries: dict[str, MaterialQueries], name: str) -> None:
    # Catches: pdf() > 0 below the surface where eval() is 0 and sample() never goes
    # (normal-mapped stacks without layers once integrated 0.1-5% of their pdf there,
    # which the upper-hemisphere histograms of the chi-square test could not see).
    q = queries[name]
    rng = np.random.default_rng(3)
    n = 20_000
    uv = rng.random((n, 2))  # many normal-map tilts
    wo = rng.normal(size=(n, 3))
    wo[:, 2] = np.abs(wo[:, 2]) + 0.05
    wi = rng.normal(size=(n, 3))
    wi[:, 2] = -np.abs(wi[:, 2]) - 1e-3
    wo /= np.linalg.norm(wo, axis=1, keepdims=True)
    wi /= np.linalg.norm(wi, axis=1, keepdims=True)
    assert (q.pdf(uv, wi, wo) == 0).all()
    assert (q.evaluate(uv, wi, wo) == 0).all()
    sampled, _, pdf, delta = q.sample(uv, wo)
    assert (sampled[(pdf > 0) & ~delta, 2] >= 0).all()


def _sampled(q: MaterialQueries, wo: np.ndarray, n: int, seed: int = 5):
    uv = np.random.default_rng(seed).random((n, 2))  # normal maps: many tilts
    wi, weight, pdf, delta = q.sample(uv, repeat(wo, n), seed=seed)
    ok = (pdf > 0) & ~delta
    return uv[ok], wi[ok], weight[ok], pdf[ok], repeat(wo, int(ok.sum()))


@pytest.mark.parametrize("name", list(LOBES))
def test_weight_is_eval_over_pdf_and_pdfs_agree(
    queries: dict[str, MaterialQueries], name: str
) -> None:
    # A lone lobe's sample carries the weight and pdf its own sampler computed; eval() and
    # pdf() reach the same values by other code. Catches: a sampler whose weight drops a
    # cosine or a Fresnel factor, or whose pdf differs from pdf() (the layered proposal's
    # sampled pdf is pdf() by construction, so stacks are left to the chi-square test and
    # to the next test).
    q = queries[name]
    for wo in _incident(name):
        uv, wi, weight, pdf, wos = _sampled(q, wo, 4000)
        assert len(uv) > 1000
        f = q.evaluate(uv, wi, wos)
        np.testing.assert_allclose(weight * pdf[:, None], f, rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(q.pdf(uv, wi, wos), pdf, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", list(LAYERED))
def test_layered_weight_uses_the_sampled_estimate(
    queries: dict[str, MaterialQueries], name: str
) -> None:
    q = queries[name]
    n = 4000
    for wo in _incident(name):
        uv = np.full((n, 2), 0.5)
        wi, weight, pdf, delta = q.sample(uv, repeat(wo, n), seed=11)
        ok = (pdf > 0) & ~delta
        assert ok.sum() > n // 10  # a smooth coat sends the rest to its delta reflection
        # Query i must see the random numbers of sample i, so evaluate the whole batch.
        wi_all = np.where(ok[:, None], wi, np.array([0.0, 0.0, 1.0]))
        f = q.evaluate_as_sampled(uv, wi_all, repeat(wo, n), seed=11)
        np.testing.assert_allclose(weight[ok] * pdf[ok, None], f[ok], rtol=1e-3, atol=1e-6)


def _hemisphere_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        v = rng.normal(size=(n, 3))
        v[:, 2] = np.abs(v[:, 2]) + 0.05
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return out[0], out[1]


@pytest.mark.parametrize("name", list(LOBES))
def test_lobe_reflection_is_reciprocal(queries: dict[str, MaterialQueries], name: str) -> None:
    q = queries[name]
    a, b = _hemisphere_pairs(2000, 3)
    uv = np.full((len(a), 2), 0.5)
    f_ab = q.evaluate(uv, a, b) / a[:, 2:3]  # f(wo=b, wi=a)
    f_ba = q.evaluate(uv, b, a) / b[:, 2:3]
    assert (f_ab > 0).any()
    np.testing.assert_allclose(f_ab, f_ba, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("name", list(LAYERED))
def test_layered_reflection_is_reciprocal_in_expectation(
    queries: dict[str, MaterialQueries], name: str
) -> None:
    q = queries[name]
    a, b = _hemisphere_pairs(48, 4)
    uv = np.full((len(a), 2), 0.5)
    blocks = 8
    ab = np.stack([q.evaluate(uv, a, b, samples=256, seed=s) for s in range(blocks)]) / a[:, 2:3]
    ba = np.stack([q.evaluate(uv, b, a, samples=256, seed=99 + s) for s in range(blocks)])
    ba = ba / b[:, 2:3]
    diff = ab.mean(0) - ba.mean(0)
    se = np.sqrt(ab.var(0, ddof=1) / blocks + ba.var(0, ddof=1) / blocks)
    z = np.abs(diff) / np.maximum(se, 1e-9)
    # 48 pairs x 3 channels: allow the odd 3-sigma excursion, never a systematic one.
    assert np.mean(z < 3.0) > 0.95, f"z-scores {np.sort(z.ravel())[-5:]}"
    assert np.abs(diff.mean()) < 4 * np.sqrt((se**2).mean() / diff.size) + 1e-6


WHITE = {
    "lambert": {"base": [{"type": "diffuse", "albedo": 1}]},
    "conductor": {
        "base": [{"type": "conductor", "reflectivity": 1, "roughness": 0.6, "anisotropy": 0.8}]
    },
    "conductor_smooth": {"base": [{"type": "conductor", "reflectivity": 1, "roughness": 0.0}]},
    "dielectric": {"base": [{"type": "dielectric", "ior": 1.5, "roughness": 0.4}]},
    "sheen": {"base": [{"type": "sheen", "color": 1, "roughness": 0.05}]},
    "sheen_rough": {"base": [{"type": "sheen", "color": 1, "roughness": 1}]},
    "flakes": {
        "base": [{"type": "flakes", "color": 1, "roughness": 0.3, "density": 1, "spread": 0.5}]
    },
    "coated_white": {
        "base": [{"type": "diffuse", "albedo": 1}],
        "layers": [{"ior": 1.5, "roughness": 0.2}],
    },
    "bumped_coat": {
        "resolution": 64,
        "base": [{"type": "conductor", "reflectivity": 1, "roughness": 0.3}],
        "normal_map": BUMPS,
        "layers": [{"ior": 1.5, "roughness": 0.05, "normal_map": BUMPS}],
    },
    "stack_of_three": {
        "base": [{"type": "sheen", "color": 1, "weight": 0.3}, {"type": "diffuse", "albedo": 1}],
        "layers": [
            {"ior": 1.4, "roughness": 0.0},
            {"ior": 1.6, "roughness": 0.3, "scattering": {"density": 2, "albedo": 1}},
            {"ior": 1.3, "roughness": 0.5},
        ],
    },
}


# Lossless cases must also keep (almost) all the energy: a walk that drops bounces fails.
LOSSLESS = {"lambert": 0.999, "conductor_smooth": 0.985, "coated_white": 0.9}


@pytest.mark.parametrize("name", list(WHITE))
def test_white_furnace_albedo_at_most_one(cpu: RenderDevice, name: str) -> None:
    q = MaterialQueries(load_material({"version": 1, **WHITE[name]}), cpu, walk_depth=64)
    n = 40_000
    for angle in (0.0, 30.0, 60.0, 80.0, 89.0):
        uv = np.random.default_rng(1).random((n, 2))
        _, weight, _, _ = q.sample(uv, repeat(direction(angle), n))
        albedo = weight.mean(axis=0)
        assert np.isfinite(weight).all()
        assert (albedo <= 1.01).all(), f"{name}: albedo {albedo} at {angle} degrees"
        assert (albedo > 0).all() or angle >= 89.0
        if name in LOSSLESS and angle <= 60.0:
            assert (albedo >= LOSSLESS[name]).all(), f"{name}: albedo {albedo} at {angle}"


def _fresnel(cos_i: np.ndarray, eta: float) -> np.ndarray:
    cos_i = np.clip(cos_i, -1.0, 1.0)
    eta_eff = np.where(cos_i < 0, 1.0 / eta, eta)
    c = np.abs(cos_i)
    sin2_t = (1 - c * c) / eta_eff**2
    cos_t = np.sqrt(np.maximum(0.0, 1 - sin2_t))
    r_par = (eta_eff * c - cos_t) / (eta_eff * c + cos_t)
    r_perp = (c - eta_eff * cos_t) / (c + eta_eff * cos_t)
    return np.where(sin2_t >= 1, 1.0, 0.5 * (r_par**2 + r_perp**2))


def test_smooth_coat_over_lambert_matches_closed_form(cpu: RenderDevice) -> None:
    """Albedo of a smooth, clear coat over a Lambertian base: R + T rho (1 - r) / (1 - rho r),
    with r the cosine-weighted internal reflectance of the coat (every bounce summed)."""
    eta, rho = 1.5, 0.5
    mu = (np.arange(200_000) + 0.5) / 200_000
    r_internal = float(np.mean(_fresnel(-mu, eta) * 2 * mu))
    graph = load_material(
        {
            "version": 1,
            "base": [{"type": "diffuse", "albedo": rho}],
            "layers": [{"ior": eta, "roughness": 0.0}],
        }
    )
    q = MaterialQueries(graph, cpu, walk_depth=64)
    n = 100_000
    for angle in (0.0, 45.0, 70.0):
        _, weight, _, _ = q.sample(np.full((n, 2), 0.5), repeat(direction(angle), n), seed=2)
        r = float(_fresnel(np.cos(np.radians(angle)), eta))
        expected = r + (1 - r) * rho * (1 - r_internal) / (1 - rho * r_internal)
        mean, se = weight[:, 0].mean(), weight[:, 0].std() / np.sqrt(n)
        assert abs(mean - expected) < 4 * se, f"{angle}: {mean} vs {expected} (se {se})"


def test_default_walk_loses_no_energy_under_a_clear_coat(cpu: RenderDevice) -> None:
    """A white Lambert under a smooth, clear, non-absorbing coat loses nothing: every path
    leaves eventually, so its albedo is exactly 1 (the closed form above with rho = 1).
    Catches: layered walks that end at a fixed vertex count instead of by Russian
    roulette; the old default of 16 vertices gave 0.984 here, 14 standard errors low."""
    graph = load_material(
        {
            "version": 1,
            "base": [{"type": "diffuse", "albedo": 1}],
            "layers": [{"ior": 1.5, "roughness": 0.0}],
        }
    )
    q = MaterialQueries(graph, cpu)  # the default walk bound, as renders and bakes use it
    n = 1_000_000  # se 0.0012: the bias must hide below a million-sample furnace's noise
    _, weight, _, _ = q.sample(np.full((n, 2), 0.5), repeat(direction(30.0), n), seed=1)
    mean, se = weight.mean(axis=0), weight.std(axis=0) / np.sqrt(n)
    assert (np.abs(mean - 1.0) < 4 * se).all(), f"albedo {mean} (se {se})"


@pytest.mark.parametrize("base", ["lambert", "conductor", "sheen"])
def test_index_matched_clear_coat_equals_its_base(cpu: RenderDevice, base: str) -> None:
    lobes = LOBES[base]
    plain = MaterialQueries(load_material({"version": 1, "base": lobes}), cpu)
    coated = MaterialQueries(
        load_material(
            {
                "version": 1,
                "base": [{**lobes[0], "roughness": 0.5}] if base == "conductor" else lobes,
                "layers": [{"ior": 1.0, "roughness": 0.0, "absorption": 0.0}],
            }
        ),
        cpu,
    )
    if base == "conductor":
        plain = MaterialQueries(
            load_material({"version": 1, "base": [{**lobes[0], "roughness": 0.5}]}), cpu
        )
    a, b = _hemisphere_pairs(3000, 8)
    uv = np.random.default_rng(0).random((len(a), 2))
    f_plain = plain.evaluate(uv, a, b)
    f_coated = coated.evaluate(uv, a, b, samples=8)
    # Equal but for float rounding of the (identity) refractions.
    np.testing.assert_allclose(f_coated, f_plain, rtol=1e-4, atol=1e-8)


def test_mix_node_blends_stacks_by_its_mask(cpu: RenderDevice) -> None:
    """A mix is resolved by picking a stack at random per evaluation: the expected value is
    the blend, here 0.3 * dark + 0.7 * light for a constant mask of 0.7."""
    graph = {
        "version": 1,
        "nodes": {
            "dark": {"type": "stack", "base": [{"type": "diffuse", "albedo": 0.2}]},
            "light": {"type": "stack", "base": [{"type": "diffuse", "albedo": 0.8}]},
            "both": {"type": "mix", "mask": 0.7, "a": "dark", "b": "light"},
        },
        "root": "both",
    }
    q = MaterialQueries(load_material(graph), cpu)
    n = 2000
    wi, wo = repeat(direction(30.0), n), repeat(direction(50.0, 90.0), n)
    f = q.evaluate(np.full((n, 2), 0.5), wi, wo, samples=64)[:, 0]
    expected = (0.3 * 0.2 + 0.7 * 0.8) * wi[0, 2] / np.pi
    single = np.array([0.2, 0.8]) * wi[0, 2] / np.pi
    se = (single[1] - single[0]) * np.sqrt(0.21 / 64) / np.sqrt(n)
    assert abs(f.mean() - expected) < 5 * se
    assert f.min() < f.max()  # each estimate is a random blend, not a fixed mix


def test_triangle_tangents_follow_du() -> None:
    from renderer.render.scene_buffers import Triangles

    p = np.array([[[0, 0, 0], [2, 0, 0], [0, 0, -3]]], np.float32)
    uv = np.array([[[0, 0], [1, 0], [0, 1]]], np.float32)
    tris = Triangles(p, np.zeros_like(p), uv, np.zeros(1, np.uint32))
    np.testing.assert_allclose(tris.tangents(), [[1, 0, 0]], atol=1e-6)
    flipped = Triangles(p, np.zeros_like(p), uv[:, :, ::-1].copy(), np.zeros(1, np.uint32))
    np.testing.assert_allclose(flipped.tangents(), [[0, 0, -1]], atol=1e-6)
    degenerate = Triangles(p, np.zeros_like(p), np.zeros_like(uv), np.zeros(1, np.uint32))
    np.testing.assert_array_equal(degenerate.tangents(), [[0, 0, 0]])


# Stacks with rough tops (a smooth top adds a delta reflection the walk sees but eval,
# rightly, does not), covering absorption, a scattering slab, three layers and normal maps.
WALK_CHECKED = {
    "coated_plastic": LAYERED["coated_plastic"],
    "three_layers_with_medium": {
        "base": [
            {"type": "sheen", "color": 0.9, "weight": 0.3},
            {"type": "diffuse", "albedo": 0.8},
        ],
        "layers": [
            {"ior": 1.4, "roughness": 0.3},
            {
                "ior": 1.6,
                "roughness": 0.4,
                "thickness": 0.5,
                "absorption": [0.2, 0.5, 1.0],
                "scattering": {"density": 2, "albedo": 0.9, "anisotropy": 0.4},
            },
            {"ior": 1.3, "roughness": 0.5},
        ],
    },
    "bumped_coat_over_metal": {
        "resolution": 64,
        "base": [{"type": "conductor", "metal": "copper", "roughness": 0.4}],
        "normal_map": BUMPS,
        "layers": [{"ior": 1.5, "roughness": 0.3, "normal_map": BUMPS}],
    },
}


def _binned(wi: np.ndarray, weight: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per direction bin and channel: mean of weight * [wi in bin] and its variance."""
    theta = np.arccos(np.clip(wi[:, 2], -1.0, 1.0))
    phi = np.arctan2(wi[:, 1], wi[:, 0])
    edges = [np.linspace(0.0, np.pi / 2, 10), np.linspace(-np.pi, np.pi, 13)]
    mean = np.stack(
        [np.histogram2d(theta, phi, edges, weights=weight[:, c])[0] / n for c in range(3)]
    )
    sq = np.stack(
        [np.histogram2d(theta, phi, edges, weights=weight[:, c] ** 2)[0] / n for c in range(3)]
    )
    return mean, np.maximum(sq - mean**2, 0.0) / n


@pytest.mark.parametrize("name", list(WALK_CHECKED))
def test_layered_eval_matches_the_analog_walk(cpu: RenderDevice, name: str) -> None:
    """The connection estimator (eval) against an independent one: the analog walk that
    samples every event and records where light leaves. Binned by exit direction, the walk's
    weights and the sampler's weights (eval / pdf, so eval integrated over the bin) must
    estimate the same integrals."""
    q = MaterialQueries(load_material({"version": 1, **WALK_CHECKED[name]}), cpu, walk_depth=64)
    n = 300_000
    uv = np.tile((0.3, 0.6), (n, 1))
    for angle in (20.0, 60.0):
        wo = repeat(direction(angle, 15.0), n)
        walk, walk_var = _binned(*q.sample_walk(uv, wo, seed=8), n)
        wi, weight, _, delta = q.sample(uv, wo, seed=9)
        assert not delta.any()
        ev, ev_var = _binned(wi, weight, n)
        z = (walk - ev) / np.sqrt(walk_var + ev_var + 1e-14)
        worst = np.sort(np.abs(z).ravel())[-4:]
        assert np.mean(np.abs(z) < 4) > 0.97, f"{name} at {angle}: worst z {worst}"
        totals = walk.sum(axis=(1, 2)), ev.sum(axis=(1, 2))
        se = np.sqrt(walk_var.sum(axis=(1, 2)) + ev_var.sum(axis=(1, 2)))
        assert (np.abs(totals[0] - totals[1]) < 4 * se).all(), (
            f"{name} at {angle}: albedo {totals[0]} (walk) vs {totals[1]} (eval)"
        )
