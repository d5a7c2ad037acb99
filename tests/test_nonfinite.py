"""A NaN/inf gradient is never applied: the update is skipped, counted, and K in a row stop the run.

The guard is exercised inside the real transformers Trainer loop (the same `on_pre_optimizer_step`
hook GRPOTrainer runs), on a two-weight regression model so each test takes seconds. The NaN is
injected by a test-only callback registered before the guard: production code has no hook for it.
"""

import logging

import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from grpo.guards import SKIPPED_METRIC, NonFiniteGuard, TrainingHalted, guard_settings, run_guards_first


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def forward(self, x, y):
        return {"loss": ((self.layer(x) - y) ** 2).mean()}


class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        return {"x": torch.tensor([float(i % 4)]), "y": torch.tensor([2.0 * (i % 4)])}


class PoisonGrads(TrainerCallback):
    """Test-only: make every gradient NaN on the given (1-based) optimizer steps."""

    def __init__(self, steps):
        self.steps = set(steps)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 in self.steps:
            for param in model.parameters():
                param.grad.fill_(float("nan"))


class Snapshot(TrainerCallback):
    """Weights and logs after every step."""

    def __init__(self):
        self.weights, self.logs = [], []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.weights.append([p.detach().clone() for p in model.parameters()])

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def _train(tmp_path, poison_steps, guard, max_steps=6):
    torch.manual_seed(0)
    snapshot = Snapshot()
    callbacks = [PoisonGrads(poison_steps), *([guard] if guard else []), snapshot]
    trainer = Trainer(model=Linear(), args=_args(tmp_path, max_steps), train_dataset=Rows(), callbacks=callbacks)
    trainer.train()
    return trainer, snapshot


def _args(tmp_path, max_steps):
    return TrainingArguments(
        output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=4, learning_rate=0.1,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
        max_grad_norm=1.0, logging_nan_inf_filter=False,
    )


def _all_finite(weights):
    return all(torch.isfinite(w).all() for w in weights)


def test_nan_update_is_skipped_and_counted(tmp_path):
    guard = NonFiniteGuard(max_consecutive=3)
    trainer, snapshot = _train(tmp_path, poison_steps={3}, guard=guard)
    assert all(_all_finite(w) for w in snapshot.weights)
    # step 3's update was dropped: the weights after step 3 equal those after step 2
    assert all(torch.equal(a, b) for a, b in zip(snapshot.weights[1], snapshot.weights[2]))
    # and training went on afterwards
    assert not all(torch.equal(a, b) for a, b in zip(snapshot.weights[2], snapshot.weights[3]))
    assert trainer.state.global_step == 6 and guard.halted is None
    counts = [row[SKIPPED_METRIC] for row in snapshot.logs if "loss" in row]
    assert counts == [0, 0, 1, 1, 1, 1]


def test_reporters_ahead_of_the_guard_see_the_skip_count(tmp_path):
    """`report_to` puts W&B's callback ahead of ours; run_guards_first moves the guard ahead of it."""
    torch.manual_seed(0)
    reporter, guard = Snapshot(), NonFiniteGuard(max_consecutive=3)
    trainer = Trainer(model=Linear(), args=_args(tmp_path, 4), train_dataset=Rows(), callbacks=[reporter, guard])
    run_guards_first(trainer, [guard])
    trainer.callback_handler.callbacks.insert(0, PoisonGrads({3}))  # test-only, ahead of everything
    trainer.train()
    assert [row.get(SKIPPED_METRIC) for row in reporter.logs if "loss" in row] == [0, 0, 1, 1]


def test_without_the_guard_a_nan_update_corrupts_the_weights(tmp_path):
    """The failure the guard prevents: AdamW applies the NaN gradient and the weights become NaN."""
    _, snapshot = _train(tmp_path, poison_steps={3}, guard=None)
    assert not _all_finite(snapshot.weights[-1])


def test_consecutive_nonfinite_updates_stop_training_with_a_clear_error(tmp_path, caplog):
    guard = NonFiniteGuard(max_consecutive=3)
    with caplog.at_level(logging.WARNING, logger="grpo.guards"):
        trainer, snapshot = _train(tmp_path, poison_steps={2, 3, 4, 5, 6, 7, 8}, guard=guard, max_steps=10)
    assert trainer.state.global_step == 4  # step 1 good, 2-4 skipped, then stopped
    assert _all_finite(snapshot.weights[-1])
    with pytest.raises(TrainingHalted, match="3 consecutive updates had non-finite"):
        guard.raise_if_halted()
    assert "guard.max_consecutive_nonfinite=3" in guard.halted
    assert "update skipped" in caplog.text


def test_a_good_update_resets_the_consecutive_count(tmp_path):
    guard = NonFiniteGuard(max_consecutive=2)
    trainer, _ = _train(tmp_path, poison_steps={2, 4, 6}, guard=guard)
    assert trainer.state.global_step == 6 and guard.halted is None and guard.skipped == 3


def test_guard_settings_default_before_the_config_has_them():
    from omegaconf import OmegaConf

    assert guard_settings(OmegaConf.create({}))["max_consecutive_nonfinite"] == 3
    cfg = OmegaConf.create({"guard": {"max_consecutive_nonfinite": 5}})
    assert guard_settings(cfg)["max_consecutive_nonfinite"] == 5
