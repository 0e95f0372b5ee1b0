"""What a training run needs to know when it runs as several processes (DDP across devices or machines).

Lightning does the distributed work itself: it reads the launcher's environment (torchrun's
``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``, SLURM's ``SLURM_PROCID``/
``SLURM_NODEID``/..., or ``MASTER_ADDR``/``MASTER_PORT``/``NODE_RANK`` for processes started by hand),
gives every process its share of the training windows and averages the gradients. This module holds
the three things stpatch adds on top:

* every process must agree on one run directory, also when it is named by the time of day;
* only global rank 0 writes the run directory and evaluates (the others' results repeat its);
* a decision that leads to a collective call (saving a checkpoint) is taken by rank 0 for all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: set while a run trains, so that the processes Lightning starts (they inherit the environment) use
#: the run directory of the process that started them, not one named by their own start time
RUN_DIR_ENV = "STPATCH_RUN_DIR"

# the variables launchers set to a process's (global, local or machine) rank; 0 or unset in the main process
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def is_main_process() -> bool:
    """False in every process of a distributed run but global rank 0 (their results repeat rank 0's).

    The process group's rank when one is up (after training), else the launcher's variables.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)


def launched_distributed(num_nodes: int) -> bool:
    """True when this process is one of several that a launcher (torchrun, srun) or the config started."""
    size = os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or "1"
    return num_nodes > 1 or int(size) > 1


def job_id() -> str | None:
    """The id every process of a launched job shares: SLURM's job id or torchrun's ``--rdzv-id``."""
    job = os.environ.get("SLURM_JOB_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
    return job if job and job != "none" else None


def inherited_run_dir() -> Path | None:
    """The run directory of the process that started this one (see :data:`RUN_DIR_ENV`), if any."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


@contextlib.contextmanager
def shared_run_dir(run_dir: Path) -> Iterator[None]:
    """Pass ``run_dir`` to the processes Lightning starts inside this block (``devices > 1``)."""
    before = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = before


def agree(trainer: Any, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (unchanged in a single process).

    For a choice that leads to a collective call such as ``trainer.save_checkpoint``: if each rank
    looked at its own disk (a file rank 0 wrote is missing on another machine, or not there yet),
    one rank would wait for the others forever.
    """
    return trainer.strategy.broadcast(value, src=0)
