"""Library patches: version-checked, applied per run, undone after it, and the only door to private names."""

import ast
import logging

import pytest
import torch

import trl
import trl.trainer.utils as trl_utils
from conftest import REPO
from grpo.patches import guard_wandb_log, patched_for_run, score_only_completion_tokens_on_cpu


def test_a_run_s_patches_are_undone_when_it_ends():
    original = trl_utils._use_triton
    with patched_for_run():
        assert score_only_completion_tokens_on_cpu()
        assert trl_utils._use_triton is not original and trl_utils._use_triton(torch.device("cpu"))
    assert trl_utils._use_triton is original


def test_patches_are_undone_when_the_run_fails():
    original = trl_utils._use_triton
    with pytest.raises(RuntimeError), patched_for_run():
        score_only_completion_tokens_on_cpu()
        raise RuntimeError("the trial died")
    assert trl_utils._use_triton is original


def test_an_untested_library_version_is_left_alone_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(trl, "__version__", "2.0.0")
    original = trl_utils._use_triton
    with caplog.at_level(logging.WARNING), patched_for_run():
        assert score_only_completion_tokens_on_cpu() is False
        assert trl_utils._use_triton is original
    assert "trl 2.0.0 is outside ==1.16.0" in caplog.text


def test_the_cpu_patch_changes_nothing_on_other_devices():
    original = trl_utils._use_triton
    with patched_for_run():
        score_only_completion_tokens_on_cpu()
        meta = torch.device("meta")
        assert trl_utils._use_triton(meta) == original(meta)


def test_wandb_guard_is_undone_with_the_run(monkeypatch):
    import wandb

    original = wandb.log
    with patched_for_run():
        assert guard_wandb_log(wandb)
        assert wandb.log is not original
    assert wandb.log is original


PRIVATE_OWNERS = ("trl", "vllm", "wandb")


def _private_uses(tree: ast.AST) -> list[str]:
    """`from trl... import _x`, and `alias._x` where alias was imported from trl, vLLM or W&B."""
    aliases, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PRIVATE_OWNERS:
                    aliases.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PRIVATE_OWNERS:
            for a in node.names:
                if a.name.startswith("_"):
                    found.append(f"from {node.module} import {a.name}")
                aliases.add(a.asname or a.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_file_but_the_patch_module_reaches_private_names_of_trl_vllm_or_wandb():
    offenders = {}
    for folder in ("grpo", "eval", "tasks", "rewards", "scripts"):
        for path in (REPO / folder).glob("*.py"):
            if path.name == "patches.py":
                continue
            uses = _private_uses(ast.parse(path.read_text()))
            if uses:
                offenders[str(path.relative_to(REPO))] = uses
    assert not offenders, offenders


def test_a_tokenizer_read_once_is_the_tokenizer_transformers_builds(tiny_model_dir, monkeypatch):
    import types

    import transformers.tokenization_utils_tokenizers as backend
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from grpo.patches import tokenizer_read_once

    copied = []
    real_deepcopy = backend.copy.deepcopy
    monkeypatch.setattr(backend, "copy", types.SimpleNamespace(
        deepcopy=lambda value, *args: copied.append(type(value)) or real_deepcopy(value, *args)))
    original = backend.TokenizersBackend.__dict__["convert_to_native_format"]
    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert copied == [Tokenizer]  # transformers: read, then deep-copied
    with tokenizer_read_once():
        ours = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert copied == [Tokenizer]  # read once, not copied
    assert backend.TokenizersBackend.__dict__["convert_to_native_format"] is original  # one load only

    assert type(ours) is type(plain) and ours.backend_tokenizer.to_str() == plain.backend_tokenizer.to_str()
    assert ours.special_tokens_map == plain.special_tokens_map and ours.chat_template == plain.chat_template
    assert ours.added_tokens_decoder == plain.added_tokens_decoder and len(ours) == len(plain)
    text = "<start_of_turn>user\nWhat is 12 + 30? 🙂 Ω\t\t two  spaces<end_of_turn>\n"
    assert ours(text)["input_ids"] == plain(text)["input_ids"]
    assert ours.decode(ours(text)["input_ids"]) == plain.decode(plain(text)["input_ids"])


def test_the_tokenizer_patch_steps_aside_on_another_transformers_version(monkeypatch, caplog):
    import transformers
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    from grpo.patches import tokenizer_read_once

    monkeypatch.setattr(transformers, "__version__", "5.18.0")
    original = TokenizersBackend.__dict__["convert_to_native_format"]
    with caplog.at_level(logging.WARNING), tokenizer_read_once():
        assert TokenizersBackend.__dict__["convert_to_native_format"] is original
    assert "transformers 5.18.0 is outside ==5.17.*" in caplog.text
