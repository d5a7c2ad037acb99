"""Where a run continues from: run dirs, `latest`, incomplete checkpoints; one rule for GRPO and SFT."""

import pytest

from test_checkpoints import fake_checkpoint

def _run_dir(path, steps=(), complete=True):
    path.mkdir(parents=True)
    (path / "resolved_config.yaml").write_text("seed: 42\n")
    for step in steps:
        if complete:
            fake_checkpoint(path, step)
        else:
            (path / f"checkpoint-{step}").mkdir()
    return path


def test_resume_with_a_run_dir_continues_that_run_in_its_own_dir(tmp_path):
    from grpo.resume import resolve_resume_argv

    old = _run_dir(tmp_path / "outputs" / "gsm8k" / "2026-11-30_10-00-00", steps=(5,))
    argv = resolve_resume_argv(["+task=gsm8k", "trainer.max_steps=20", f"resume={old}"])
    assert argv == ["+task=gsm8k", "trainer.max_steps=20", f"hydra.run.dir={old}", "resume=auto"]


def test_resume_latest_takes_the_newest_run_of_the_task_with_a_complete_checkpoint(tmp_path, monkeypatch):
    from grpo import resume

    outputs = tmp_path / "outputs"
    monkeypatch.setattr(resume, "OUTPUTS", outputs)
    older = _run_dir(outputs / "gsm8k" / "2026-11-30_10-00-00", steps=(5,))
    _run_dir(outputs / "gsm8k" / "2026-11-30_11-00-00", steps=(1,), complete=False)  # killed while saving
    _run_dir(outputs / "math" / "2026-11-30_12-00-00", steps=(9,))  # another task
    assert resume.resolve_resume_argv(["+task=gsm8k", "resume=latest"])[-2:] == [f"hydra.run.dir={older}", "resume=auto"]


def test_resume_latest_without_any_run_says_so(tmp_path, monkeypatch):
    from grpo import resume
    from tasks import ConfigError

    monkeypatch.setattr(resume, "OUTPUTS", tmp_path / "outputs")
    with pytest.raises(ConfigError, match="no run of task gsm8k"):
        resume.resolve_resume_argv(["+task=gsm8k", "resume=latest"])


def test_sft_skips_a_checkpoint_left_incomplete_by_a_kill_as_grpo_does(tmp_path):
    """grpo.sft and grpo.train resume through the same function."""
    import inspect

    import grpo.sft
    from grpo.resume import last_checkpoint

    assert "last_checkpoint(" in inspect.getsource(grpo.sft) and grpo.sft.last_checkpoint is last_checkpoint


def test_resume_command_names_a_chained_run_s_root(tmp_path):
    from grpo.resume import resume_command

    (tmp_path / "sft").mkdir()
    assert resume_command("grpo.train", tmp_path / "grpo").endswith(f"resume={tmp_path}")
