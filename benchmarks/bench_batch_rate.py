"""Training throughput of the grid forecasters against the batch size, on this machine.

    python benchmarks/bench_batch_rate.py [--models stpconv stpnet] [--batches 2 4 8 16] [--threads 1]

One training step is forward + backward + AdamW step on random 64x64 frames, 10 -> 10, one channel
(the Moving MNIST shapes); the table shows the median step time and the sequences per second it
gives. Under a wall-clock budget the sequences per second fix how much data a run sees, and the
step time how many updates it makes from them: where the sequences per second hardly change with the
batch, a smaller batch buys more updates for the same time (BENCHMARKS.md, "Batch size at equal wall time").
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from stpatch.bench.report import machine, median_time
from stpatch.models import create_model


def step_seconds(name: str, batch: int, repeats: int) -> float:
    """Median seconds of one training step of model ``name`` on a ``(batch, 10, 1, 64, 64)`` batch."""
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, t_in=10, t_out=10, grid_size=(64, 64))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, target = torch.rand(batch, 10, 1, 64, 64), torch.rand(batch, 10, 1, 64, 64)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), target).backward()
        opt.step()

    return median_time(train_step, repeats, warmup=2)


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["stpconv", "stpnet"])
    parser.add_argument("--batches", nargs="+", type=int, default=[2, 4, 8, 16])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the suites train on one)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines = [f"{machine()}, {args.threads} torch thread(s); median of {args.repeats} "
             f"steps after 2 warm-up steps. Command: `python benchmarks/bench_batch_rate.py`.", "",
             "| model | batch | step ms | sequences/s | steps in 20 min (at this rate) |", "|---|---:|---:|---:|---:|"]
    for name in args.models:
        for batch in args.batches:
            s = step_seconds(name, batch, args.repeats)
            lines.append(f"| {name} | {batch} | {1000 * s:.0f} | {batch / s:.1f} | {1200 / s:,.0f} |")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
