"""gemma-grpo: GRPO and SFT for Gemma models, a thin layer over TRL, transformers, peft and Hydra.

Importing this package changes nothing in the process; each command sets what it needs when it starts
(grpo/entry.py).
"""
