"""The baseline of scripts/bench_step.py: GRPO with plain TRL, no layer of gemma-grpo in between.

This is what a TRL user would write by hand: load the model and tokenizer with transformers, hand them,
the dataset, the reward functions, a GRPOConfig and a LoraConfig to `trl.GRPOTrainer`, call `train()`.
No callbacks, guards, metrics file, evaluation or TRL patches of ours. bench_step.py passes in the same
inputs our trainer gets (model directory, dataset rows, reward functions, GRPOConfig, LoraConfig, chat
template and stop tokens), so both runs do the same work and sample the same completions.
"""


def build_plain_trainer(model_dir: str, dtype, attn_implementation: str, chat_template: str, eos_tokens: list[str],
                        train_dataset, reward_funcs, args, lora_config):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation=attn_implementation)
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids(t) for t in eos_tokens]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=lora_config,
    )
