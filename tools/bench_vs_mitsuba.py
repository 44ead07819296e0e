"""nrender against Mitsuba 3 on the same scenes, at equal resolution, samples and cores.

    pip install mitsuba   # the optional benchmark dependency (its scalar_rgb variant)
    python tools/bench_vs_mitsuba.py [--size 64 48] [--spp 16] [--reference-spp 1024]
        [--threads 1] [--out bench_vs_mitsuba]

Both renderers read the same triangle meshes (written here as OBJ files), or the same
analytic sphere (the third scene: nrender's `sphere` shape, Mitsuba's `sphere`), the same
materials (diffuse; a GGX conductor with the same complex index and alpha), lights and
camera. For each scene the tool
1. renders a long reference with each renderer and compares them (image means and the
   share of pixels within 4 combined standard errors), so a disagreement is found before
   any speed is compared;
2. renders `--repeats` short runs with each, timing the render alone (scene loading and
   kernel compiles excluded, the same for both), and measures the RMSE of each run against
   the mean of the two references;
3. reports the equal-quality time ratio: the time nrender needs to reach Mitsuba's error,
   time_nrender * MSE_nrender / (time_mitsuba * MSE_mitsuba), which is valid because
   the MSE of an unbiased renderer falls as 1/samples.
It writes `OUT.json` and `OUT.md` and prints the Markdown. A benchmark, not a test.

Known model differences (reported, not hidden): Mitsuba's GGX masking is the separable
G1(wo) G1(wi), nrender's the height-correlated G2, which is a little brighter at grazing
angles on rough conductors; Mitsuba's `max_depth` counts path vertices (nrender's
`max_depth` + 1).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from renderer import Renderer, load_scene
from renderer.device import open_device
from renderer.json_output import dumps
from renderer.materials.loader import METALS


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray, normals=None) -> str:
    lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in vertices]
    if normals is not None:
        lines += [f"vn {x:.9g} {y:.9g} {z:.9g}" for x, y, z in normals]
        lines += [f"f {a + 1}//{a + 1} {b + 1}//{b + 1} {c + 1}//{c + 1}" for a, b, c in faces]
    else:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
    return path.name


def quad(corner, edge_u, edge_v) -> tuple[np.ndarray, np.ndarray]:
    """Two triangles facing along edge_u x edge_v."""
    c, u, v = (np.asarray(a, np.float64) for a in (corner, edge_u, edge_v))
    return np.array([c, c + u, c + u + v, c + v]), np.array([[0, 1, 2], [0, 2, 3]])


def box(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """A closed box with outward faces."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    parts = []
    x, y, z = hi - lo
    for corner, u, v in (
        (lo, (0, 0, z), (0, y, 0)),  # -x
        (lo + np.array([x, 0, 0]), (0, y, 0), (0, 0, z)),  # +x
        (lo, (x, 0, 0), (0, 0, z)),  # -y
        (lo + np.array([0, y, 0]), (0, 0, z), (x, 0, 0)),  # +y
        (lo, (0, y, 0), (x, 0, 0)),  # -z
        (lo + np.array([0, 0, z]), (x, 0, 0), (0, y, 0)),  # +z
    ):
        parts.append(quad(corner, u, v))
    return merge(parts)


def merge(parts) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, offset = [], [], 0
    for v, f in parts:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)


