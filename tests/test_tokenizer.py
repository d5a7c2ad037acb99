"""The cached Gemma 3 tokenizer tokenizes like Gemma: known token ids for turns and words."""

from transformers import AutoTokenizer


def test_chat_turn_has_gemma3_token_ids(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    # Gemma 3: <start_of_turn>=105, user=2364, \n=107, <end_of_turn>=106, model=4368
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == [105, 2364, 107, 10979, 106, 107, 105, 4368, 107]


def test_words_are_whole_pieces_and_round_trip(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Natalia sold clips to 48 of her friends"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[2:5] == ["▁sold", "▁clips", "▁to"]
    assert len(ids) == 11  # digits are split one by one; a character-level split gives 39
    assert tokenizer.decode(ids) == text
    assert tokenizer("Hi")["input_ids"][0] == tokenizer.bos_token_id


def test_chat_template_folds_system_into_first_user_turn(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False, add_generation_prompt=True,
    )
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
