"""scripts/gpu_check.py works end to end on a CPU with tiny shapes (the figures it prints on a GPU are
checked there); its stand-in tokenizer has Gemma 3's special-token ids and chat template."""

import sys

import pytest
from transformers import AutoTokenizer

from conftest import REPO, run_cli

sys.path.insert(0, str(REPO / "scripts"))
import gpu_check  # noqa: E402


def test_stand_in_tokenizer_matches_gemma3_where_it_matters(tiny_model_dir):
    real = AutoTokenizer.from_pretrained(tiny_model_dir)
    stand_in = gpu_check.stand_in_tokenizer()
    assert len(stand_in) == gpu_check.VOCAB == len(real)
    for token, token_id in gpu_check.SPECIAL.items():
        assert real.convert_tokens_to_ids(token) == token_id == stand_in.convert_tokens_to_ids(token), token
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}]
    render = lambda tok: tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)  # noqa: E731
    assert render(stand_in) == render(real)
    ids = stand_in(render(stand_in), add_special_tokens=False)["input_ids"]
    assert ids[:2] == [2, 105] and ids[-3:-1] == [106, 105]


def test_gpu_test_files_are_found():
    files = gpu_check.gpu_test_files()
    assert "tests/test_weight_sync.py" in files and "tests/test_attention_parity.py" in files


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_cpu_with_tiny_shapes(tmp_path):
    result = run_cli(
        "scripts.gpu_check", "--skip-tests", "--shapes", "tiny", "tiny-mm", "--steps", "2", "--work", str(tmp_path),
        "--", "trainer.num_generations=2", "batch.prompts_per_step=2", "trainer.max_completion_length=8",
        timeout=600,
    )
    assert result.returncode == 0, result.output[-3000:]
    summary = result.output.split("== summary", 1)[1]
    assert "tiny " in summary and "tiny-mm" in summary and "all passed" in summary
    assert "out-of-place 0.0%" in summary
