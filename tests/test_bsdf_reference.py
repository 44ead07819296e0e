"""Absolute BSDF values: the Slang building blocks of shaders/bsdfs/ (run through the test
kernel tests/kernels/bsdf_reference.slang) and library materials (through MaterialQueries)
against closed forms, published data and quadrature computed here in float64 numpy by
tests/reference_bsdfs.py, never by the shaders' own helpers.

The other BSDF tests check consistency (sampling vs pdf, weight vs eval, reciprocity,
albedo <= 1), which a conductor twice too dark or a Fresnel term without its p-polarised
half passes; these check the numbers themselves.

Tolerances: shader values are float32, so pointwise comparisons are made on float32-rounded
inputs and allow a few ulps times the conditioning of the formula; quadratures state their
own error, measured against a finer rule or a closed form, which is well below the bound.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import reference_bsdfs as ref
from bsdf_checks import direction, repeat

from renderer.device import RenderDevice
from renderer.materials import METALS, MaterialQueries, load_material

KERNEL = (
    str(Path(__file__).resolve().parent / "kernels" / "bsdf_reference.slang"),
    "bsdf_reference",
)
ARGS = 5  # float4 rows per query, as ARGS in the kernel
# Modes of tests/kernels/bsdf_reference.slang.
(
    FRESNEL_DIELECTRIC,
    FRESNEL_CONDUCTOR,
    CONDUCTOR_FROM_ARTIST,
    GGX_D,
    GGX_G1,
    GGX_G,
    ANISOTROPIC_ALPHA,
    CONDUCTOR_EVAL,
    CONDUCTOR_SAMPLE,
    LAMBERT_EVAL,
    LAMBERT_SAMPLE,
    DIELECTRIC_EVAL,
) = range(12)

Run = Callable[..., tuple[np.ndarray, np.ndarray]]


@pytest.fixture(scope="module")
def run(cpu: RenderDevice) -> Run:
    """run(mode, row0, row1, ...) -> (out [N, 4], out2 [N, 4]) in float64; each row is
    [N, <=4] or one vector broadcast to N."""
    kernel = cpu.kernel(*KERNEL)

    def call(mode: int, *rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        arrays = [np.atleast_2d(np.asarray(r, np.float64)) for r in rows]
        n = max(a.shape[0] for a in arrays)
        args = np.zeros((n, ARGS, 4), np.float32)
        for j, a in enumerate(arrays):
            args[:, j, : a.shape[1]] = np.broadcast_to(a, (n, a.shape[1]))
        out, out2 = cpu.zeros(n, 16), cpu.zeros(n, 16)
        kernel.dispatch(
            (n, 1, 1),
            g_args=cpu.upload(args.reshape(n * ARGS, 4)),
            g_out=out,
            g_out2=out2,
            count=n,
            mode=mode,
        )
        return (
            cpu.download(out, np.float32, (n, 4)).astype(np.float64),
            cpu.download(out2, np.float32, (n, 4)).astype(np.float64),
        )

    return call


def f32(x: np.ndarray | float) -> np.ndarray:
    """The value the kernel actually receives: references are computed on it."""
    return np.asarray(x, np.float32).astype(np.float64)


def unit_f32(v: np.ndarray) -> np.ndarray:
    return f32(v / np.linalg.norm(v, axis=-1, keepdims=True))


def upper_directions(n: int, seed: int, min_z: float = 0.02) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    v[:, 2] = np.abs(v[:, 2]) + min_z
    return unit_f32(v)


# Angles up to grazing (89.9 degrees) and exactly grazing (90).
ANGLES = np.array([0.0, 10.0, 30.0, 45.0, 56.31, 60.0, 70.0, 80.0, 85.0, 89.0, 89.9, 90.0])
# Alphas (x, y) from almost smooth to very rough, isotropic and anisotropic either way.
ALPHAS = [
    (0.05, 0.05),
    (0.1, 0.1),
    (0.3, 0.3),
    (0.6, 0.6),
    (1.0, 1.0),
    (0.05, 0.5),
    (0.6, 0.15),
    (1.0, 0.2),
]


# --- Fresnel -------------------------------------------------------------------------------


DIELECTRIC_ETAS = [1.1, 1.33, 1.5, 2.4, 1 / 1.33, 1 / 1.5, 1 / 2.4]


def test_dielectric_fresnel_matches_the_closed_form(run: Run) -> None:
    # Catches: a polarisation half dropped or doubled, eta and 1/eta swapped in Snell's law
    # or in the parallel term, total internal reflection missing (eta < 1 past the critical
    # angle), light from below (cos_i < 0) not swapping the media.
    eta, angle = np.meshgrid(DIELECTRIC_ETAS, ANGLES, indexing="ij")
    eta, cos_i = f32(eta.ravel()), f32(np.cos(np.radians(angle.ravel())))
    for sign in (1.0, -1.0):
        got = run(FRESNEL_DIELECTRIC, np.stack([sign * cos_i, eta], axis=1))[0][:, 0]
        # From below, the media swap: F(-c, eta) is the reflectance of index 1/eta.
        expected = ref.fresnel_dielectric(cos_i, eta if sign > 0 else 1.0 / eta)
        # float32: 1e-6 relative in F; F has an infinite slope in cos_i at the critical
        # angle, and no sample lies within 3 degrees of one (24.6, 41.8, 48.8, 65.4).
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-6)


def test_dielectric_fresnel_at_normal_incidence(run: Run) -> None:
    # Catches: a wrong normal-incidence value, ((eta - 1) / (eta + 1))^2: 0.04 for glass.
    eta = f32(np.array([1.0001, 1.1, 1.33, 1.5, 2.0, 2.4, 3.5, 1 / 1.5, 0.5]))
    for cos_i in (1.0, -1.0):  # from below: the index seen is 1 / eta, the value the same
        got = run(FRESNEL_DIELECTRIC, np.stack([np.full_like(eta, cos_i), eta], axis=1))[0]
        np.testing.assert_allclose(got[:, 0], ((eta - 1) / (eta + 1)) ** 2, rtol=1e-5, atol=1e-8)
    assert run(FRESNEL_DIELECTRIC, [1.0, 1.5])[0][0, 0] == pytest.approx(0.04, abs=1e-7)


# Complex indices: the metal table, a weak absorber, a k = 0 "conductor" (a dielectric) and
# an index below one.
CONDUCTORS = {
    **{name: (np.array(eta), np.array(k)) for name, (eta, k) in METALS.items()},
    "weak_absorber": (np.array([1.5, 2.0, 3.0]), np.array([0.1, 0.5, 1.0])),
    "dielectric_k0": (np.array([1.5, 1.33, 2.4]), np.array([0.0, 0.0, 0.0])),
    "eta_below_one": (np.array([0.05, 0.3, 0.9]), np.array([1.0, 6.0, 12.0])),
}


def test_reference_conductor_fresnel_is_sound() -> None:
    # The reference itself, against independent facts: k = 0 is the dielectric formula, the
    # normal-incidence closed form, and Abeles' relation R_p = R_s^2 at 45 degrees (any n).
    cos_i = np.cos(np.radians(ANGLES))
    r = ref.fresnel_conductor(cos_i, 1.5, 0.0)
    np.testing.assert_allclose(r, ref.fresnel_dielectric(cos_i, 1.5), rtol=1e-9, atol=1e-12)
    for eta, k in CONDUCTORS.values():
        np.testing.assert_allclose(ref.fresnel_conductor(1.0, eta, k), ref.fresnel_normal(eta, k))
        r_s, r_p = ref.fresnel_conductor_sp(np.cos(np.pi / 4), eta, k)
        np.testing.assert_allclose(r_p, r_s**2, rtol=1e-12)


@pytest.mark.parametrize("name", list(CONDUCTORS))
def test_conductor_fresnel_matches_complex_amplitudes(run: Run, name: str) -> None:
    # Catches: the p-polarised half dropped (R = R_s, or R_s / 2), the sin^2 / cos^2 terms
    # swapped, eta and k swapped, |cos_i| not taken, a wrong a^2 + b^2 term.
    eta, k = (f32(v) for v in CONDUCTORS[name])
    cos_i = f32(np.cos(np.radians(ANGLES)))
    got = run(FRESNEL_CONDUCTOR, cos_i[:, None], eta, k)[0][:, :3]
    expected = ref.fresnel_conductor(cos_i[:, None], eta[None, :], k[None, :])
    # float32 with cancellation in eta^2 - k^2 - sin^2 (k up to 12): 2e-5 relative.
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    # The shader is symmetric in the sign of cos_i (a conductor has one side).
    np.testing.assert_allclose(run(FRESNEL_CONDUCTOR, -cos_i[:, None], eta, k)[0][:, :3], got)
    # Normal incidence: |(n - 1) / (n + 1)|^2.
    np.testing.assert_allclose(got[0], ref.fresnel_normal(eta, k), rtol=2e-5)


# --- Artist-colour conductors ----------------------------------------------------------------


REFLECTIVITIES = np.array([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.98])
EDGE_TINTS = np.array([0.0, 0.3, 0.7, 1.0])


def test_artist_conductor_reproduces_its_reflectivity(run: Run) -> None:
    # Catches: Gulbrandsen's n_min / n_max swapped or mis-weighted by the edge tint, k not
    # solving F(0) = r (e.g. (n - 1)^2 and (n + 1)^2 swapped), r and g swapped.
    r, g = (f32(a.ravel()) for a in np.meshgrid(REFLECTIVITIES, EDGE_TINTS, indexing="ij"))
    rgb_r, rgb_g = np.stack([r, r, r], axis=1), np.stack([g, g, g], axis=1)
    out, out2 = run(CONDUCTOR_FROM_ARTIST, rgb_r, rgb_g)
    eta, k = out[:, 0], out2[:, 0]
    ref_eta, ref_k = ref.artist_to_complex_ior(r, g)
    # float32: n_max = (1 + sqrt r) / (1 - sqrt r) loses ~1e-7 / (1 - sqrt r) relative (4e-5
    # at r = 0.98). k^2 = ((n + 1)^2 r - (n - 1)^2) / (1 - r) is a difference of two terms
    # of size (n + 1)^2 (equal when g = 0), so it carries an absolute error of a few ulps of
    # (n + 1)^2 / (1 - r): 1e-6 of that (k = 0.035 instead of 0 at r = 0.9; F moves 1e-7).
    np.testing.assert_allclose(eta, ref_eta, rtol=1e-4)
    k2_error = 1e-6 * (ref_eta + 1) ** 2 / (1 - r)
    assert (np.abs(k**2 - ref_k**2) <= 1e-4 * ref_k**2 + k2_error).all()
    # The point of the mapping: at normal incidence the shader's Fresnel returns r itself
    # (checked with the reference Fresnel too, so neither side's formula is trusted alone).
    f0 = run(FRESNEL_CONDUCTOR, [1.0], out[:, :3], out2[:, :3])[0][:, 0]
    np.testing.assert_allclose(f0, r, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ref.fresnel_normal(eta, k), r, rtol=1e-4, atol=1e-6)
    # And every artist conductor goes to total reflection at grazing incidence.
    grazing = run(FRESNEL_CONDUCTOR, [0.0], out[:, :3], out2[:, :3])[0][:, 0]
    np.testing.assert_allclose(grazing, 1.0, atol=1e-5)


def test_artist_conductor_material_reflects_its_reflectivity(cpu: RenderDevice) -> None:
    # Catches: the material path (loader -> tables -> base lobe) passing the reflectivity as
    # an index (ior mode), dropping or swapping the edge tint, or reordering channels.
    reflectivity, tint = [0.95, 0.64, 0.3], [0.2, 0.9, 0.5]
    graph = load_material(
        {
            "version": 1,
            "base": [
                {
                    "type": "conductor",
                    "reflectivity": reflectivity,
                    "edge_tint": tint,
                    "roughness": 0.0,
                }
            ],
        }
    )
    q = MaterialQueries(graph, cpu)
    _, weight, pdf, delta = q.sample(np.full((4, 2), 0.5), repeat(direction(0.0), 4))
    assert delta.all() and (pdf > 0).all()
    np.testing.assert_allclose(weight, repeat(np.array(reflectivity), 4), rtol=1e-4)
    # At 60 degrees: the reference Fresnel of the reference (Gulbrandsen) index.
    eta, k = ref.artist_to_complex_ior(f32(reflectivity), f32(tint))
    _, weight, _, _ = q.sample(np.full((1, 2), 0.5), direction(60.0)[None, :])
    expected = ref.fresnel_conductor(np.cos(np.radians(60.0)), eta, k)
    np.testing.assert_allclose(weight[0], expected, rtol=2e-4)


# --- Metal index table -----------------------------------------------------------------------

# Published complex indices at the table's wavelengths 650, 550 and 450 nm (R, G, B), each
# linearly interpolated in the refractiveindex.info database
# (github.com/polyanskiy/refractiveindex.info-database, database/data-nk/...):
# - Au, Ag, Cu: P. B. Johnson, R. W. Christy, Phys. Rev. B 6, 4370 (1972) (main/*/Johnson.yml)
#   and K. M. McPeak et al., ACS Photonics 2, 326 (2015) (main/*/McPeak.yml);
# - Al: A. D. Rakic, Appl. Opt. 34, 4755 (1995) (main/Al/Rakic.yml) and McPeak 2015;
# - brass (Cu70Zn30): M. R. Querry, CRDC-CR-85034 (1985) (other/alloys/Cu-Zn/Querry-Cu70Zn30);
# - Fe: P. B. Johnson, R. W. Christy, Phys. Rev. B 9, 5056 (1974) (main/Fe/Johnson.yml).
PUBLISHED: dict[str, list[tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "gold": [
        ((0.156, 0.424, 1.383), (3.602, 2.472, 1.916)),
        ((0.125, 0.324, 1.538), (3.792, 2.597, 1.911)),
    ],
    "silver": [
        ((0.052, 0.060, 0.040), (4.409, 3.597, 2.648)),
        ((0.051, 0.044, 0.041), (4.460, 3.610, 2.676)),
    ],
    "copper": [
        ((0.238, 1.007, 1.240), (3.626, 2.582, 2.393)),
        ((0.104, 0.797, 1.048), (3.776, 2.564, 2.414)),
    ],
    "aluminium": [
        ((1.558, 1.015, 0.633), (7.712, 6.627, 5.454)),
        ((1.246, 0.789, 0.489), (6.852, 5.852, 4.778)),
    ],
    "brass": [((0.444, 0.527, 1.094), (3.695, 2.765, 1.829))],
    "iron": [((2.911, 2.950, 2.584), (3.089, 2.932, 2.767))],
}
# Tolerance on the normal-incidence reflectance R0 (what a render shows; n alone is poorly
# conditioned where it is small): the table must lie within the range of the cited data sets
# widened by 0.03. The sets themselves differ by up to 0.05 on absorption edges (gold and
# copper near 550 nm: sample preparation), and the table gives "roughly" these wavelengths:
# 10 nm moves R0 by up to ~0.03 on those edges. 0.03 is about a 3% reflectance change, a
# visible tint on a white metal.
R0_MARGIN = 0.03


@pytest.mark.parametrize("metal", list(METALS))
def test_metal_table_matches_published_indices(metal: str) -> None:
    # Catches: a mistyped table entry, eta and k swapped, channels in B, G, R order, a metal
    # copied from another (these move R0 by 0.1 or more in some channel). The table once
    # held channel-averaged values for gold and silver (blue R0 0.324 and 0.907) under its
    # single-wavelength label (0.39-0.41 and 0.975-0.980 published at 450 nm).
    assert set(PUBLISHED) == set(METALS)
    table_r0 = ref.fresnel_normal(*METALS[metal])
    published_r0 = np.array([ref.fresnel_normal(eta, k) for eta, k in PUBLISHED[metal]])
    low, high = published_r0.min(axis=0) - R0_MARGIN, published_r0.max(axis=0) + R0_MARGIN
    assert ((table_r0 >= low) & (table_r0 <= high)).all(), (
        f"{metal}: table R0 {table_r0.round(3)} outside published "
        f"[{published_r0.min(axis=0).round(3)}, {published_r0.max(axis=0).round(3)}] +- {R0_MARGIN}"
    )


def test_metal_presets_render_their_table_fresnel(cpu: RenderDevice) -> None:
    # Catches: the loader or the tables passing a preset's k as eta (or the reverse), or a
    # preset reaching the shader in artist mode; smooth metals reflect exactly F(cos).
    for metal, (eta, k) in METALS.items():
        graph = load_material(
            {"version": 1, "base": [{"type": "conductor", "metal": metal, "roughness": 0.0}]}
        )
        q = MaterialQueries(graph, cpu)
        for angle in (0.0, 60.0, 85.0):
            _, weight, _, delta = q.sample(np.full((1, 2), 0.5), direction(angle, 30.0)[None, :])
            assert delta[0]
            expected = ref.fresnel_conductor(np.cos(np.radians(angle)), f32(eta), f32(k))
            np.testing.assert_allclose(weight[0], expected, rtol=1e-4, err_msg=metal)


# --- GGX distribution and Smith masking ------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
def test_ggx_d_matches_the_closed_form(run: Run, alpha: tuple[float, float]) -> None:
    # Catches: alpha_x and alpha_y swapped (the +X tangent convention), alpha vs alpha^2,
    # a missing pi, a wrong power of the denominator.
    m = upper_directions(4000, 1, min_z=0.0)
    got = run(GGX_D, alpha, m)[0][:, 0]
    # float32: D has relative condition ~4 tan^2(theta) / alpha^2 in m; the sampled m are
    # float32-rounded before both sides see them, so only rounding inside D remains.
    np.testing.assert_allclose(got, ref.ggx_d(m, *alpha), rtol=2e-5, atol=1e-30)
    below = m * np.array([1.0, 1.0, -1.0])
    assert (run(GGX_D, alpha, below)[0][:, 0] == 0).all()


@pytest.mark.parametrize("alpha", [*ALPHAS, (0.0022, 0.0022)])
def test_ggx_projected_area_is_one(run: Run, alpha: tuple[float, float]) -> None:
    # Catches: D off by a constant (a factor 2, a missing pi, alpha_x alpha_y vs alpha^2 in
    # the normalisation), which every ratio-based test (weight = eval / pdf) cancels.
    m, weight = ref.slope_quadrature(*alpha)
    d = run(GGX_D, alpha, m)[0][:, 0]
    # The rule integrates the exact GGX to 1e-13 (checked here); float32 D: 1e-6.
    assert np.sum(ref.ggx_d(m, *alpha) * m[:, 2] * weight) == pytest.approx(1.0, abs=1e-10)
    assert np.sum(d * m[:, 2] * weight) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_smith_masking_matches_the_closed_form(run: Run, alpha: tuple[float, float]) -> None:
    # Catches: Lambda without its 1/2 or with alpha_x / alpha_y swapped, the Beckmann Lambda
    # with a GGX D, the separable G1 G1 instead of the height-correlated G2.
    w = upper_directions(2000, 2, min_z=0.0)
    wi = upper_directions(2000, 3, min_z=0.0)
    out = run(GGX_G1, alpha, w)[0]
    lam = ref.smith_lambda(w, *alpha)
    # float32: Lambda ~ tan(theta) near grazing, computed as a sqrt of a sum: 1e-5 relative.
    np.testing.assert_allclose(out[:, 1], lam, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out[:, 0], 1 / (1 + lam), rtol=1e-5)
    g2 = run(GGX_G, alpha, w, wi)[0][:, 0]
    np.testing.assert_allclose(g2, 1 / (1 + lam + ref.smith_lambda(wi, *alpha)), rtol=1e-5)


WHITE_FURNACE_ANGLES = (0.0, 30.0, 60.0, 80.0, 89.0)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_smith_weak_white_furnace(run: Run, alpha: tuple[float, float]) -> None:
    # Heitz 2014 eq. 20: the visible projected area of the microfacets equals the macro
    # surface's, int D(m) G1(wo) max(0, wo.m) dm = wo.z, for every wo: Lambda and D are
    # each other's match. Catches a Lambda (or G1) of the wrong distribution or roughness
    # (e.g. Lambda missing its 1/2, alpha^2 for alpha, axes swapped on one side only).
    m, weight = ref.slope_quadrature(*alpha)
    d = run(GGX_D, alpha, m)[0][:, 0]
    for angle in WHITE_FURNACE_ANGLES:
        for phi in (0.0, 35.0, 90.0):
            wo = unit_f32(direction(angle, phi))
            g1 = run(GGX_G1, alpha, wo)[0][0, 0]
            projected = np.maximum(m @ wo, 0.0) * weight
            # The rule's error at the kink wo.m = 0 is < 1e-4 (the reference on the same
            # nodes checks it); the bound adds float32 D and G1 (1e-5).
            expected = np.sum(ref.ggx_d(m, *alpha) * projected) / wo[2]
            assert expected / (1 + ref.smith_lambda(wo[None], *alpha)[0]) == pytest.approx(
                1.0, abs=1e-4
            )
            furnace = g1 * np.sum(d * projected) / wo[2]
            assert furnace == pytest.approx(1.0, abs=2e-4), f"{alpha}, wo {angle}/{phi}"


def test_anisotropic_alpha_follows_its_convention(run: Run) -> None:
    # Catches: anisotropy stretching the wrong axis (+X is the tangent for anisotropy > 0)
    # or the aspect applied squared: alpha = roughness^2, aspect = sqrt(1 - 0.9 |a|)
    # (Burley 2012; Kulla and Conty 2017), alpha_x = alpha / aspect, alpha_y = alpha aspect.
    rough = np.array([0.2, 0.5, 0.5, 0.5, 1.0, 0.7])
    aniso = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 0.3])
    got = run(ANISOTROPIC_ALPHA, np.stack([rough, aniso], axis=1))[0][:, :2]
    alpha, aspect = rough**2, np.sqrt(1 - 0.9 * np.abs(aniso))
    stretch = np.where(aniso >= 0, 1 / aspect, aspect)
    np.testing.assert_allclose(got, np.stack([alpha * stretch, alpha / stretch], 1), rtol=1e-6)


# --- Conductor lobe ---------------------------------------------------------------------------

GOLD = (f32(METALS["gold"][0]), f32(METALS["gold"][1]))
# eta = 0: n = i k reflects everything at every angle (|r_s| = |r_p| = 1).
PERFECT = (np.zeros(3), np.ones(3))


@pytest.mark.parametrize("alpha", ALPHAS)
def test_conductor_eval_matches_the_reference(run: Run, alpha: tuple[float, float]) -> None:
    # Catches: a conductor twice too dark or bright, the cosine not folded in (or folded in
    # twice), the Fresnel term at wo.z instead of wo.h, G1(wo) for the pair's G2.
    wo, wi = upper_directions(3000, 4), upper_directions(3000, 5)
    for eta, k in (GOLD, PERFECT):
        got = run(CONDUCTOR_EVAL, alpha, wo, wi, eta, k)[0][:, :3]
        expected = ref.conductor_f_cos(wo, wi, alpha, eta, k)
        # float32: D's conditioning through h = normalize(wo + wi) (up to ~1e-5 at alpha
        # 0.05) and the Fresnel cancellation (2e-5).
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_reference_albedo_of_a_white_conductor_is_one_minus_ln2() -> None:
    # The albedo reference against a closed form: for alpha = 1, D = 1 / pi, and at normal
    # incidence F = 1 and the height-correlated G2 = 2 cos_i / (1 + cos_i) integrate to
    # 2 int_0^{pi/4} tan(t) cos(2 t) dt = 1 - ln 2.
    albedo = ref.conductor_albedo(np.array([0.0, 0.0, 1.0]), (1.0, 1.0), *PERFECT)
    np.testing.assert_allclose(albedo, 1 - np.log(2), rtol=1e-4)


ALBEDO_ANGLES = (0.0, 45.0, 75.0, 88.0)


@pytest.mark.parametrize("alpha", [(0.05, 0.05), (0.3, 0.3), (1.0, 1.0), (0.6, 0.15)])
def test_rough_conductor_albedo_matches_quadrature(run: Run, alpha: tuple[float, float]) -> None:
    # The albedo is the mean sample weight (weight = f cos / pdf): the shader's sampler,
    # eval and Fresnel together against the reference integrated over half vectors.
    # Catches: energy lost or made by a wrong G2 / G1 ratio, a sampler whose weight forgets
    # F or G, a lobe that is uniformly too dark or bright at one roughness.
    n = 40_000
    u = np.random.default_rng(6).random((n, 3))
    for eta, k in (PERFECT, GOLD):
        for angle in ALBEDO_ANGLES:
            wo = unit_f32(direction(angle, 25.0))
            weight = run(CONDUCTOR_SAMPLE, alpha, wo, u, eta, k)[0]
            assert not (weight[:, 3] == 2).any()  # rough: no delta; some fail (wi below)
            w = np.where(weight[:, 3:4] == 1, weight[:, :3], 0.0)
            se = w.std(axis=0) / np.sqrt(n)
            expected = ref.conductor_albedo(wo, alpha, eta, k)
            # 5 standard errors of the mean plus the rule's error (< 1e-4, measured
            # against a rule with twice the nodes per axis).
            assert (np.abs(w.mean(axis=0) - expected) <= 5 * se + 1e-4).all(), (
                f"alpha {alpha}, {angle} deg: {w.mean(axis=0)} vs {expected} (se {se})"
            )


# --- Lambert ---------------------------------------------------------------------------------


def test_lambert_albedo_is_its_reflectance(run: Run) -> None:
    # Catches: the cosine dropped from (or doubled in) eval, 1 / pi missing or 1 / (2 pi),
    # a sample weight that is not the reflectance.
    rho = np.array([0.25, 0.5, 1.0])
    # Gauss-Legendre in cos(theta) is exact for eval = rho cos / pi (degree 1).
    mu, w_mu = np.polynomial.legendre.leggauss(8)
    mu, w_mu = 0.5 * (mu + 1), 0.5 * w_mu
    phi = (np.arange(16) + 0.5) * (2 * np.pi / 16)
    mm, pp = np.meshgrid(mu, phi, indexing="ij")
    s = np.sqrt(1 - mm**2)
    wi = unit_f32(np.stack([s * np.cos(pp), s * np.sin(pp), mm], -1).reshape(-1, 3))
    d_omega = np.repeat(w_mu, len(phi)) * (2 * np.pi / len(phi))
    for angle in (0.0, 40.0, 85.0):
        wo = unit_f32(direction(angle, 10.0))
        f_cos, pdf = run(LAMBERT_EVAL, rho, wo, wi)
        np.testing.assert_allclose(f_cos[:, :3], rho[None, :] * wi[:, 2:3] / np.pi, rtol=1e-6)
        np.testing.assert_allclose(pdf[:, 0], wi[:, 2] / np.pi, rtol=1e-6)
        np.testing.assert_allclose(f_cos[:, :3].T @ d_omega, rho, rtol=1e-5)
        u = np.random.default_rng(7).random((1000, 3))
        weight = run(LAMBERT_SAMPLE, rho, wo, u)[0]
        assert (weight[:, 3] == 1).all()
        np.testing.assert_allclose(weight[:, :3], repeat(rho, 1000), rtol=1e-6)


def test_diffuse_material_albedo_is_its_albedo(cpu: RenderDevice) -> None:
    # Catches the same through the material path (albedo texture -> Lambert reflectance):
    # a gamma or scale applied to a constant albedo, channels reordered.
    albedo = [0.2, 0.5, 0.8]
    q = MaterialQueries(
        load_material({"version": 1, "base": [{"type": "diffuse", "albedo": albedo}]}), cpu
    )
    wi = upper_directions(500, 8)
    for angle in (0.0, 60.0):
        wo = direction(angle, 45.0)
        _, weight, pdf, _ = q.sample(np.full((500, 2), 0.5), repeat(wo, 500), seed=3)
        assert (pdf > 0).all()
        np.testing.assert_allclose(weight, repeat(np.array(albedo), 500), rtol=1e-5)
        f_cos = q.evaluate(np.full((500, 2), 0.5), wi, repeat(wo, 500))
        np.testing.assert_allclose(f_cos, np.outer(wi[:, 2], albedo) / np.pi, rtol=1e-5)


# --- Dielectric lobe --------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [(0.1, 0.1), (0.5, 0.5), (0.6, 0.15)])
@pytest.mark.parametrize("eta", [1.5, 1 / 1.33])
def test_dielectric_eval_matches_walter(run: Run, alpha: tuple[float, float], eta: float) -> None:
    # Catches: transmission with the wrong Jacobian (eta_path on the wrong term), 1 - F
    # taken on the wrong side, the radiance scaling applied the wrong way round, reflection
    # and transmission from below with the media not swapped.
    n = 3000
    rng = np.random.default_rng(9)
    wo, wi = upper_directions(n, 10), upper_directions(n, 11)
    # All four side combinations: reflection above / below, transmission both ways.
    wo[: n // 2, 2] *= -1
    wi[n // 4 : 3 * n // 4, 2] *= -1
    wo, wi = wo[rng.permutation(n)], wi[rng.permutation(n)]
    eta32 = float(f32(eta))
    for radiance in (False, True):
        params = [alpha[0], alpha[1], eta32, float(radiance)]
        got = run(DIELECTRIC_EVAL, params, wo, wi)[0][:, 0]
        expected = ref.dielectric_f_cos(wo, wi, alpha, eta32, radiance)
        assert (expected > 0).sum() > n // 2
        # float32: as the conductor, plus the cancellation in wi.m + wo.m / eta near the
        # refraction's degenerate pairs (denominator -> 0, both sides huge).
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6)
