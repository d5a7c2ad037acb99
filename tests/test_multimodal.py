"""Multimodal Gemma checkpoints train text-only, with LoRA on the language model alone."""

import torch
from omegaconf import OmegaConf
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Gemma3Config, Gemma3ForConditionalGeneration

from conftest import REPO


def test_gemma3_multimodal_trains_text_only_with_lora_on_language_layers(tmp_path):
    config = Gemma3Config(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=32, vocab_size=1000),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        mm_tokens_per_image=4,
    )
    Gemma3ForConditionalGeneration(config).save_pretrained(tmp_path)
    model_cfg = OmegaConf.load(REPO / "conf" / "model" / "gemma3-4b-it.yaml")
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=model_cfg.lora_target_modules))
    adapted = [name for name, _ in peft_model.named_parameters() if "lora_A" in name]
    assert len(adapted) == 2 * 7  # two text layers, seven projections each
    assert all("language_model" in name for name in adapted)

    peft_model.train()
    input_ids = torch.randint(0, 1000, (2, 10))
    loss = peft_model(input_ids=input_ids, labels=input_ids).loss  # no token_type_ids
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for n, p in peft_model.named_parameters() if "lora_B" in n)
