"""Where gemma-grpo keeps converted models and tokenizers between runs."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$GEMMA_GRPO_CACHE`, else `$XDG_CACHE_HOME/gemma-grpo`, else `~/.cache/gemma-grpo`."""
    explicit = os.environ.get("GEMMA_GRPO_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gemma-grpo"
