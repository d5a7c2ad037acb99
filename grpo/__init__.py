"""gemma-grpo: GRPO and SFT for Gemma models, a thin layer over TRL, transformers, peft and Hydra."""
