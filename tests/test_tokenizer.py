"""The cached Gemma 3 tokenizer tokenizes like Gemma: words and turn markers are single tokens."""

from transformers import AutoTokenizer


def test_cached_tokenizer_uses_gemma_vocabulary(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer("Natalia sold clips to 48 of her friends", add_special_tokens=False)["input_ids"]
    assert len(ids) == 18, ids  # Gemma splits digits; a character-level split gives 39
    assert tokenizer("<start_of_turn>", add_special_tokens=False)["input_ids"] == [
        tokenizer.convert_tokens_to_ids("<start_of_turn>")
    ]
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") == 106


def test_chat_template_folds_system_into_first_user_turn(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False, add_generation_prompt=True,
    )
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
