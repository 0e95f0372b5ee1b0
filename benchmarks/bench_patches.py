"""Patchify + unpatchify throughput beside a plain clone of the same bytes.

    python benchmarks/bench_patches.py [--quick] [--write]

Throughput is bytes of the input grid per second for one patchify followed by one unpatchify
(median of repeated runs); the clone row moves the same bytes once and is the memory-bandwidth
reference measured in the same run.
"""

from __future__ import annotations

import argparse

import torch

from stpatch.bench.report import median_time, stamp, write_section
from stpatch.patches import patchify, unpatchify

CASES = [
    # (label, patch, stride)
    ("non-overlapping (2,16,16)", (2, 16, 16), None),
    ("non-overlapping (1,4,4)", (1, 4, 4), None),
    ("non-divisible (3,24,24), zero pad", (3, 24, 24), None),
    ("overlapping (2,16,16) stride (2,8,8)", (2, 16, 16), (2, 8, 8)),
]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small batch, for a smoke run")
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args(argv)
    shape = (2, 4, 1, 64, 64) if args.quick else (16, 20, 1, 256, 256)
    repeats = 3 if args.quick else 7
    x = torch.randn(shape)
    gigabytes = x.numel() * x.element_size() / 1e9

    clone_s = median_time(lambda: x.clone(), repeats)
    rows = [("`tensor.clone()` (reference)", clone_s, gigabytes / clone_s, 1.0)]
    for label, patch, stride in CASES:
        def round_trip(patch=patch, stride=stride):
            tokens, grid = patchify(x, patch, stride)
            return unpatchify(tokens, grid)

        assert torch.allclose(round_trip(), x, atol=1e-6)
        seconds = median_time(round_trip, repeats)
        rows.append((f"patchify + unpatchify, {label}", seconds, gigabytes / seconds, clone_s / seconds))

    command = "python benchmarks/bench_patches.py" + (" --quick" if args.quick else "")
    lines = [
        "## Patch core throughput",
        "",
        stamp(command),
        f"Input: float32 grid {tuple(shape)} ({gigabytes * 1e3:.0f} MB); median of {repeats} runs.",
        "",
        "| operation | median time (ms) | throughput (GB/s) | speed vs clone |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {s * 1e3:.1f} | {gbps:.2f} | {ratio:.2f}x |" for name, s, gbps, ratio in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.write:
        write_section("patches", table)
    return table


if __name__ == "__main__":
    main()
