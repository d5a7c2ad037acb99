"""`profile=auto`: pick the GPU preset when CUDA is available, else the CPU one, before Hydra composes.

Hydra picks config-group options from the command line, so `auto` is resolved by adding
`profile=gpu|cpu` to it; an explicit `profile=...` is left alone. Any other override still wins.

Two first-run traps are handled here, where the command line is still visible:
- an NVIDIA GPU is present (`nvidia-smi` on PATH or /dev/nvidia0) but torch sees no CUDA (a CPU-only
  wheel, a driver too old for the wheel): `auto` would quietly train on CPU, so it stops and says why;
- the GPU profile picks vLLM rollouts, but the default install (`make train`, `.[dev]`) has no vLLM:
  unless the user asked for a vLLM rollout by name, the run falls back to `rollout=hf` with one warning
  (and with peft=qlora it rolls out with `hf` anyway: TRL's vLLM path cannot serve a 4-bit base).
"""

import logging
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

NVIDIA_DEVICE = Path("/dev/nvidia0")
VLLM_INSTALL = 'pip install -e ".[vllm]"'
_EXPERIMENT_DIR = Path(__file__).resolve().parent.parent / "conf" / "experiment"


class BrokenCudaSetup(RuntimeError):
    """An NVIDIA GPU is on this machine but torch cannot use it."""


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def vllm_installed() -> bool:
    return find_spec("vllm") is not None


def nvidia_gpu_evidence() -> list[str]:
    """What says an NVIDIA GPU is here: the driver's tool on PATH and what it reports, the device node."""
    found = []
    smi = shutil.which("nvidia-smi")
    if smi:
        found.append(f"nvidia-smi at {smi}{_smi_report(smi)}")
    if NVIDIA_DEVICE.exists():
        found.append(f"{NVIDIA_DEVICE}")
    return found


def _smi_report(smi: str) -> str:
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return " (it did not run)"
    first = (out.stdout.strip().splitlines() or [""])[0].strip()
    if out.returncode != 0 or not first:
        return f" (it failed: {(out.stderr or out.stdout).strip()[:200] or 'exit ' + str(out.returncode)})"
    return f" (GPU, driver: {first})"


def check_cuda_matches_hardware() -> None:
    """Raise BrokenCudaSetup when NVIDIA hardware is visible but torch has no usable CUDA."""
    evidence = nvidia_gpu_evidence()
    if not evidence:
        return
    import torch

    build = torch.version.cuda
    why = (
        f"torch {torch.__version__} is a CPU-only build: install a CUDA build of torch"
        if build is None
        else f"torch {torch.__version__} is built for CUDA {build} but cannot initialise it (often a driver "
        "too old for that CUDA version, or no device visible through CUDA_VISIBLE_DEVICES): update the "
        "driver, or install a torch build for the driver's CUDA version"
    )
    raise BrokenCudaSetup(
        f"found an NVIDIA GPU ({'; '.join(evidence)}) but torch sees no CUDA: {why}. "
        "Check with `python -c 'import torch; print(torch.cuda.is_available())'`. "
        "To train on the CPU anyway, pass profile=cpu."
    )


def _chosen(argv: list[str], group: str, option: str | None = None) -> bool:
    """`group` (set to `option`, if given) on the command line, or by an experiment preset it adds."""
    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        if key == group and (option is None or value == option):
            return True
        if key == "experiment" and value:
            preset = _EXPERIMENT_DIR / f"{value}.yaml"
            text = preset.read_text() if preset.exists() else ""
            if f"/{group}:" in text and (option is None or f"/{group}: {option}" in text):
                return True
    return False


def rollout_chosen_by_user(argv: list[str]) -> bool:
    """A rollout named on the command line, or by an experiment preset the command line adds."""
    return _chosen(argv, "rollout")


def resolve_profile_argv(argv: list[str]) -> tuple[list[str], str]:
    """Return argv with the profile made explicit (and any rollout fallback added), and the profile chosen.

    Raises BrokenCudaSetup for `auto` on a machine whose GPU torch cannot use.
    """
    choice = None
    for arg in argv:
        if arg.startswith("profile="):
            choice = arg.split("=", 1)[1]
            if choice == "auto":
                argv = [a for a in argv if a != arg]
                choice = None
            break
    if choice is None:
        cuda = cuda_available()
        if not cuda:
            check_cuda_matches_hardware()
        choice = "gpu" if cuda else "cpu"
        argv = [*argv, f"profile={choice}"]
    if choice == "gpu" and not rollout_chosen_by_user(argv) and cuda_available():
        if _chosen(argv, "peft", "qlora"):
            # vLLM rollouts with a 4-bit base are broken or lossy in TRL (trl #3654, #4973, #3466)
            log.info("peft=qlora: rolling out with transformers generate (rollout=hf) on the 4-bit base")
            argv = [*argv, "rollout=hf"]
        elif not vllm_installed():
            log.warning(
                "The GPU profile rolls out with vLLM, which is not installed: using rollout=hf (transformers "
                "generate, several times slower). One-line fix: %s", VLLM_INSTALL,
            )
            argv = [*argv, "rollout=hf"]
    return argv, choice


def apply_auto_profile() -> str:
    """Rewrite sys.argv in place (Hydra reads it) and return the profile in force; exit 2 on a broken
    CUDA set-up, before anything else starts."""
    try:
        sys.argv[1:], choice = resolve_profile_argv(sys.argv[1:])
    except BrokenCudaSetup as error:
        print(f"config error: {error}", file=sys.stderr)
        sys.exit(2)
    return choice
