"""Registry, stack building and the never-raise wrapper."""

import math
import textwrap
import time

import pytest

import rewards.registry as registry_module
from rewards import available_rewards, build_reward_stack, get_reward, register_reward
from rewards.registry import SafeReward, wrap_reward

BUILTINS = {"choice", "correctness", "length", "numeric_format", "reasoning_steps", "regex_verdict", "structure"}
GOOD = "<reasoning>\n6 * 12 = 72\n</reasoning>\n<answer>\n72\n</answer>"


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))


# -- registry ---------------------------------------------------------------------------
def test_available_rewards_lists_builtins_sorted():
    names = available_rewards()
    assert BUILTINS <= set(names)
    assert names == sorted(names)


def test_duplicate_registration_raises(clean_registry):
    with pytest.raises(ValueError, match="already registered"):
        register_reward("correctness")(lambda: None)


def test_register_then_get(clean_registry):
    @register_reward("always_half")
    def always_half(value: float = 0.5):
        return lambda prompts, completions, **kw: [value] * len(completions)

    reward = get_reward("always_half", value=0.25)
    assert reward(prompts=[None], completions=["x"]) == [0.25]
    assert "always_half" in available_rewards()


def test_unknown_reward_lists_available_names():
    with pytest.raises(ValueError) as err:
        get_reward("corectness")
    for name in BUILTINS:
        assert name in str(err.value)


def test_unknown_param_is_named():
    with pytest.raises(ValueError, match="'strictness'"):
        get_reward("correctness", strictness=True)


def test_bad_param_value_is_named():
    with pytest.raises(ValueError, match="'strict'"):
        get_reward("correctness", strict="yes")
    with pytest.raises(ValueError, match="'labels'"):
        get_reward("choice", labels="ABCDE")
    with pytest.raises(ValueError, match="'cache'"):
        get_reward("length", max_completion_length=100, cache=500)


def test_missing_required_param_is_named():
    with pytest.raises(ValueError, match="max_completion_length"):
        get_reward("length")


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_rewards_keep_their_name_and_accept_trl_kwargs(name):
    params = {"length": {"max_completion_length": 64}, "choice": {"labels": ["yes", "no"]}}.get(name, {})
    reward = get_reward(name, **params)
    assert reward.__name__ == name
    logged = []
    scores = reward(
        prompts=["q"],
        completions=[GOOD],
        answer=["72"],
        completion_ids=[[1, 2, 3]],
        trainer_state=object(),
        log_extra=lambda *a, **k: None,
        log_metric=lambda key, value: logged.append((key, value)),
        some_other_column=["x"],
    )
    assert len(scores) == 1 and isinstance(scores[0], float)
    assert logged == [(f"rewards/{name}/error_rate", 0.0)]


# -- wrapper ----------------------------------------------------------------------------
def _flaky(prompts, completions, **kwargs):
    if any("boom" in c for c in completions):
        raise RuntimeError("boom")
    return [1.0] * len(completions)


def test_wrapper_never_raises_and_scores_only_the_bad_completion_zero():
    reward = wrap_reward(_flaky, "flaky")
    logged = []
    scores = reward(prompts=[None] * 3, completions=["ok", "boom", "ok"], log_metric=lambda k, v: logged.append((k, v)))
    assert scores == [1.0, 0.0, 1.0]
    assert reward.error_count == 1
    assert logged == [("rewards/flaky/error_rate", pytest.approx(1 / 3))]


def test_wrapper_counts_errors_across_calls():
    reward = wrap_reward(_flaky, "flaky")
    reward(prompts=[None], completions=["boom"])
    reward(prompts=[None, None], completions=["boom", "ok"])
    assert reward.error_count == 2
    assert reward.completion_count == 3
    assert reward.error_rate == pytest.approx(2 / 3)
    assert "boom" in reward.last_error


def test_wrapper_zeroes_non_finite_scores_and_keeps_none():
    reward = wrap_reward(lambda prompts, completions, **kw: [math.nan, math.inf, None, 0.5, "x"], "weird")
    assert reward(prompts=[None] * 5, completions=["a"] * 5) == [0.0, 0.0, None, 0.5, 0.0]
    assert reward.error_count == 3


