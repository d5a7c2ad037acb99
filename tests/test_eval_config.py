"""conf/eval.yaml composes on the training tree, and its domain blocks equal the modules' defaults."""

import pytest

from eval import multiple_choice, verdict
from eval.suite import get_evaluator, selected_evaluators
from fixtures.eval_stand_ins import compose_eval


def test_eval_config_adds_adapter_and_keeps_training_keys():
    cfg = compose_eval("adapter=/some/dir", "eval.limit=4")
    assert cfg.adapter == "/some/dir"
    assert cfg.eval.limit == 4
    assert cfg.model.name == "tiny"
    assert "trainer" in cfg and "rewards" in cfg


@pytest.mark.parametrize("module", [multiple_choice, verdict])
def test_documented_domain_settings_equal_the_code_defaults(module):
    from omegaconf import OmegaConf

    cfg = compose_eval()
    name = {multiple_choice: "mmlu", verdict: "verdict"}[module]
    assert OmegaConf.to_container(cfg.eval[name], resolve=True) == module.DEFAULTS


def test_domains_are_selected_in_order_after_the_task():
    cfg = compose_eval("eval.domains=[pubmedqa,mmlu]")
    assert [e.name for e in selected_evaluators(cfg)] == ["gsm8k", "pubmedqa", "mmlu"]


def test_unknown_evaluator_lists_the_known_ones():
    with pytest.raises(ValueError, match="available: .*pubmedqa"):
        get_evaluator("hellaswag")


def test_zero_limit_is_refused_before_anything_loads():
    from eval.run import run_eval

    with pytest.raises(ValueError, match="eval.limit must be a positive number"):
        run_eval(compose_eval("eval.limit=0"), generator=object())


def test_eval_seed_zero_is_a_seed_not_a_fallback():
    from eval.suite import eval_seed

    assert eval_seed(compose_eval("eval.seed=0")) == 0
    assert eval_seed(compose_eval()) == 42  # ${seed}
