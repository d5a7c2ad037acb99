"""W&B trouble never stops training: an unreachable server falls back to offline at start, and a
`wandb.log` that raises mid-run re-opens the run offline (same id) instead of crashing the Trainer."""

import logging

import pytest
from omegaconf import OmegaConf

from grpo.tracking import finish_wandb, start_wandb

wandb = pytest.importorskip("wandb")


@pytest.fixture
def wandb_env(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # conftest disables W&B for every other test
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    original_log = wandb.log
    yield tmp_path
    finish_wandb()
    wandb.log = original_log


def _logger(mode, init_timeout=60):
    return OmegaConf.create({"name": "wandb", "project": "gemma-grpo-test", "entity": None, "mode": mode,
                             "init_timeout": init_timeout})


def test_unreachable_server_falls_back_to_offline(wandb_env, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # loopback port with nothing listening
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    with caplog.at_level(logging.WARNING, logger="grpo.tracking"):
        report_to = start_wandb(_logger("online", init_timeout=5), "t", str(wandb_env), {}, resume_id="abc123def456")
    assert report_to == ["wandb"]
    assert wandb.run is not None and wandb.run.offline
    assert wandb.run.id == "abc123def456"
    assert "W&B online start failed" in caplog.text


def test_failing_log_mid_run_continues_offline(wandb_env, monkeypatch, caplog):
    assert start_wandb(_logger("offline"), "t", str(wandb_env), {}, resume_id="midrun000001") == ["wandb"]
    wandb.log({"loss": 1.0})

    def broken(*args, **kwargs):
        raise ConnectionError("W&B went away")

    monkeypatch.setattr(wandb.run, "log", broken)
    with caplog.at_level(logging.WARNING, logger="grpo.tracking"):
        wandb.log({"loss": 0.5})  # what transformers' WandbCallback calls every step
        wandb.log({"loss": 0.25})
    assert "W&B log failed mid-run" in caplog.text
    assert wandb.run is not None and wandb.run.offline and wandb.run.id == "midrun000001"
