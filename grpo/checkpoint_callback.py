"""The Trainer callback that writes each checkpoint's manifest (grpo/checkpoints.py) once it is saved."""

from pathlib import Path

from transformers import TrainerCallback

from grpo.checkpoints import CHECKPOINT_PREFIX, write_manifest


class ChecksumManifest(TrainerCallback):
    """`on_save` runs after the Trainer has written every file of the checkpoint (and rotated old ones)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
            if checkpoint.is_dir():
                write_manifest(checkpoint)
        return control
