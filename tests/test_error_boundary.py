"""One error boundary: what a user can cause ends in one message and exit 2, never a traceback; bugs keep
theirs."""

import json

import pytest

from conftest import run_cli
from grpo.errors import user_error_message
from tasks import ConfigError


def _hub_error(name):
    import httpx
    from huggingface_hub import errors

    response = httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co/api/models/google/x"))
    return getattr(errors, name)("401 Client Error", response=response)


@pytest.mark.parametrize("error, fragments", [
    (ConfigError("trainer.learning_rate=0 must be > 0"), ["trainer.learning_rate"]),
    ("GatedRepoError", ["gated", "licence", "hf auth login"]),
    ("RepositoryNotFoundError", ["no such model", "model.hub_id"]),
])
def test_library_errors_a_user_causes_become_a_message_with_the_fix(error, fragments):
    if isinstance(error, str):
        error = _hub_error(error)
    message = user_error_message(error)
    for fragment in fragments:
        assert fragment in message, message


def test_a_damaged_weight_file_is_a_user_error(tmp_path):
    from safetensors.torch import load_file

    damaged = tmp_path / "adapter_model.safetensors"
    damaged.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(Exception) as caught:
        load_file(damaged)
    assert "damaged or incomplete weight file" in user_error_message(caught.value)


def test_a_bug_is_not_dressed_up_as_a_user_error():
    assert user_error_message(KeyError("step")) is None
    assert user_error_message(RuntimeError("shape mismatch")) is None


@pytest.mark.slow
def test_cli_user_errors_exit_2_with_one_message_and_no_traceback(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "no final number"}) + "\n")
    cases = [
        ("eval.run", ["+task=gsm8k", "model=tiny", "profile=cpu", "eval.num_samples=4"], "eval.num_samples=4"),
        ("grpo.train", ["+task=gsm8k", "model=tiny", "profile=cpu", "logger=none",
                        f"task.data_files={{train:'{bad}'}}"], "no usable rows"),
        ("grpo.train", ["+task=gsm8k", "model=tiny", "profile=cpu", "logger=none",
                        "trainer.max_completion_length=500000"], "reads at most"),
    ]
    for module, overrides, fragment in cases:
        result = run_cli(module, *overrides, f"hydra.run.dir={tmp_path / module}", timeout=300)
        assert result.returncode == 2, result.output[-2000:]
        assert fragment in result.output and "Traceback" not in result.output, result.output[-2000:]
