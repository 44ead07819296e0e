"""Long fuzz run of every loader: mutated scenes, materials, `.nmat` files, images and
meshes (tests/fuzzing.py makes the cases), counted per loader and outcome.

    python tools/fuzz_loaders.py --cases 10000 --jobs 2 --render --out fuzz.json

Cases run in worker processes under a memory limit (a runaway allocation becomes a
MemoryError finding instead of swapping the machine) and a per-case time limit; a worker
that dies is a "crash" finding for the case it was running, and a fresh worker carries
on. `--render` also renders every accepted scene and glTF file (12x12 pixels, 2 samples, on the CPU
device) and reports non-finite pixels. Findings are listed with the (target, seed, index)
that reproduces them: `--only scene:1234` reruns one case in this process.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzzing

RENDER_SIZE = (12, 12)


def render_check(scene: Any) -> str | None:
    """Render an accepted scene tiny and say what is wrong with its output, if anything:
    non-finite pixels in any layer, or samples the film had to drop as non-finite."""
    from renderer import Renderer

    if not hasattr(scene, "camera"):
        return None
    scene.camera.resolution = RENDER_SIZE
    result = Renderer(scene, "cpu").render(spp=2, max_depth=min(scene.integrator.max_depth, 8))
    return render_problem(result)


def render_problem(result: Any) -> str | None:
    import numpy as np

    problems = [
        f"{name} has {int((~np.isfinite(getattr(result, name))).sum())} non-finite values"
        for name in ("radiance", "variance", "albedo", "normal", "depth")
        if not np.isfinite(getattr(result, name)).all()
    ]
    if result.dropped_samples:
        problems.append(f"{result.dropped_samples} non-finite samples dropped")
    return "; ".join(problems) or None


def _worker(
    conn: Any, names: list[str], cases: list[tuple[str, int]], args: argparse.Namespace
) -> None:
    limit = int(args.memory_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    targets = fuzzing.load_targets(Path(args.seeds))
    with fuzzing.cached_materials():
        for name, index in cases:
            conn.send(("start", name, index))
            check = render_check if args.render and name in ("scene", "gltf") else None
            result = fuzzing.run_case(
                targets[name], args.seed, index, limit=args.limit, check=check
            )
            conn.send(("done", asdict(result)))
    conn.send(("finished",))


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    names = args.targets
    per_target = max(1, args.cases // len(names))
    pending = collections.deque((name, i) for i in range(per_target) for name in names)
    results: list[dict[str, Any]] = []
    total = len(pending)
    start = time.perf_counter()
    ctx = mp.get_context("fork")
    current: dict[int, tuple[str, int] | None] = {}  # the case each worker is running
    workers: list[tuple[Any, Any, list[tuple[str, int]], set[tuple[str, int]]]] = []

    def launch() -> None:
        share = [pending.popleft() for _ in range(min(len(pending), args.batch))]
        if not share:
            return
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker, args=(child, names, share, args), daemon=True)
        process.start()
        child.close()
        workers.append((process, parent, share, set()))

    for _ in range(args.jobs):
        launch()
    while workers:
        for entry in list(workers):
            process, conn, share, done = entry
            if not conn.poll(0.05) and process.is_alive():
                continue
            try:
                message = conn.recv()
            except (EOFError, OSError):
                # The worker died mid-case: a crash finding, and the rest goes back.
                running = current.get(id(conn))
                if running is not None:
                    results.append(
                        {
                            "target": running[0],
                            "index": running[1],
                            "seed_file": "?",
                            "outcome": "crash",
                            "detail": f"exit code {process.exitcode}",
                            "seconds": 0.0,
                        }
                    )
                    done.add(running)
                pending.extendleft(reversed([c for c in share if c not in done]))
                workers.remove(entry)
                launch()
                continue
            if message[0] == "start":
                current[id(conn)] = (message[1], message[2])
            elif message[0] == "done":
                results.append(message[1])
                done.add((message[1]["target"], message[1]["index"]))
                current[id(conn)] = None
                if len(results) % 100 == 0:
                    rate = len(results) / (time.perf_counter() - start)
                    print(f"{len(results)}/{total} cases, {rate:.1f}/s", file=sys.stderr)
            else:
                process.join()
                workers.remove(entry)
                launch()
    return results


def report(results: list[dict[str, Any]], seconds: float, args: argparse.Namespace) -> dict:
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in results:
        counts[r["target"]][r["outcome"]] += 1
    outcomes = [*fuzzing.OUTCOMES, "crash"]
    print(f"{len(results)} cases in {seconds:.0f} s (seed {args.seed})")
    print(f"{'loader':10s}" + "".join(f"{o:>11s}" for o in outcomes))
    for name in args.targets:
        print(f"{name:10s}" + "".join(f"{counts[name][o]:>11d}" for o in outcomes))
    findings = [r for r in results if r["outcome"] not in fuzzing.GOOD_OUTCOMES]
    kinds: dict[tuple[str, str, str], list[int]] = collections.defaultdict(list)
    for r in findings:
        kinds[(r["target"], r["outcome"], r["detail"][:90])].append(r["index"])
    if findings:
        print("\nfindings (target, outcome, detail: case indices):")
    for (target, outcome, detail), indices in sorted(kinds.items()):
        print(f"  {target} {outcome} {detail}: {indices[:5]}{' ...' if len(indices) > 5 else ''}")
    slowest = sorted(results, key=lambda r: -r["seconds"])[:5]
    print(
        "\nslowest cases: "
        + ", ".join(f"{r['target']}:{r['index']} {r['seconds']:.1f}s" for r in slowest)
    )
    return {
        "seed": args.seed,
        "cases": len(results),
        "seconds": round(seconds, 1),
        "counts": {name: dict(counts[name]) for name in args.targets},
        "findings": [
            {"target": t, "outcome": o, "detail": d, "cases": i} for (t, o, d), i in kinds.items()
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10000, help="cases in all (split evenly)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--batch", type=int, default=250, help="cases per worker process")
    parser.add_argument("--limit", type=float, default=30.0, help="seconds per case")
    parser.add_argument("--memory-gib", type=float, default=6.0, help="per worker")
    parser.add_argument("--render", action="store_true", help="render accepted scenes")
    parser.add_argument(
        "--targets", nargs="+", default=["scene", "material", "nmat", "image", "mesh", "gltf"]
    )
    parser.add_argument("--only", help="TARGET:INDEX: run one case here and print it")
    parser.add_argument("--out", type=Path, help="write the counts and findings as JSON")
    args = parser.parse_args()
    if args.only:
        return rerun_one(args)
    with tempfile.TemporaryDirectory(prefix="nrender-fuzz-seeds-") as seeds:
        args.seeds = seeds
        fuzzing.make_targets(Path(seeds))  # written once, before forking
        start = time.perf_counter()
        results = run(args)
    summary = report(results, time.perf_counter() - start, args)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def rerun_one(args: argparse.Namespace) -> int:
    """One case, in this process; its file and the seeds it names are kept to inspect."""
    name, index = args.only.split(":")
    workdir = Path(tempfile.mkdtemp(prefix="nrender-fuzz-seeds-"))
    targets = fuzzing.make_targets(workdir)
    check = render_check if args.render and name in ("scene", "gltf") else None
    source, data = fuzzing.make_case(targets[name], args.seed, int(index))
    keep = fuzzing.case_path(source)
    keep.write_bytes(data)
    outcome, detail = fuzzing.classify(targets[name], keep, limit=args.limit, check=check)
    print(f"{name}:{index} from {source.name} -> {outcome} {detail}\n(case file: {keep})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
