"""A run whose groups keep scoring all-equal (frac_reward_zero_std high) gets a clear warning."""

import logging

from transformers import TrainerControl, TrainerState, TrainingArguments

from grpo.guards import ZeroVarianceWarning, build_guards


def _feed(callback, shares):
    state, control = TrainerState(), TrainerControl()
    args = TrainingArguments(output_dir="unused", report_to=[], use_cpu=True)
    for step, share in enumerate(shares, start=1):
        state.global_step = step
        callback.on_log(args, state, control, logs={"loss": 0.0, "frac_reward_zero_std": share})


def test_high_zero_std_share_over_the_window_warns(caplog):
    callback = ZeroVarianceWarning(threshold=0.9, window=10)
    with caplog.at_level(logging.WARNING, logger="grpo.guards"):
        _feed(callback, [1.0] * 9)
        assert callback.warnings == 0 and "frac_reward_zero_std" not in caplog.text
        _feed(callback, [0.95])
    assert callback.warnings == 1
    assert "too hard or too easy" in caplog.text and "10 steps" in caplog.text


def test_one_informative_step_in_the_window_does_not_warn(caplog):
    callback = ZeroVarianceWarning(threshold=0.9, window=10)
    with caplog.at_level(logging.WARNING, logger="grpo.guards"):
        _feed(callback, [1.0] * 5 + [0.5] + [1.0] * 8)
    assert callback.warnings == 0 and "frac_reward_zero_std" not in caplog.text


def test_the_warning_repeats_once_per_window_not_every_step():
    callback = ZeroVarianceWarning(threshold=0.9, window=10)
    _feed(callback, [1.0] * 25)
    assert callback.warnings == 2


def test_window_and_threshold_come_from_the_guard_config():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"guard": {"zero_std_window": 3, "zero_std_threshold": 0.5}})
    watch = [g for g in build_guards(cfg) if isinstance(g, ZeroVarianceWarning)][0]
    assert (watch.window, watch.threshold) == (3, 0.5)
