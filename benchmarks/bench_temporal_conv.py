"""The temporal pass of the factorized spacetime conv: PyTorch's Conv3d against the 2-D conv form stpatch uses.

    python benchmarks/bench_temporal_conv.py [--models stpconv stpnet] [--batch 4] [--threads 1] [--repeats 30]

``SpacetimeConv(mode="factorized")`` ends with a ``kt x 1 x 1`` convolution. On a CPU, ``nn.Conv3d`` runs
that kernel on a slow path; stpatch runs the same weights as a 2-D conv over ``(T, H*W)``
(``SpacetimeConv._temporal``). This script times both forms in one process, alternating them step by
step so that a drift in the machine's speed hits both alike: first the layer alone (forward + backward)
at the token grids of the Moving MNIST models, then whole training steps (forward, MSE, backward, AdamW)
of each model with the temporal pass switched between the two forms. Medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from stpatch.bench.report import machine
from stpatch.models import create_model
from stpatch.nn.conv import SpacetimeConv


def _conv3d_form(self: SpacetimeConv, x: torch.Tensor) -> torch.Tensor:
    """The temporal pass as ``nn.Conv3d`` computes it (what stpatch did before)."""
    return self.temporal(x)


def paired_medians(a: Callable[[], object], b: Callable[[], object], repeats: int, warmup: int = 3) -> tuple[float, float]:
    """Median seconds of ``a()`` and ``b()``, run in turn ``repeats`` times each after ``warmup`` pairs."""
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def layer_row(channels: int, t: int, side: int, batch: int, repeats: int) -> str:
    conv = SpacetimeConv(channels, channels, 3, "factorized")
    x = torch.randn(batch, channels, t + 2, side, side, requires_grad=True)  # already padded in time

    def run(form: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        return lambda: form(x).sum().backward()

    two_d, three_d = paired_medians(run(conv._temporal), run(conv.temporal), repeats)
    return (f"| layer {channels} ch, {t} x {side} x {side} tokens, batch {batch} | {1000 * three_d:.2f} | "
            f"{1000 * two_d:.2f} | {two_d / three_d:.2f} |")


def model_row(name: str, batch: int, repeats: int) -> str:
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, t_in=10, t_out=10)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, target = torch.rand(batch, 10, 1, 64, 64), torch.rand(batch, 10, 1, 64, 64)
    fast = SpacetimeConv._temporal

    def step(form: Callable) -> Callable[[], None]:
        def run() -> None:
            SpacetimeConv._temporal = form
            try:
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.mse_loss(model(x), target).backward()
                opt.step()
            finally:
                SpacetimeConv._temporal = fast
        return run

    two_d, three_d = paired_medians(step(fast), step(_conv3d_form), repeats)
    return f"| {name} training step, batch {batch} | {1000 * three_d:.1f} | {1000 * two_d:.1f} | {two_d / three_d:.2f} |"


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["stpconv", "stpnet"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the suites train on one)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines = [f"{machine()}; medians of {args.repeats} alternating runs. "
             "Command: `python benchmarks/bench_temporal_conv.py`.", "",
             "| what (forward + backward) | Conv3d ms | 2-D conv ms | ratio |", "|---|---:|---:|---:|"]
    # the token grids of the Moving MNIST models: 64x64 frames in (2, 4, 4) patches, then halved in space
    lines += [layer_row(32, 5, 16, args.batch, args.repeats), layer_row(64, 5, 8, args.batch, args.repeats)]
    lines += [model_row(name, args.batch, args.repeats) for name in args.models]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
