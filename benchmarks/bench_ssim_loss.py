"""Cost of the SSIM loss term (``train.ssim_weight``) on one carphone-sized batch, forward and backward.

    python benchmarks/bench_ssim_loss.py

One torch thread; a batch of 4 windows x 4 frames of 3 x 144 x 176 (the carphone suite). Rows: torchmetrics'
SSIM over whole frames (what the metric uses), ``stpatch.engine.losses.ssim_loss`` over whole frames and on
one random 64-pixel square (what training computes). Medians of repeated runs; the numbers BENCHMARKS.md quotes
in "Eighth session" come from this script.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from stpatch.bench.report import median_time, stamp
from stpatch.engine.losses import ssim_loss


def main() -> str:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    target = torch.rand(4, 4, 3, 144, 176)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)

    def step(loss_fn):
        def run():
            pred.grad = None
            loss_fn().backward()
        return run

    rows = {
        "torchmetrics SSIM, whole frames": step(lambda: 1 - tm_ssim(pred.flatten(0, 1), target.flatten(0, 1), data_range=1.0)),
        "ssim_loss, whole frames": step(lambda: ssim_loss(pred, target, None, 1.0)),
        "ssim_loss, one 64-pixel square (training)": step(lambda: ssim_loss(pred, target, None, 1.0, crop=64)),
    }
    lines = [stamp("python benchmarks/bench_ssim_loss.py"), "", "| SSIM term | seconds per forward + backward (median) |",
             "| --- | --- |"]
    lines += [f"| {name} | {median_time(fn, repeats=5, warmup=1):.3f} |" for name, fn in rows.items()]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
