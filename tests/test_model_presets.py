"""Every model preset's stop tokens exist in its tokenizer; unknown ones are refused; Gemma 4 renders
with thinking off in training, evaluation and SFT alike.

Gemma 3 presets are checked against the real Gemma 3 tokenizer (converted from the embedded GGUF);
Gemma 4's gated tokenizer is replaced by a fixture of its special tokens
(tests/fixtures/gemma4_special_tokens.json, sources cited there).
"""

import json

import pytest
from omegaconf import OmegaConf
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from compose import compose_train
from conftest import REPO
from grpo.models import bind_chat_template_kwargs, eos_token_ids
from grpo.validate import ConfigError

PRESETS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
FIXTURE = json.loads((REPO / "tests" / "fixtures" / "gemma4_special_tokens.json").read_text())


def gemma4_tokenizer():
    """A tokenizer holding exactly Gemma 4's special tokens at their real ids."""
    tokens = FIXTURE["tokens"]
    taken = set(tokens.values())
    vocab = {f"<filler{i}>": i for i in range(max(taken) + 1) if i not in taken} | tokens
    inner = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=inner, **FIXTURE["special"])


@pytest.fixture(scope="module")
def gemma3_tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def tokenizer_for(name, gemma3_tokenizer):
    return gemma4_tokenizer() if name.startswith("gemma4") else gemma3_tokenizer


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_stops_at_its_own_turn_end(name, gemma3_tokenizer):
    model_cfg = OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")
    ids = eos_token_ids(model_cfg, tokenizer_for(name, gemma3_tokenizer))
    turn_end = 106  # Gemma 3 <end_of_turn> and Gemma 4 <turn|> share the id
    assert turn_end in ids and len(ids) == len(model_cfg.eos_tokens)


def test_every_preset_family_is_covered():
    assert all(name.startswith(("gemma3", "gemma4")) or name == "tiny" for name in PRESETS)


def test_gemma4_fixture_has_no_gemma3_turn_markers():
    tokenizer = gemma4_tokenizer()
    assert tokenizer.convert_tokens_to_ids("<turn|>") == 106 and tokenizer.convert_tokens_to_ids("<|turn>") == 105
    for marker in FIXTURE["not_in_vocabulary"]:
        assert tokenizer.convert_tokens_to_ids(marker) == tokenizer.unk_token_id


def test_an_unknown_eos_token_is_refused_by_name():
    model_cfg = OmegaConf.create({"name": "gemma4-e2b-it", "eos_tokens": ["<end_of_turn>", "<eos>"]})
    with pytest.raises(ConfigError, match=r"model.eos_tokens: <end_of_turn> not in the tokenizer.*<turn\|>"):
        eos_token_ids(model_cfg, gemma4_tokenizer())


# Gemma 4's switch, reduced to what matters here: thinking is on unless the caller turns it off.
THINKING_TEMPLATE = (
    "{{ bos_token }}{% if enable_thinking is not defined or enable_thinking %}<|think|>{% endif %}"
    "{% for m in messages %}<|turn>{{ m['role'] }}\n{{ m['content'] }}<turn|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)


@pytest.mark.parametrize("name", ["gemma4-e2b-it", "gemma4-e4b-it"])
def test_gemma4_presets_turn_thinking_off(name):
    cfg = compose_train("+task=gsm8k", "profile=cpu", f"model={name}")
    assert cfg.model.chat_template_kwargs.enable_thinking is False


def test_bound_template_kwargs_reach_every_caller():
    """The binding applies to the calls TRL, the evaluators and SFT formatting make (no kwargs of theirs)."""
    tokenizer = gemma4_tokenizer()
    tokenizer.chat_template = THINKING_TEMPLATE
    chat = [{"role": "user", "content": "2+2?"}]
    assert "<|think|>" in tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    bind_chat_template_kwargs(tokenizer, {"enable_thinking": False})
    assert tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
        "<bos><|turn>user\n2+2?<turn|>\n<|turn>model\n"
    )
    # TRL's own helper (prompts for rollouts) goes through the same bound method
    from trl.data_utils import apply_chat_template

    assert "<|think|>" not in apply_chat_template({"prompt": chat}, tokenizer)["prompt"]
    # a caller that asks for thinking explicitly still gets it
    assert "<|think|>" in tokenizer.apply_chat_template(chat, tokenize=False, enable_thinking=True)


def test_qlora_settings_reach_the_quantization_config():
    from omegaconf import OmegaConf

    from grpo.models import bnb_config

    peft = OmegaConf.load(REPO / "conf" / "peft" / "qlora.yaml")
    assert (bnb_config(peft).bnb_4bit_quant_type, bnb_config(peft).bnb_4bit_use_double_quant) == ("nf4", True)
    peft.quant_type, peft.double_quant = "fp4", False
    assert (bnb_config(peft).bnb_4bit_quant_type, bnb_config(peft).bnb_4bit_use_double_quant) == ("fp4", False)
