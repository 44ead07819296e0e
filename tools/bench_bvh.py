"""BVH build time and traversal throughput over triangle soups of growing size.

    python tools/bench_bvh.py [--device cpu] [--sizes 10000 100000 1000000] [--rays 65536]

Prints one JSON line per size: build seconds, nodes, depth, and closest-hit rays/s through
the same Slang traversal the path tracer uses. A benchmark, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from renderer.accel import TriangleQueries, build_bvh
from renderer.bench import random_triangle_soup
from renderer.device import open_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rays", type=int, default=1 << 16)
    args = parser.parse_args()
    device = open_device(args.device)
    rng = np.random.default_rng(1)
    origins = rng.uniform(-2, 12, (args.rays, 3)).astype(np.float32)
    targets = rng.uniform(0, 10, (args.rays, 3))
    directions = targets - origins
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    for size in args.sizes:
        tris = random_triangle_soup(size)
        bvh = build_bvh(tris.min(axis=1), tris.max(axis=1))
        queries = TriangleQueries(device, tris, bvh=bvh)
        queries.closest_hit(origins[:64], directions[:64])  # compile and warm up
        start = time.perf_counter()
        hits = queries.closest_hit(origins, directions)
        seconds = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "device": device.description,
                    "triangles": size,
                    "build_seconds": round(bvh.build_seconds, 3),
                    "nodes": bvh.node_count,
                    "depth": bvh.depth,
                    "rays": args.rays,
                    "hit_fraction": round(float(hits.hit.mean()), 3),
                    "rays_per_second": round(args.rays / seconds),
                }
            )
        )


if __name__ == "__main__":
    main()
