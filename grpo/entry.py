"""What every command does before Hydra composes its config, and the one way to compose it elsewhere.

`prepare_process()` runs first in each command's `__main__` (grpo.train, grpo.sft, eval.run, and any
other): the process settings that must precede torch's first allocation, then `profile=auto` resolved
on the command line. `compose_config()` gives scripts, notebooks and tests the same config a command
would get, `profile=auto` included, without touching `sys.argv`.

Under a multi-process launch (torchrun, `accelerate launch`) it also makes the processes agree on the run
dir: the config names it with `${launch_time:...}`, rank 0's start time on every rank (grpo/ranks.py),
and only rank 0 writes Hydra's `.hydra/` copy of the config; the others log to `<job>_rank<N>.log`.
"""

import os
from pathlib import Path

from omegaconf import OmegaConf

from grpo import ranks

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

# at import, so every way of composing a config (commands, compose_config, Hydra's own compose) knows it
OmegaConf.register_new_resolver("launch_time", ranks.launch_time, use_cache=True, replace=True)


def prepare_process() -> str:
    """Set the process-wide settings, then resolve `resume=<run dir>|latest` and `profile=auto` in
    `sys.argv`; return the profile."""
    import sys

    from grpo.resume import resolve_resume_argv
    from tasks import ConfigError

    set_process_settings()
    try:
        sys.argv[1:] = resolve_resume_argv(sys.argv[1:])
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        sys.exit(2)
    if ranks.distributed():
        ranks.agree_launch_time()
        sys.argv[1:] += rank_overrides(ranks.rank())
    from grpo.profile import apply_auto_profile

    return apply_auto_profile()


def set_process_settings() -> None:
    """Settings torch reads once per process, at its first allocation (benchmarks call this too)."""
    # torch's CPU allocator returns every large tensor to the OS when it is freed, and the next step faults
    # the memory back in 4 KiB at a time: about a third of the CPU time of a 270M SFT step went to the
    # kernel here. Transparent huge pages (2 MiB) cut those faults 512-fold; docs/performance.md has the
    # step times. torch reads this at its first allocation; a value set in the shell wins.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def rank_overrides(rank: int) -> list[str]:
    """Hydra overrides for a process other than rank 0: no `.hydra/` writes, a log file of its own."""
    if rank == 0:
        return []
    return ["hydra.output_subdir=null",
            f"hydra.job_logging.handlers.file.filename=${{hydra.runtime.output_dir}}/${{hydra.job.name}}_rank{rank}.log"]


def compose_config(overrides: list[str], config_name: str = "train"):
    """The composed config for `overrides`, as `python -m grpo.train <overrides>` would see it."""
    from hydra import compose, initialize_config_dir

    from grpo.profile import resolve_profile_argv

    overrides, _ = resolve_profile_argv(list(overrides))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name=config_name, overrides=overrides)
