"""Publishing to the Hub, with huggingface_hub replaced by a recorder: what one commit would send for an
adapter and for each export, and that no token or no network gives a clear message and leaves the run's
files as they were."""

import logging

import pytest
from omegaconf import OmegaConf

import grpo.hub_push as hub_push


class FakeApi:
    """Records create_repo / create_commit calls; `fail` makes create_commit raise it."""

    calls: list = []
    fail: Exception | None = None

    def create_repo(self, repo_id, **kwargs):
        FakeApi.calls.append(("create_repo", repo_id, kwargs))

    def create_commit(self, repo_id, operations, commit_message, **kwargs):
        if FakeApi.fail is not None:
            raise FakeApi.fail
        FakeApi.calls.append(("create_commit", repo_id, operations, commit_message))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    FakeApi.calls, FakeApi.fail = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    return FakeApi


@pytest.fixture
def run_dir(tmp_path):
    """A finished run's files as grpo.train writes them (contents are stand-ins)."""
    (tmp_path / "adapter").mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja", "README.md"):
        (tmp_path / "adapter" / name).write_text(name)
    (tmp_path / "checkpoint-25").mkdir()
    (tmp_path / "checkpoint-25" / "optimizer.pt").write_text("x")
    for name in ("resolved_config.yaml", "metrics.jsonl", "reward.png", "eval_accuracy.png"):
        (tmp_path / name).write_text(name)
    (tmp_path / "README.md").write_text("---\nbase_model: google/gemma-3-270m\nlibrary_name: peft\n"
                                        "tags: [gemma, grpo, trl, gemma-grpo]\n---\n\n# card\n\n| metric | before |\n")
    return tmp_path


def snapshot(directory):
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(directory.rglob("*")) if p.is_file()}


def sent(hub):
    (commit,) = [c for c in hub.calls if c[0] == "create_commit"]
    return {op.path_in_repo: op for op in commit[2]}


def train_cfg(repo_id="me/gemma-gsm8k"):
    return OmegaConf.create({"hub": {"push": True, "repo_id": repo_id, "private": True}, "task": {"name": "gsm8k"}})


def test_end_of_training_push_sends_adapter_card_and_plots(run_dir, hub):
    assert hub_push.push_run(train_cfg(), run_dir)
    files = sent(hub)
    assert set(files) == {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
                          "tokenizer_config.json", "chat_template.jinja", "README.md", "reward.png",
                          "eval_accuracy.png", "resolved_config.yaml"}
    assert ("create_repo", "me/gemma-gsm8k", {"private": True, "exist_ok": True, "repo_type": "model"}) in hub.calls
    card = files["README.md"].path_or_fileobj.decode()
    assert card.startswith("---") and "| metric | before |" in card  # the run's card with its results table
    assert 'AutoPeftModelForCausalLM.from_pretrained("me/gemma-gsm8k")' in card


def test_gguf_export_push_sends_the_file_and_card(run_dir, hub, tmp_path):
    gguf = run_dir / "export" / "tiny-gsm8k-grpo-q8_0.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    plan = hub_push.upload_plan(run_dir, gguf, "gguf", "me/gemma-gguf")
    hub_push.push(plan, "me/gemma-gguf")
    files = sent(hub)
    assert set(files) == {"tiny-gsm8k-grpo-q8_0.gguf", "README.md", "reward.png", "eval_accuracy.png",
                          "resolved_config.yaml"}
    card = files["README.md"].path_or_fileobj.decode()
    assert "library_name: gguf" in card and "tags: [gguf, gemma" in card and "ollama run hf.co/me/gemma-gguf" in card


def test_merged_export_push_sends_the_whole_directory(run_dir, hub):
    merged = run_dir / "export" / "merged"
    merged.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json"):
        (merged / name).write_text(name)
    hub_push.push(hub_push.upload_plan(run_dir, merged, "merged", "me/m"), "me/m")
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "README.md"} <= set(sent(hub))
    assert "library_name: transformers" in sent(hub)["README.md"].path_or_fileobj.decode()


def test_no_token_is_a_clear_message_and_the_run_is_untouched(run_dir, hub, monkeypatch, caplog):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    before = snapshot(run_dir)
    with caplog.at_level(logging.ERROR):
        assert hub_push.push_run(train_cfg(), run_dir) is False
    assert "no Hugging Face token: run `hf auth login`" in caplog.text
    assert f"python -m grpo.export run={run_dir} format=adapter push=true hub.repo_id=me/gemma-gsm8k" in caplog.text
    assert hub.calls == []
    assert snapshot(run_dir) == before


def test_no_network_is_a_clear_message_and_the_run_is_untouched(run_dir, hub):
    from huggingface_hub.errors import OfflineModeIsEnabled

    hub.fail = OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled.")
    before = snapshot(run_dir)
    with pytest.raises(hub_push.HubPushError, match="upload to me/x failed .*OfflineModeIsEnabled.*nothing was changed"):
        hub_push.push(hub_push.upload_plan(run_dir, run_dir / "adapter", "adapter", "me/x"), "me/x")
    assert snapshot(run_dir) == before


def test_push_without_repo_id_is_refused_before_training():
    from grpo.validate import ConfigError

    with pytest.raises(ConfigError, match="hub.push=true needs hub.repo_id"):
        hub_push.check_hub_config(OmegaConf.create({"push": True, "repo_id": None}))
    hub_push.check_hub_config(OmegaConf.create({"push": False, "repo_id": None}))


def test_no_push_unless_asked(run_dir, hub):
    cfg = train_cfg()
    cfg.hub.push = False
    assert hub_push.push_run(cfg, run_dir) is False and hub.calls == []


def test_export_cli_config_pushes_the_adapter_as_trained(run_dir, hub):
    from compose import compose_train

    from grpo.export import run_export

    (run_dir / "resolved_config.yaml").write_text("task: {name: gsm8k}\nmodel: {name: tiny}\n")
    cfg = compose_train(f"run={run_dir}", "format=adapter", "push=true", "hub.repo_id=me/a", config_name="export")
    assert run_export(cfg) == run_dir / "adapter"
    assert {"adapter_model.safetensors", "README.md", "resolved_config.yaml"} <= set(sent(hub))
    assert "gsm8k GRPO adapter" in [c for c in hub.calls if c[0] == "create_commit"][0][3]
