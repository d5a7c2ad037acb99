"""The processes of one launch (torchrun, `accelerate launch`, DeepSpeed's launcher): who is main, and the
few things they must agree on.

Every launcher sets RANK and WORLD_SIZE in each process's environment, so the layout is known before
torch.distributed starts (Hydra composes the config, and names the run dir, before any trainer exists).
The agreements need a process group; `init_distributed` starts the one the Trainer would start anyway
(accelerate's PartialState, which the Trainer's TrainingArguments reuses), only earlier.
"""

import os
from datetime import datetime


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def distributed() -> bool:
    return world_size() > 1


def deepspeed_launch() -> bool:
    """`accelerate launch` with a DeepSpeed config (conf/accelerate/zero*.yaml): DeepSpeed starts the group."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def cpu_data_parallel() -> bool:
    """No GPU and no DeepSpeed: the ranks are CPU processes of plain data parallel (gloo)."""
    import torch

    return not torch.cuda.is_available() and not deepspeed_launch()


def init_distributed() -> None:
    """Start the process group (gloo on CPU, the accelerator's backend elsewhere) if it is not running."""
    from accelerate import PartialState

    cpu = cpu_data_parallel()  # under DeepSpeed, accelerate hands the group to DeepSpeed
    if cpu:
        # accelerate names each CPU rank's device `cpu:<index>`, and the Trainer's resume loads the optimizer
        # with map_location=args.device, which torch.load cannot restore to ("don't know how to restore data
        # location ... cpu:0"; tests/test_multiprocess.py): plain `cpu` for every rank
        os.environ.setdefault("ACCELERATE_TORCH_DEVICE", "cpu")
    # accelerate starts a CPU process group (gloo) only when told the run is on CPU; without it each
    # process trained alone, unaware of the others (tests/test_multiprocess.py)
    PartialState(cpu=cpu)


def broadcast_from_main(value):
    """Rank 0's `value`, on every rank (the value itself with one process)."""
    if not distributed():
        return value
    init_distributed()
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on at least one; every rank must call it at the same point."""
    if not distributed():
        return flag
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    value = torch.tensor([1 if flag else 0], device=PartialState().device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_from_all(value) -> list:
    """Every rank's `value`, in rank order, on every rank."""
    if not distributed():
        return [value]
    import torch.distributed as dist

    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


_launch_time: datetime | None = None


def agree_launch_time() -> datetime:
    """Rank 0's start time on every rank, so a `${launch_time:...}` run dir is one dir for the launch."""
    global _launch_time
    if _launch_time is None:
        _launch_time = broadcast_from_main(datetime.now())
    return _launch_time


def launch_time(pattern: str) -> str:
    """The `launch_time` config resolver: Hydra's `now`, but agreed across the launch's processes
    (Hydra resolves `${now:}` in each process, a second apart at times: ranks wrote to different dirs)."""
    when = _launch_time if _launch_time is not None else datetime.now()
    return when.strftime(pattern)
