"""`profile=auto`: pick the GPU preset when CUDA is available, else the CPU one, before Hydra composes.

Hydra picks config-group options from the command line, so `auto` is resolved by adding
`profile=gpu|cpu` to it; an explicit `profile=...` is left alone. Any other override still wins.
"""

import sys


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_profile_argv(argv: list[str]) -> tuple[list[str], str]:
    """Return argv with the profile made explicit, and the profile chosen."""
    for arg in argv:
        if arg.startswith("profile="):
            choice = arg.split("=", 1)[1]
            if choice != "auto":
                return argv, choice
            argv = [a for a in argv if a != arg]
            break
    choice = "gpu" if cuda_available() else "cpu"
    return [*argv, f"profile={choice}"], choice


def apply_auto_profile() -> str:
    """Rewrite sys.argv in place (Hydra reads it) and return the profile in force."""
    sys.argv[1:], choice = resolve_profile_argv(sys.argv[1:])
    return choice
