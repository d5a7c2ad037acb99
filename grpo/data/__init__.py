"""Datasets shipped with gemma-grpo (see each folder's README and LICENSE)."""