def test_wrapper_handles_wrong_length_results():
    reward = wrap_reward(lambda prompts, completions, **kw: [1.0], "short")
    assert reward(prompts=[None] * 3, completions=["a", "b", "c"]) == [1.0, 1.0, 1.0]  # item by item works
    reward = wrap_reward(lambda prompts, completions, **kw: [], "empty")
    assert reward(prompts=[None] * 2, completions=["a", "b"]) == [0.0, 0.0]
    assert reward.error_count == 2


def test_wrapper_passes_only_declared_kwargs():
    def narrow(prompts, completions, answer):
        return [float(a == "1") for a in answer]

    reward = wrap_reward(narrow, "narrow")
    assert reward(prompts=[None], completions=["x"], answer=["1"], trainer_state=None, log_metric=None) == [1.0]
    assert reward.error_count == 0


def test_builtin_error_in_one_row_is_counted():
    reward = get_reward("correctness")
    scores = reward(prompts=[None, None], completions=[GOOD, GOOD], solution=["72", "72"])  # no `answer` column
    assert scores == [0.0, 0.0]
    assert reward.error_count == 2
    assert "answer" in reward.last_error


# -- stack ------------------------------------------------------------------------------
def test_stack_from_the_gsm8k_config():
    funcs, weights = build_reward_stack(
        {"correctness": {"weight": 1.0}, "numeric_format": {"weight": 0.25}, "reasoning_steps": None, "structure": {"weight": 0.25}}
    )
    assert [f.__name__ for f in funcs] == ["correctness", "numeric_format", "reasoning_steps", "structure"]
    assert weights == [1.0, 0.25, 1.0, 0.25]
    assert all(isinstance(f, SafeReward) for f in funcs)
    assert [f(prompts=[None], completions=[GOOD], answer=["72"])[0] for f in funcs] == [1.0, 1.0, pytest.approx(1 / 3), 1.0]


def test_stack_entry_by_name_with_params_keeps_the_key_as_name():
    funcs, weights = build_reward_stack({"strict_correct": {"name": "correctness", "params": {"strict": True}, "weight": 2}})
    assert funcs[0].__name__ == "strict_correct"
    assert weights == [2.0]
    assert funcs[0](prompts=[None], completions=["\\boxed{72}"], answer=["72"]) == [0.0]


@pytest.mark.parametrize(
    ("stack", "message"),
    [
        ({}, "non-empty"),
        ({"corectness": {}}, r"rewards\.stack\.corectness: unknown reward 'corectness'; available rewards: choice"),
        ({"correctness": {"wieght": 1}}, r"rewards\.stack\.correctness has unknown key\(s\) \['wieght'\]"),
        ({"correctness": {"weight": "high"}}, r"rewards\.stack\.correctness\.weight must be a finite number"),
        ({"correctness": {"weight": True}}, r"rewards\.stack\.correctness\.weight"),
        ({"correctness": {"weight": float("nan")}}, r"rewards\.stack\.correctness\.weight"),
        ({"correctness": {"params": {"strictness": 1}}}, r"rewards\.stack\.correctness\.params: .*'strictness'"),
        ({"correctness": {"params": [1]}}, r"rewards\.stack\.correctness\.params must be a mapping"),
        ({"correctness": 3}, r"rewards\.stack\.correctness must be a mapping"),
        ({"mine": {"_target_": "no_such_pkg_xyz.reward"}}, r"rewards\.stack\.mine\._target_='no_such_pkg_xyz\.reward' cannot be imported"),
        ({"mine": {"_target_": "math.no_such_fn"}}, r"rewards\.stack\.mine\._target_='math\.no_such_fn' cannot be imported"),
        ({"mine": {"_target_": "math.pi"}}, r"rewards\.stack\.mine\._target_='math\.pi' is a float, not a function"),
        ({"mine": {"_target_": "math.sqrt", "name": "correctness"}}, r"rewards\.stack\.mine sets both name and _target_"),
        ({"correctness": {"_partial_": True}}, r"rewards\.stack\.correctness\._partial_ only applies with _target_"),
    ],
)
def test_stack_validation_messages(stack, message):
    with pytest.raises(ValueError, match=message):
        build_reward_stack(stack)


