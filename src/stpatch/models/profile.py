"""Cost of a model: parameters, FLOPs, peak memory and latency.

``peak_memory_mb`` is measured on CUDA with ``torch.cuda.max_memory_allocated`` (everything the
caching allocator handed out during one forward, parameters included). On CPU it is the peak
total size of live tensor storages during one forward, tracked at ATen-op granularity by a
:class:`~torch.utils._python_dispatch.TorchDispatchMode` (parameters, buffers, the input and
every intermediate; scratch memory inside a fused kernel is not seen). ``tracemalloc`` would not
see tensor memory at all, since PyTorch's CPU allocator bypasses Python's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

__all__ = ["PeakTensorMemory", "count_parameters", "flop_counter", "profile_model"]


def _cpu_flash_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward_flop(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def flop_counter(display: bool = False) -> FlopCounterMode:
    """A ``FlopCounterMode`` that also counts CPU fused attention.

    PyTorch's counter has formulas for the CUDA attention kernels but not for
    ``aten._scaled_dot_product_flash_attention_for_cpu`` (it would count CPU attention as 0 FLOPs);
    this adds the same formula as for the CUDA kernels (``4 * B * heads * Lq * Lk * d`` forward).
    """
    aten = torch.ops.aten
    mapping = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_flash_flop
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_flash_backward_flop
    return FlopCounterMode(display=display, custom_mapping=mapping)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class PeakTensorMemory(TorchDispatchMode):
    """Track the peak bytes of live tensor storages while active (any device).

    ``with PeakTensorMemory(baseline=[tensors...]) as mem: ...``; then ``mem.peak_bytes``.
    Storages of the ``baseline`` tensors (e.g. parameters and inputs) count from the start.
    """

    def __init__(self, baseline: Sequence[torch.Tensor] = ()) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak_bytes = 0
        for t in baseline:
            self._add(t)
        self.peak_bytes = self.current

    def _add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in self._live:
            size = storage.nbytes()
            self._live[key] = (StorageWeakRef(storage), size)
            self.current += size

    def _sweep(self) -> None:
        dead = [k for k, (ref, _) in self._live.items() if ref.expired()]
        for k in dead:
            self.current -= self._live.pop(k)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._sweep()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._add(t)
        self.peak_bytes = max(self.peak_bytes, self.current)
        return out


def _make_input(shape: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.randn(*shape, device=device)


def profile_model(
    model_or_name: nn.Module | str,
    input_shape: Sequence[int],
    t_out: int | None = None,
    device: str | torch.device = "cpu",
    repeats: int = 5,
    warmup: int = 1,
    backward: bool = False,
    **model_kwargs: Any,
) -> dict[str, float]:
    """Measure a forecaster on random input of ``input_shape``.

    Args:
        model_or_name: a model, or a registry name built with ``in_channels``/``t_in`` (and
            ``num_nodes``) read from ``input_shape`` and ``t_out`` (default ``t_in``).
        input_shape: ``(B, T_in, C, H, W)`` or ``(B, T_in, N, C)``.
        device: where to run.
        repeats, warmup: timed and untimed runs for the latency (median of the timed ones).
        backward: measure a training step (forward + backward of the mean output) instead of
            inference.
        **model_kwargs: options for ``create_model``.

    Returns:
        ``params`` (trainable parameters), ``gflops_per_sample`` (``FlopCounterMode`` via :func:`flop_counter`, forward only,
        or forward + backward with ``backward=True``; a multiply-add counts as 2 FLOPs),
        ``peak_memory_mb`` (see the module docstring for what it counts on CPU and CUDA) and
        ``latency_ms`` (median wall time of one call at batch ``B``).
    """
    device = torch.device(device)
    if isinstance(model_or_name, str):
        from stpatch.models.registry import create_model

        if len(input_shape) == 5:
            model = create_model(model_or_name, in_channels=input_shape[2], t_in=input_shape[1],
                                 t_out=t_out or input_shape[1], **model_kwargs)
        elif len(input_shape) == 4:
            model = create_model(model_or_name, in_channels=input_shape[3], t_in=input_shape[1],
                                 t_out=t_out or input_shape[1], num_nodes=input_shape[2], **model_kwargs)
        else:
            raise ValueError(f"input_shape must be (B, T, C, H, W) or (B, T, N, C), got {tuple(input_shape)}")
    else:
        model = model_or_name
    model = model.to(device)
    model.train(backward)
    x = _make_input(input_shape, device)
    batch = int(input_shape[0])

    def step() -> None:
        if backward:
            model.zero_grad(set_to_none=True)
            out = model(x)
            if out.requires_grad:
                out.float().mean().backward()
        else:
            with torch.inference_mode():
                model(x)

    flops = flop_counter()
    with flops:
        step()
    gflops = flops.get_total_flops() / batch / 1e9

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        tensors = [*model.parameters(), *model.buffers(), x]
        with PeakTensorMemory(tensors) as mem:
            step()
        peak = mem.peak_bytes

    for _ in range(warmup):
        step()
    times = []
    for _ in range(max(repeats, 1)):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return {
        "params": float(count_parameters(model)),
        "gflops_per_sample": float(gflops),
        "peak_memory_mb": peak / 2**20,
        "latency_ms": 1000 * statistics.median(times),
    }
