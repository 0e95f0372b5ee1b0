"""Everything behind BENCHMARKS.md: patch throughput, model speed, and accuracy under a budget.

    python benchmarks/run_all.py [--budget HH:MM:SS] [--suites moving_mnist los_loop ...] [--quick] [--no-write]

Each part replaces its own section of BENCHMARKS.md (between ``<!-- bench:NAME -->`` markers), with
the command, machine and date it ran on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_models  # noqa: E402
import bench_patches  # noqa: E402

from stpatch.bench import SUITES, run_benchmarks  # noqa: E402
from stpatch.bench.report import stamp, write_section  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default=None,
                        help="training budget per model (HH:MM:SS; default: each suite's designed budget)")
    parser.add_argument("--suites", nargs="*", default=list(SUITES), help=f"accuracy suites ({', '.join(SUITES)})")
    parser.add_argument("--skip-speed", action="store_true", help="only the accuracy suites")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is")
    args = parser.parse_args(argv)
    write = not args.no_write
    quick = ["--quick"] if args.quick else []
    if not args.skip_speed:
        bench_patches.main(quick + (["--write"] if write else []))
        table = bench_models.main(quick)
        if write:
            command = "python benchmarks/bench_models.py" + (" --quick" if args.quick else "")
            header, _, rest = table.partition("\n")
            write_section("models", f"{header}\n\n{stamp(command)}{rest}")
    for suite in args.suites:
        print(run_benchmarks(suite, budget=args.budget, quick=args.quick, write=write), flush=True)


if __name__ == "__main__":
    main()
