"""Summarise bake reports (`*.report.json` from `nrender bake`) as a Markdown table.

    python tools/bake_table.py baked/            # after: nrender bake --all materials -o baked

One row per material: preset, device, bake time (references, training phases, report),
pyramid size, held-out PSNR (linear and tonemapped) with the reference's noise floor,
log-space L1, and the sampler's KL divergence beside cosine sampling's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = (
    "material",
    "preset",
    "device",
    "bake s",
    "pyramid",
    "PSNR dB",
    "tonemapped PSNR dB",
    "noise floor dB",
    "log-L1",
    "sampler KL (cosine)",
)


def row(report: dict) -> list[str]:
    held = report["metrics"]["heldout"]
    sampler = report["metrics"]["sampler"]
    size = report["pyramid"]["finest"]
    return [
        Path(report["material"]).stem,
        report["preset"],
        report["device"],
        f"{report['seconds']['total']:.0f}",
        f"{size[1]}x{size[0]}",
        f"{held['psnr_db']:.1f}",
        f"{held['psnr_tonemapped_db']:.1f}",
        f"{held['reference_noise_psnr_db']:.1f}",
        f"{held['log_l1']:.4f}",
        f"{sampler['kl_learned']:.3f} ({sampler['kl_cosine']:.3f})",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder holding *.report.json")
    args = parser.parse_args(argv)
    reports = sorted(args.folder.glob("*.report.json"))
    if not reports:
        print(f"no *.report.json in {args.folder}", file=sys.stderr)
        return 2
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    for path in reports:
        print("| " + " | ".join(row(json.loads(path.read_text()))) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
