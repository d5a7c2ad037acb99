"""Checkpoint integrity: a manifest written last decides what `resume=auto` may continue from."""

import json
import logging

import pytest

from test_signals import start_run

FILES = ("adapter_model.safetensors", "optimizer.pt", "trainer_state.json")


def fake_checkpoint(run_dir, step, manifest=True):
    """A checkpoint dir as the Trainer leaves it (real safetensors weights), then its manifest."""
    import torch
    from safetensors.torch import save_file

    from grpo.checkpoints import write_manifest

    checkpoint = run_dir / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    save_file({"lora_A": torch.full((8, 64), float(step))}, str(checkpoint / "adapter_model.safetensors"))
    (checkpoint / "optimizer.pt").write_bytes(bytes(range(256)) * 8)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if manifest:
        write_manifest(checkpoint)
    return checkpoint


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path):
    """Same size, different bytes: only the checksum can tell."""
    data = bytearray(path.read_bytes())
    data[-16:] = bytes(16)
    data[-1] = 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, garble], ids=["truncated", "garbled"])
def test_resume_falls_back_past_a_damaged_newest_checkpoint_and_says_why(tmp_path, caplog, damage):
    from grpo.resume import last_checkpoint

    older = fake_checkpoint(tmp_path, 2)
    newest = fake_checkpoint(tmp_path, 4)
    damage(newest / "adapter_model.safetensors")
    with caplog.at_level(logging.WARNING, logger="grpo.resume"):
        assert last_checkpoint("auto", tmp_path) == str(older)
    assert f"Skipping {newest}: adapter_model.safetensors" in caplog.text
    assert ("bytes, the manifest says" if damage is truncate else "damaged") in caplog.text


def test_resume_refuses_when_every_checkpoint_is_damaged(tmp_path):
    from grpo.resume import last_checkpoint
    from tasks import ConfigError

    for step in (2, 4):
        truncate(fake_checkpoint(tmp_path, step) / "adapter_model.safetensors")
    with pytest.raises(ConfigError, match=r"none verifies: checkpoint-4 \(adapter_model.safetensors has .*checkpoint-2"):
        last_checkpoint("auto", tmp_path)


def test_a_missing_file_fails_verification(tmp_path):
    from grpo.checkpoints import checkpoint_problem

    checkpoint = fake_checkpoint(tmp_path, 1)
    assert checkpoint_problem(checkpoint) is None
    (checkpoint / "optimizer.pt").unlink()
    assert checkpoint_problem(checkpoint) == "optimizer.pt is missing"


def test_an_explicit_damaged_checkpoint_is_refused_with_the_reason(tmp_path):
    from grpo.resume import last_checkpoint
    from tasks import ConfigError

    checkpoint = fake_checkpoint(tmp_path, 3)
    garble(checkpoint / "optimizer.pt")
    with pytest.raises(ConfigError, match="optimizer.pt is damaged"):
        last_checkpoint(str(checkpoint), tmp_path)


def test_checkpoints_cut_short_while_saving_start_the_run_afresh(tmp_path):
    """Nothing finished saving: no work to lose, so a requeued job just starts (no refusal)."""
    from grpo.resume import last_checkpoint

    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "checkpoint-1" / "adapter_model.safetensors").write_bytes(b"\0" * 10)
    assert last_checkpoint("auto", tmp_path) is None


def test_a_checkpoint_killed_before_its_manifest_is_skipped(tmp_path):
    from grpo.resume import last_checkpoint

    older = fake_checkpoint(tmp_path, 1)
    fake_checkpoint(tmp_path, 2, manifest=False)  # trainer_state.json written, manifest not yet
    assert last_checkpoint("auto", tmp_path) == str(older)


def test_checkpoints_from_before_manifests_resume_when_their_safetensors_headers_load(tmp_path, caplog):
    from grpo.resume import last_checkpoint

    older = fake_checkpoint(tmp_path, 1, manifest=False)
    newest = fake_checkpoint(tmp_path, 2, manifest=False)
    with caplog.at_level(logging.WARNING):
        assert last_checkpoint("auto", tmp_path) == str(newest)
    assert "written before checkpoint manifests" in caplog.text
    (newest / "adapter_model.safetensors").write_bytes(b"\xff" * 64)  # header length points past the end
    assert last_checkpoint("auto", tmp_path) == str(older)


@pytest.mark.slow
def test_training_writes_manifests_and_resumes_past_a_damaged_checkpoint(tmp_path, tiny_model_dir):
    from grpo.checkpoints import MANIFEST

    out = tmp_path / "run"
    first = start_run(out, "trainer.max_steps=2", "trainer.save_steps=1")
    assert first.wait(timeout=900) == 0, open(first.log_path).read()[-3000:]
    assert (out / "checkpoint-1" / MANIFEST).exists() and (out / "checkpoint-2" / MANIFEST).exists()
    truncate(out / "checkpoint-2" / "adapter_model.safetensors")
    second = start_run(out, "trainer.max_steps=3", "trainer.save_steps=1")
    assert second.wait(timeout=900) == 0, open(second.log_path).read()[-3000:]
    log = open(second.log_path).read()
    assert f"Skipping {out / 'checkpoint-2'}: adapter_model.safetensors has" in log
    assert f"Resuming from {out / 'checkpoint-1'}" in log
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == [1, 2, 3]  # step 2 trained again from checkpoint-1; its first record was dropped


def test_a_garbled_manifest_fails_verification_with_a_reason(tmp_path):
    from grpo.checkpoints import MANIFEST, checkpoint_problem

    checkpoint = fake_checkpoint(tmp_path, 1)
    for text in ("{", '{"files": [1]}', '{"files": {"optimizer.pt": {"size": 1}}}'):
        (checkpoint / MANIFEST).write_text(text)
        assert checkpoint_problem(checkpoint) == f"its manifest {MANIFEST} is unreadable"