def test_stack_building_is_cheap():
    start = time.perf_counter()
    for _ in range(100):
        build_reward_stack({"correctness": {}, "numeric_format": {}, "reasoning_steps": {}, "structure": {}})
    assert time.perf_counter() - start < 1.0


USER_MODULE = textwrap.dedent(
    '''
    def my_reward(prompts, completions, **kwargs):
        return [float(len(c) > 3) for c in completions]

    def uses_answer(prompts, completions, answer, **kwargs):
        return [float(a in c) for c, a in zip(completions, answer)]

    def explodes(prompts, completions, **kwargs):
        raise RuntimeError("user bug")

    def make_threshold(min_len):
        def threshold(prompts, completions, **kwargs):
            return [float(len(c) >= min_len) for c in completions]
        return threshold

    def scaled(prompts, completions, factor=1.0, **kwargs):
        return [factor] * len(completions)

    async def is_async(prompts, completions, **kwargs):
        return [1.0] * len(completions)
    '''
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    pkg = tmp_path / "my_user_rewards_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_user_rewards_pkg.mod"


def test_user_target_outside_the_package_plugs_in(user_module):
    funcs, weights = build_reward_stack(
        {"correctness": {"weight": 1.0}, "mine": {"_target_": f"{user_module}.my_reward", "weight": 0.5}}
    )
    mine = funcs[1]
    assert mine.__name__ == "mine"
    assert weights == [1.0, 0.5]
    logged = []
    assert mine(prompts=[None, None], completions=["abcd", "ab"], answer=["1", "2"], trainer_state=None, log_metric=lambda k, v: logged.append(k)) == [1.0, 0.0]
    assert logged == ["rewards/mine/error_rate"]


def test_user_target_receives_dataset_columns(user_module):
    (fn,), _ = build_reward_stack({"has_answer": {"_target_": f"{user_module}.uses_answer"}})
    assert fn(prompts=[None, None], completions=["it is 72", "it is 7"], answer=["72", "72"]) == [1.0, 0.0]


def test_user_target_that_raises_never_reaches_the_trainer(user_module):
    (fn,), _ = build_reward_stack({"bad": {"_target_": f"{user_module}.explodes"}})
    logged = []
    assert fn(prompts=[None] * 2, completions=["a", "b"], log_metric=lambda k, v: logged.append((k, v))) == [0.0, 0.0]
    assert fn.error_count == 2
    assert logged == [("rewards/bad/error_rate", 1.0)]


def test_user_factory_with_params(user_module):
    (fn,), _ = build_reward_stack({"long": {"_target_": f"{user_module}.make_threshold", "params": {"min_len": 3}}})
    assert fn.__name__ == "long"
    assert fn(prompts=[None, None], completions=["abc", "ab"]) == [1.0, 0.0]


def test_user_partial_binds_params_into_each_call(user_module):
    (fn,), _ = build_reward_stack({"s": {"_target_": f"{user_module}.scaled", "_partial_": True, "params": {"factor": 0.5}}})
    assert fn.__name__ == "s"
    assert fn(prompts=[None], completions=["x"]) == [0.5]


def test_user_factory_failure_is_reported_with_the_entry(user_module):
    with pytest.raises(ValueError, match=r"rewards\.stack\.long: calling factory"):
        build_reward_stack({"long": {"_target_": f"{user_module}.make_threshold", "params": {"nope": 3}}})


def test_async_user_target_is_refused(user_module):
    with pytest.raises(ValueError, match=r"rewards\.stack\.a\._target_=.* is async"):
        build_reward_stack({"a": {"_target_": f"{user_module}.is_async"}})


def test_target_whose_own_import_fails_says_so(tmp_path, monkeypatch):
    (tmp_path / "broken_user_mod.py").write_text("import definitely_missing_dependency_xyz\ndef f(prompts, completions, **kw): return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="definitely_missing_dependency_xyz"):
        build_reward_stack({"b": {"_target_": "broken_user_mod.f"}})
