"""Whole groups per micro-batch when one rollout serves several optimizer steps (`batch.shuffle_whole_groups`).

With `trainer.steps_per_generation` > 1, TRL 1.16 shuffles the rows of a generation batch before it splits
them into the steps' micro-batches (`_prepare_inputs`: `shuffle_sequence_dict`), so each micro-batch holds
completions of many prompts, a few of each. `batch.share_prompt_forward` encodes each distinct prompt of a
micro-batch once, and then has ~5.6 prompts to encode for 8 rows of 32 instead of 2: the CPU default step's
training pass went from ~10.5 to ~16.5 s (docs/performance.md 8.7). Shuffling whole groups instead keeps
each prompt's completions together: every step still sees prompts in a random order, and a group's
advantages were computed before the split either way.

Applied only where the rows are whole groups in order (TRL's RepeatSampler layout, checked on the prompt
ids); TRL's own shuffle runs otherwise.
"""

from contextlib import contextmanager

import torch


def group_permutation(rows: int, group_size: int) -> torch.Tensor:
    """A random order of `rows` that moves each run of `group_size` rows as one block."""
    groups = torch.randperm(rows // group_size)
    return (groups[:, None] * group_size + torch.arange(group_size)).reshape(-1)


def whole_groups(batch: dict, group_size: int) -> bool:
    """Are the rows of `batch` complete groups of `group_size` rows with the same prompt, in order?"""
    prompt_ids = batch.get("prompt_ids")
    if not isinstance(prompt_ids, torch.Tensor) or prompt_ids.shape[0] % group_size:
        return False
    grouped = prompt_ids.view(-1, group_size, *prompt_ids.shape[1:])
    return bool((grouped == grouped[:, :1]).all())


def shuffle_by_group(batch: dict, group_size: int, row_shuffle) -> dict:
    """`batch` with its groups in a random order, or `row_shuffle(batch)` when its rows are not whole groups."""
    if not whole_groups(batch, group_size):
        return row_shuffle(batch)
    rows = batch["prompt_ids"].shape[0]
    order = group_permutation(rows, group_size)

    def permute(value):
        if value is None or (isinstance(value, torch.Tensor) and value.ndim == 0):
            return value
        if isinstance(value, torch.Tensor):
            return value[order.to(value.device)]
        if isinstance(value, (list, tuple)) and len(value) == rows:
            return [value[i] for i in order.tolist()]
        return value

    return {key: permute(value) for key, value in batch.items()}


@contextmanager
def groups_shuffled_whole(group_size: int):
    """Inside: TRL's GRPO trainer shuffles generation batches by whole groups (its module-level
    `shuffle_sequence_dict`, which `_prepare_inputs` calls, is replaced for the duration)."""
    from trl.trainer import grpo_trainer

    row_shuffle = grpo_trainer.shuffle_sequence_dict
    grpo_trainer.shuffle_sequence_dict = lambda batch: shuffle_by_group(batch, group_size, row_shuffle)
    try:
        yield
    finally:
        grpo_trainer.shuffle_sequence_dict = row_shuffle


def with_whole_group_shuffle(trainer_class: type) -> type:
    """`trainer_class` whose generation batches are shuffled by whole groups (see the module docstring)."""

    class WholeGroupShuffle(trainer_class):
        def _prepare_inputs(self, generation_batch):
            with groups_shuffled_whole(self.num_generations):
                return super()._prepare_inputs(generation_batch)

    WholeGroupShuffle.__name__ = WholeGroupShuffle.__qualname__ = trainer_class.__name__
    return WholeGroupShuffle