def uv_sphere(center, radius, segments=64, rings=32):
    theta = np.linspace(0, np.pi, rings + 1)
    phi = np.linspace(0, 2 * np.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    n = np.stack([np.sin(t) * np.cos(p), np.cos(t), -np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    faces = []
    for i in range(rings):
        for j in range(segments):
            a, b = i * (segments + 1) + j, (i + 1) * (segments + 1) + j
            if i > 0:
                faces.append([a, b, a + 1])
            if i < rings - 1:
                faces.append([a + 1, b, b + 1])
    return np.asarray(center) + radius * n, np.array(faces), n


# --- The scenes, as (meshes, camera, environment, depth) descriptions ---------------------


def cornell(folder: Path) -> dict[str, Any]:
    white, red, green = 0.73, (0.63, 0.065, 0.05), (0.14, 0.45, 0.091)
    shapes = [
        ("floor", quad((-1, 0, -1), (0, 0, 2), (2, 0, 0)), white, None),
        ("ceiling", quad((-1, 2, -1), (2, 0, 0), (0, 0, 2)), white, None),
        ("back", quad((-1, 0, -1), (2, 0, 0), (0, 2, 0)), white, None),
        ("left", quad((-1, 0, -1), (0, 2, 0), (0, 0, 2)), red, None),
        ("right", quad((1, 0, -1), (0, 0, 2), (0, 2, 0)), green, None),
        ("tall", box((-0.6, 0, -0.6), (-0.05, 1.2, -0.05)), white, None),
        ("short", box((0.1, 0, -0.2), (0.65, 0.6, 0.35)), white, None),
        ("lamp", quad((-0.25, 1.999, -0.25), (0.5, 0, 0), (0, 0, 0.5)), 0.0, 17.0),  # faces down
    ]
    return {
        "name": "cornell box",
        "shapes": [(n, write_obj(folder / f"{n}.obj", *m), a, e, None) for n, m, a, e in shapes],
        "camera": {"position": [0, 1, 3.4], "look_at": [0, 1, 0], "fov": 39.3},
        "environment": None,
        "max_depth": 8,
    }


def glossy_sphere(folder: Path) -> dict[str, Any]:
    eta, k = METALS["gold"]
    v, f, n = uv_sphere((0, 0.5, 0), 0.5)
    ground = quad((-6, 0, -6), (0, 0, 12), (12, 0, 0))
    conductor = {"eta": eta, "k": k, "roughness": 0.4}
    return {
        "name": "glossy sphere on a ground plane",
        "shapes": [
            ("ground", write_obj(folder / "ground.obj", *ground), 0.5, None, None),
            ("ball", write_obj(folder / "ball.obj", v, f, n), None, None, conductor),
        ],
        "camera": {"position": [0, 1.2, 3.0], "look_at": [0, 0.4, 0], "fov": 35},
        "environment": [0.8, 0.9, 1.0],
        "max_depth": 6,
    }


def glossy_analytic_sphere(folder: Path) -> dict[str, Any]:
    """The glossy sphere with an exact sphere in both renderers instead of 4 096 triangles."""
    desc = glossy_sphere(folder)
    name, _, albedo, emission, conductor = desc["shapes"][1]
    sphere = {"sphere": {"center": [0.0, 0.5, 0.0], "radius": 0.5}}
    desc["shapes"][1] = (name, sphere, albedo, emission, conductor)
    desc["name"] = "glossy analytic sphere on a ground plane"
    return desc


def nrender_scene(desc: dict[str, Any], size, spp: int, seed: int) -> dict[str, Any]:
    materials, meshes, instances = {}, {}, []
    for name, path, albedo, emission, conductor in desc["shapes"]:
        if conductor is not None:
            lobe = {"type": "conductor", "eta": list(conductor["eta"]), "k": list(conductor["k"])}
            lobe["roughness"] = conductor["roughness"]
            material = {"type": "layered", "graph": {"version": 1, "base": [lobe]}}
        else:
            material = {
                "type": "diffuse",
                "albedo": albedo if np.isscalar(albedo) else list(albedo),
            }
            if emission is not None:
                material["emission"] = emission
        materials[name] = material
        if isinstance(path, dict):  # an analytic sphere
            meshes[name] = {"type": "sphere", "radius": path["sphere"]["radius"]}
            place = {"translate": path["sphere"]["center"]}
            instances.append({"mesh": name, "material": name, "transform": place})
            continue
        meshes[name] = {"type": "file", "path": path, "smooth": conductor is not None}
        instances.append({"mesh": name, "material": name})
    scene = {
        "version": 1,
        "camera": {**desc["camera"], "resolution": list(size)},
        "integrator": {"spp": spp, "max_depth": desc["max_depth"], "seed": seed},
        "materials": materials,
        "meshes": meshes,
        "instances": instances,
    }
    if desc["environment"] is not None:
        scene["environment"] = {"type": "constant", "radiance": desc["environment"]}
    return scene


def mitsuba_scene(mi, desc: dict[str, Any], folder: Path, size, spp: int, seed: int):
    cam = desc["camera"]
    scene: dict[str, Any] = {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": desc["max_depth"] + 1},
        "sensor": {
            "type": "perspective",
            "fov": cam["fov"],
            "fov_axis": "y",
            "to_world": mi.ScalarTransform4f().look_at(
                origin=cam["position"], target=cam["look_at"], up=[0, 1, 0]
            ),
            "film": {
                "type": "hdrfilm",
                "width": size[0],
                "height": size[1],
                "rfilter": {"type": "box"},
                "pixel_format": "rgb",
            },
            "sampler": {"type": "independent", "sample_count": spp, "seed": seed},
        },
    }
    for name, path, albedo, emission, conductor in desc["shapes"]:
        shape: dict[str, Any]
        if isinstance(path, dict):  # an analytic sphere
            shape = {"type": "sphere", **path["sphere"]}
        else:
            shape = {
                "type": "obj",
                "filename": str(folder / path),
                "face_normals": conductor is None,
            }
        if conductor is not None:
            alpha = conductor["roughness"] ** 2
            shape["bsdf"] = {
                "type": "roughconductor",
                "distribution": "ggx",
                "alpha": alpha,
                "eta": {"type": "rgb", "value": list(conductor["eta"])},
                "k": {"type": "rgb", "value": list(conductor["k"])},
            }
        else:
            rgb = [albedo] * 3 if np.isscalar(albedo) else list(albedo)
            # nrender shades diffuse surfaces from both sides; Mitsuba's diffuse is one-sided.
            diffuse = {"type": "diffuse", "reflectance": {"type": "rgb", "value": rgb}}
            shape["bsdf"] = {"type": "twosided", "material": diffuse}
        if emission is not None:
            shape["emitter"] = {
                "type": "area",
                "radiance": {"type": "rgb", "value": [emission] * 3},
            }
        scene[name] = shape
    if desc["environment"] is not None:
        scene["sky"] = {
            "type": "constant",
            "radiance": {"type": "rgb", "value": list(desc["environment"])},
        }
    return mi.load_dict(scene)


class Runs:
    """Renders of one scene by both renderers, timed without loading and compiling."""

    def __init__(self, desc, folder: Path, size) -> None:
        import mitsuba as mi

        self.mi, self.desc, self.folder, self.size = mi, desc, folder, size
        self.device = open_device("cpu")
        scene = load_scene(nrender_scene(desc, size, 1, 0), base_dir=folder)
        self.nrender = Renderer(scene, self.device)
        self.nrender.render(spp=1)  # compile the kernels outside the timings
        self.mitsuba = mitsuba_scene(mi, desc, folder, size, 1, 0)
        mi.render(self.mitsuba, spp=1)

    def nrender_image(self, spp: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
        start = time.perf_counter()
        result = self.nrender.render(spp=spp, seed=seed)
        seconds = time.perf_counter() - start
        return result.radiance.astype(np.float64), result.variance.astype(np.float64), seconds

    def mitsuba_image(self, spp: int, seed: int) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        image = self.mi.render(self.mitsuba, spp=spp, seed=seed)
        seconds = time.perf_counter() - start
        return np.asarray(image, np.float64)[..., :3], seconds


def mitsuba_reference(runs: Runs, spp: int, chunks: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the mean from independent chunks (Mitsuba gives no variance)."""
    per = max(spp // chunks, 1)
    images = np.stack([runs.mitsuba_image(per, 1000 + c)[0] for c in range(chunks)])
    return images.mean(0), images.var(0, ddof=1) / chunks


def compare(runs: Runs, reference_spp: int, spp: int, repeats: int) -> dict[str, Any]:
    n_ref, n_var, _ = runs.nrender_image(reference_spp, 999)
    m_ref, m_var = mitsuba_reference(runs, reference_spp)
    z = np.abs(n_ref - m_ref) / np.sqrt(n_var + m_var + 1e-12)
    reference = 0.5 * (n_ref + m_ref)
    rows = {"nrender": [], "mitsuba": []}
    for r in range(repeats):
        image, _, seconds = runs.nrender_image(spp, r)
        rows["nrender"].append((float(np.mean((image - reference) ** 2)), seconds))
        image, seconds = runs.mitsuba_image(spp, r)
        rows["mitsuba"].append((float(np.mean((image - reference) ** 2)), seconds))
    stats = {
        k: {
            "mse": float(np.mean([m for m, _ in v])),
            "seconds": float(np.median([s for _, s in v])),
        }
        for k, v in rows.items()
    }
    n, m = stats["nrender"], stats["mitsuba"]
    return {
        "scene": runs.desc["name"],
        "reference": {
            "spp": reference_spp,
            "mean_nrender": n_ref.mean(axis=(0, 1)).tolist(),
            "mean_mitsuba": m_ref.mean(axis=(0, 1)).tolist(),
            "pixels_within_4_se": float(np.mean(z < 4)),
            "relative_mean_difference": float((n_ref.mean() - m_ref.mean()) / m_ref.mean()),
        },
        "spp": spp,
        "nrender": {**n, "rmse": float(np.sqrt(n["mse"]))},
        "mitsuba": {**m, "rmse": float(np.sqrt(m["mse"]))},
        "equal_quality_time_ratio": (n["seconds"] * n["mse"]) / (m["seconds"] * m["mse"]),
    }


def markdown(results: list[dict[str, Any]], args) -> str:
    lines = [
        f"{args.size[0]}x{args.size[1]}, {args.spp} spp, {args.threads} thread(s) each, "
        f"references {args.reference_spp} spp. Times are the render alone (median of "
        f"{args.repeats}); the ratio is nrender's equal-quality time over Mitsuba's "
        "(below 1: nrender is faster).",
        "",
        "| scene | mean nrender / mitsuba (ref) | pixels within 4 se | nrender s | rmse "
        "| mitsuba s | rmse | equal-quality time ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        ref = r["reference"]
        lines.append(
            f"| {r['scene']} | {1 + ref['relative_mean_difference']:.4f} | "
            f"{ref['pixels_within_4_se']:.3f} | {r['nrender']['seconds']:.3f} | "
            f"{r['nrender']['rmse']:.4f} | {r['mitsuba']['seconds']:.3f} | "
            f"{r['mitsuba']['rmse']:.4f} | {r['equal_quality_time_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[64, 48])
    parser.add_argument("--spp", type=int, default=16)
    parser.add_argument("--reference-spp", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="Mitsuba's render threads")
    parser.add_argument("--out", default="bench_vs_mitsuba")
    args = parser.parse_args()
    try:
        import drjit as dr
        import mitsuba as mi
    except ImportError as exc:
        raise SystemExit(f"this benchmark needs Mitsuba 3: pip install mitsuba ({exc})") from exc
    mi.set_variant("scalar_rgb")
    dr.set_thread_count(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for build in (cornell, glossy_sphere, glossy_analytic_sphere):
            runs = Runs(build(folder), folder, args.size)
            results.append(compare(runs, args.reference_spp, args.spp, args.repeats))
    table = markdown(results, args)
    Path(args.out + ".json").write_text(dumps({"args": vars(args), "results": results}) + "\n")
    Path(args.out + ".md").write_text(table)
    print(table, end="")
    print(f"wrote {args.out}.json, {args.out}.md ({os.cpu_count()} cores on this machine)")


if __name__ == "__main__":
    main()
