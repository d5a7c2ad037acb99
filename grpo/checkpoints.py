"""Checkpoint integrity: a manifest of every file's size and sha256, written last, decides completeness.

transformers writes a checkpoint file by file; a kill, a full disk or a bad node can leave a weight file
short or garbled while trainer_state.json looks fine, and resuming from it dies in safetensors' header
parser. So after each save (grpo/checkpoint_callback.py) every file of the checkpoint is listed with its
size and sha256 in `gemma-grpo-manifest.json`, written atomically (temp file + rename) after everything
else. A checkpoint verifies when its manifest exists and every file listed has that size and checksum.

Checksums are cheap at our sizes: sha256 ran at ~250 MB/s on one core of the shared test machine, so a
LoRA checkpoint of the tiny or 270M model (~34 MB, most of it tokenizer.json) costs ~0.15 s to write
and to verify; a full fine-tune's fp32 weights and optimizer state (~12 bytes per parameter) cost
~1 s per 20M parameters (docs/performance.md).

Checkpoints written before manifests existed (trainer_state.json, no manifest) still verify, with a
warning, when they are older than every checkpoint with a manifest in their run dir and each of their
safetensors files has a header that parses; a checkpoint without a manifest that is newer than one
with a manifest was cut short by a kill between its last file and its manifest, and does not verify.
"""

import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = "gemma-grpo-manifest.json"
CHECKPOINT_PREFIX = "checkpoint-"  # transformers.trainer_utils.PREFIX_CHECKPOINT_DIR
_CHUNK = 1 << 20


def checkpoint_step(path: Path) -> int | None:
    suffix = Path(path).name[len(CHECKPOINT_PREFIX):]
    return int(suffix) if Path(path).name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(checkpoint: Path) -> Path:
    """List every file under `checkpoint` (size, sha256) in its manifest, written last and atomically."""
    checkpoint = Path(checkpoint)
    files = {}
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        name = path.relative_to(checkpoint).as_posix()
        if name == MANIFEST or name.startswith(f".{MANIFEST}"):
            continue
        files[name] = {"size": path.stat().st_size, "sha256": sha256_of(path)}
    manifest = checkpoint / MANIFEST
    staging = checkpoint / f".{MANIFEST}.tmp"
    with open(staging, "w") as handle:
        json.dump({"version": 1, "files": files}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    staging.replace(manifest)
    return manifest


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why `checkpoint` cannot be resumed from, or None when it verifies (see the module docstring)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        return "not a directory"
    manifest = checkpoint / MANIFEST
    if not manifest.exists():
        return _unmanifested_problem(checkpoint)
    try:
        files = {name: (int(entry["size"]), str(entry["sha256"]))
                 for name, entry in json.loads(manifest.read_text())["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"its manifest {MANIFEST} is unreadable"
    for name, (expected_size, expected_sha256) in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected_size:
            return f"{name} has {size} bytes, the manifest says {expected_size}"
        if sha256_of(path) != expected_sha256:
            return f"{name} is damaged (its sha256 differs from the manifest's)"
    return None


def saved_in_full(checkpoint: Path) -> bool:
    """The Trainer finished writing it once (whatever happened to it since)."""
    return (checkpoint / MANIFEST).exists() or (checkpoint / "trainer_state.json").exists()


def _unmanifested_problem(checkpoint: Path) -> str | None:
    if not (checkpoint / "trainer_state.json").exists():
        return "incomplete: the run stopped while saving it (no trainer_state.json)"
    step = checkpoint_step(checkpoint)
    older_than_manifests = step is not None and not any(
        (other / MANIFEST).exists() and (checkpoint_step(other) or 0) < step
        for other in checkpoint.parent.glob(f"{CHECKPOINT_PREFIX}*")
    )
    if not older_than_manifests:
        return f"incomplete: no {MANIFEST} (the run stopped before writing it)"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights:
        return "written before manifests, and holds no .safetensors weights to check"
    for path in weights:
        problem = _safetensors_header_problem(path)
        if problem:
            return f"{path.name}: {problem}"
    log.warning("%s was written before checkpoint manifests: only its safetensors headers were checked", checkpoint)
    return None


def _safetensors_header_problem(path: Path) -> str | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError, ValueError) as error:
        return f"unreadable safetensors header ({error})"
    return None
