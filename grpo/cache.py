"""Where gemma-grpo keeps converted models and tokenizers between runs, and how each is built once.

Several runs may start together on an empty cache (a sweep, two jobs on one node). Each conversion
holds an exclusive file lock (fcntl.flock on `.<name>.lock` in the cache dir) while it builds: the
first process converts, the others wait and then find the finished directory. The build itself writes
into a staging directory and renames it into place, so a killed conversion never leaves a partial
cache behind (and the kernel releases the lock of a killed process).
"""

import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """`$GEMMA_GRPO_CACHE`, else `$XDG_CACHE_HOME/gemma-grpo`, else `~/.cache/gemma-grpo`."""
    explicit = os.environ.get("GEMMA_GRPO_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gemma-grpo"


def build_once(target: Path, ready_file: str, write: Callable[[Path], None]) -> Path:
    """`target`, built by `write(staging_dir)` unless `target/ready_file` exists; at most one process
    builds it at a time, and a process that waited for another's build does not build it again."""
    if (target / ready_file).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Waiting for another process that is building %s", target)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ready_file).exists():
            log.info("Building %s (once)", target)
            write_atomically(target, write)
    return target


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write into a staging directory beside `target`, then rename: readers never see a partial cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging)
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
