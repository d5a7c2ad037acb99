"""Every place gemma-grpo replaces a third-party library's internals, in one module.

| patch | replaces | applied when | why |
|---|---|---|---|
| `score_only_completion_tokens_on_cpu` | `trl.trainer.utils._use_triton` | training on CPU | TRL scores every prompt position off-GPU |
| `lean_logprob_head_on_cpu` | `trl.kernels.chunked_logprob._forward_tile`, `_backward_tile` | `batch.cpu_lean_logprob_head`, training on CPU | TRL's torch fallback allocates a tile per operation |
| `configure_colocated_engine` | `trl.generation.vllm_generation.LLM` | `rollout.vllm_dtype` set (vLLM on CPU), or a multimodal model with colocated vLLM | TRL builds `LLM(...)` without a dtype, and builds the vision and audio towers of multimodal Gemma |
| `sync_colocated_by_reload` | `VLLMGeneration.sync_weights` | `rollout.weight_sync=reload` (vLLM on CPU) | vLLM's CPU backend packs weights TRL cannot reach |
| `sync_merged_copy` | `VLLMGeneration._iter_named_params` | vLLM rollouts | in-place merge/unmerge drifts in bf16 (trl #6688) |
| `guard_wandb_log` | `wandb.log` | a W&B run is started | a W&B outage mid-run must not stop training |
| `tokenizer_read_once` | `TokenizersBackend.convert_to_native_format` | inside `grpo.models.load_tokenizer` only | transformers reads tokenizer.json, then deep-copies what it read (2 of a load's 4 s) |

Subclasses of TRL's GRPOTrainer override some of its methods too (grpo/dynamic_sampling.py,
grpo/shared_prompt_forward.py); they are chosen by the config (`grpo.train.trainer_class`).

Each patch checks that the installed library is a version it was written and tested against; on any
other version it warns and leaves the library alone. A patch is applied by the run that needs it and
undone when that run ends (`patched_for_run`), so sweep trials run in one process never inherit
another trial's patches (tests/test_patches.py); `tokenizer_read_once` lasts one tokenizer load.
"""

import functools
import importlib
import logging
import os
from contextlib import contextmanager, nullcontext

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

log = logging.getLogger(__name__)

# The versions each patched library was read and tested at.
TESTED = {"trl": SpecifierSet("==1.16.0"), "wandb": SpecifierSet(">=0.21,<0.32"),
          "transformers": SpecifierSet("==5.17.*")}

_applied: list[tuple[object, str, object]] = []  # (owner, attribute, original), in application order


def supported(library: str, patch: str) -> bool:
    """Is the installed `library` one `patch` was written for? Warns (once per call) when it is not."""
    installed = getattr(importlib.import_module(library), "__version__", "unknown")
    try:
        ok = Version(installed) in TESTED[library]
    except InvalidVersion:
        ok = False
    if not ok:
        log.warning("%s %s is outside %s, the versions the patch %s was written for: not applied",
                    library, installed, TESTED[library], patch)
    return ok


def _replace(owner, attribute: str, replacement) -> None:
    replacement._gemma_grpo_patch = True
    _applied.append((owner, attribute, getattr(owner, attribute)))
    setattr(owner, attribute, replacement)


def _is_ours(value) -> bool:
    return getattr(value, "_gemma_grpo_patch", False)


def undo_all() -> None:
    """Restore every replaced attribute, newest first."""
    while _applied:
        owner, attribute, original = _applied.pop()
        setattr(owner, attribute, original)


def undo(owner, attribute: str) -> bool:
    """Restore one replaced attribute (scripts/bench_step.py measures a run without one patch)."""
    for i in range(len(_applied) - 1, -1, -1):
        if _applied[i][0] is owner and _applied[i][1] == attribute:
            first = next(j for j, entry in enumerate(_applied) if entry[0] is owner and entry[1] == attribute)
            setattr(owner, attribute, _applied[first][2])
            del _applied[first : i + 1]
            return True
    return False


@contextmanager
def patched_for_run():
    """Patches applied inside this block are undone when it ends, however it ends."""
    try:
        yield
    finally:
        undo_all()


# -- TRL: log-probabilities on CPU ------------------------------------------------------------------
def score_only_completion_tokens_on_cpu() -> bool:
    """Score only completion positions on CPU, as TRL already does on CUDA and XPU.

    TRL 1.16 computes per-token log-probabilities through a fused, chunked LM-head kernel. On devices
    without Triton (CPU among them) it scores every position, prompt included, so that Neuron does not
    recompile for each new number of valid tokens (trl/trainer/utils.py, `compact = _use_triton(...)`).
    On CPU that multiplies the cost of the 262k-vocabulary projection, forward and backward, by
    (prompt + completion) / completion: about 25x for GSM8K prompts with a worked example and 8-token
    completions. The log-probabilities are the same (tests/test_trl_patches.py).
    """
    import trl.trainer.utils as trl_utils

    if _is_ours(trl_utils._use_triton):
        return True
    if not supported("trl", "score_only_completion_tokens_on_cpu"):
        return False
    original = trl_utils._use_triton

    def use_compact_scoring(device) -> bool:
        return device.type == "cpu" or original(device)

    # Only `compact` reads this name in trl.trainer.utils; the kernel picks Triton from its own module.
    _replace(trl_utils, "_use_triton", use_compact_scoring)
    log.debug("TRL log-prob scoring: completion positions only on CPU")
    return True


def lean_logprob_head_on_cpu() -> bool:
    """Fold the tiles of TRL's fused log-prob head in place where Triton is absent (CPU).

    TRL 1.16's torch fallback for its Triton tile kernels (trl/kernels/chunked_logprob.py, `_forward_tile`,
    `_backward_tile`) allocates a tile-sized tensor per operation; grpo/lean_logprob_tiles.py computes the
    same statistics and gradients in place (tests/test_lean_logprob_tiles.py). Triton devices keep
    their kernels: TRL picks those before it looks up these names.
    """
    from trl.kernels import chunked_logprob

    from grpo.lean_logprob_tiles import lean_backward_tile, lean_forward_tile

    if _is_ours(chunked_logprob._forward_tile):
        return True
    if not supported("trl", "lean_logprob_head_on_cpu"):
        return False
    _replace(chunked_logprob, "_forward_tile", functools.partial(lean_forward_tile, chunked_logprob._forward_tile))
    _replace(chunked_logprob, "_backward_tile", functools.partial(lean_backward_tile, chunked_logprob._backward_tile))
    log.debug("TRL log-prob head: tiles folded in place on CPU")
    return True


def lean_logprob_head_patched() -> bool:
    from trl.kernels import chunked_logprob

    return _is_ours(chunked_logprob._forward_tile)


def cpu_scoring_patched() -> bool:
    import trl.trainer.utils as trl_utils

    return _is_ours(trl_utils._use_triton)


def undo_cpu_scoring() -> bool:
    import trl.trainer.utils as trl_utils

    return undo(trl_utils, "_use_triton")


# -- TRL's colocated vLLM engine --------------------------------------------------------------------
def configure_colocated_engine(**engine_args) -> bool:
    """Add `engine_args` to the `LLM(...)` call of TRL's colocated vLLM engine, which GRPOConfig has no
    fields for (grpo/vllm_env.py `prepare_vllm` chooses them): `dtype` (TRL 1.16 passes none, and on CPU
    vLLM's `auto` turns a float32 checkpoint into bfloat16 while the policy trains in float32), and
    `language_model_only` (multimodal Gemma: text prompts never reach the vision and audio towers)."""
    from trl.generation import vllm_generation

    if not supported("trl", "configure_colocated_engine"):
        return False
    llm = vllm_generation.LLM
    if isinstance(llm, functools.partial):  # configured before: keep what was set, the new values win
        engine_args = {**llm.keywords, **engine_args}
        llm = llm.func
    _replace(vllm_generation, "LLM", functools.partial(llm, **engine_args))
    log.info("vLLM: colocated engine %s", " ".join(f"{k}={v}" for k, v in engine_args.items()))
    return True


def sync_colocated_by_reload() -> bool:
    """Push the policy's weights with vLLM's own `reload_weights` in colocate mode (server mode as TRL does).

    After loading, vLLM's CPU backend packs every linear weight into a oneDNN (or SGL) kernel handle and
    drops the original tensor, so TRL 1.16's per-tensor sync fails with `'Parameter' object has no
    attribute 'weight_loader'`. `reload_weights` restores the layers, loads, and packs again. Same
    weights as TRL sends, same prefix-cache reset after.
    """
    from trl.generation.vllm_generation import VLLMGeneration

    if _is_ours(VLLMGeneration.sync_weights):
        return True
    if not supported("trl", "sync_colocated_by_reload"):
        return False
    trl_sync = VLLMGeneration.sync_weights

    @functools.wraps(trl_sync)
    def sync_weights(self):
        if self.mode != "colocate":
            return trl_sync(self)
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
        ours = _is_ours(type(self)._iter_named_params)
        weights = self._iter_named_params(all_weights=True) if ours else self._iter_named_params()
        runner.reload_weights(weights_iterator=weights)
        self.llm.reset_prefix_cache()

    _replace(VLLMGeneration, "sync_weights", sync_weights)
    log.info("vLLM: colocated weight sync by reload_weights")
    return True


def sync_merged_copy() -> bool:
    """Make TRL's weight sync send out-of-place merged weights for LoRA models (colocate and server).

    TRL 1.16 merges LoRA into the base weights in place and unmerges after each sync, which rounds twice
    per sync in bf16 and drifts (trl #6688: 17% of base weights changed after 100 syncs). Ours computes
    W + scale * B @ A out of place (grpo/vllm_env.py, `merged_named_weights`) and sends only the weights
    LoRA changes (not frozen vision/audio towers, trl #5269). Only the plain-PEFT branch is replaced;
    FSDP, DoRA and non-PEFT models keep TRL's path. Returns whether the patch is in place.
    """
    from trl.generation.vllm_generation import VLLMGeneration

    from grpo.vllm_env import merged_named_weights, uses_dora

    if _is_ours(VLLMGeneration._iter_named_params):
        return True
    if not supported("trl", "sync_merged_copy"):
        log.warning("weight sync left to TRL (merge/unmerge in place, which drifts in bf16, trl #6688)")
        return False
    trl_iter = VLLMGeneration._iter_named_params

    @functools.wraps(trl_iter)
    def _iter_named_params(self, all_weights: bool = False):
        """`all_weights`: every weight, not only those LoRA changes (vLLM's reload_weights on CPU
        re-packs whole layers from what it is given)."""
        from accelerate.utils import is_peft_model

        model = self.model
        if not is_peft_model(model) or self._dist.is_fsdp or uses_dora(model):
            yield from trl_iter(self)
            return
        gather = getattr(self._dist, "gather_params", None)
        with gather(list(model.parameters())) if gather else nullcontext():
            fix = functools.partial(self._fix_param_name_to_vllm, extra_prefixes=["modules_to_save.default."])
            yield from merged_named_weights(model, fix, only_changed=not all_weights)

    _iter_named_params.trl_original = trl_iter
    _replace(VLLMGeneration, "_iter_named_params", _iter_named_params)
    log.info("vLLM weight sync: LoRA merged out of place (base weights untouched)")
    return True


# -- transformers: loading a tokenizer --------------------------------------------------------------
@contextmanager
def tokenizer_read_once():
    """Inside this block, a tokenizer.json tokenizer is read once instead of read and then deep-copied.

    transformers 5.17's `TokenizersBackend.convert_to_native_format` reads tokenizer.json into a Rust
    tokenizer, and `__init__` deep-copies that fresh object (a JSON round trip of Gemma's 262k-token
    vocabulary) before the original is thrown away: 2.2 of the ~4.3 s a load takes on our CPUs. Handed the
    file name instead, `__init__` reads the file itself, once (its own `tokenizer_file` branch): the same
    tokenizer (tests/test_patches.py). Other classes, and remote code, keep transformers' path.
    """
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    if not supported("transformers", "tokenizer_read_once"):
        yield
        return
    original = TokenizersBackend.__dict__["convert_to_native_format"]

    def convert_to_native_format(cls, trust_remote_code=False, **kwargs):
        file = kwargs.get("tokenizer_file")
        plain = cls is TokenizersBackend or "__init__" not in cls.__dict__
        if plain and not trust_remote_code and file is not None and os.path.isfile(file):
            return dict(kwargs)
        return original.__func__(cls, trust_remote_code=trust_remote_code, **kwargs)

    convert_to_native_format._gemma_grpo_patch = True
    TokenizersBackend.convert_to_native_format = classmethod(convert_to_native_format)
    try:
        yield
    finally:
        TokenizersBackend.convert_to_native_format = original


# -- W&B --------------------------------------------------------------------------------------------
def guard_wandb_log(wandb) -> bool:
    """Make `wandb.log` (what transformers' WandbCallback calls) survive a failing W&B mid-run.

    On the first error the run is re-opened offline under the same id (synced later with `wandb sync`)
    and the row logged again; if that fails too, W&B logging is switched off. Training never stops for
    it: metrics.jsonl has every row either way.
    """
    if not supported("wandb", "guard_wandb_log"):
        return False

    def log_or_fall_back(*args, **kwargs):
        try:
            return wandb.run.log(*args, **kwargs)
        except Exception as error:  # W&B trouble must never stop training
            log.warning("W&B log failed mid-run (%s); continuing offline", error)
        try:
            run = wandb.run
            resume = dict(id=run.id, project=run.project, dir=run.settings.root_dir)
            try:
                wandb.finish()
            except Exception:
                pass
            wandb.init(mode="offline", resume="allow", **resume)
            guard_wandb_log(wandb)  # wandb.init rebinds wandb.log to the new run
            return wandb.run.log(*args, **kwargs)
        except Exception as error:
            log.warning("W&B offline fallback failed too (%s); W&B off, metrics.jsonl has every step", error)
            _replace(wandb, "log", lambda *args, **kwargs: None)
            return None

    _replace(wandb, "log", log_or_fall_back)
    return True


# -- measurement (scripts/bench_step.py, scripts/gpu_check.py) ---------------------------------------
def record_trl_timers(add) -> bool:
    """Also hand each of TRL's profiling timers to `add(name, seconds)`: TRL 1.16 sends them only to
    W&B, MLflow or Trackio (trl/extras/profiling.py)."""
    from trl.extras.profiling import ProfilingContext

    if not supported("trl", "record_trl_timers"):
        return False
    original = ProfilingContext._log_metrics

    def log_metrics(self, duration: float) -> None:
        add(self.name.split(".", 1)[-1], duration)  # "GRPOTrainer.transformers.generate" -> "transformers.generate"
        original(self, duration)

    _replace(ProfilingContext, "_log_metrics", log_metrics)
    return True


def trl_log_prob_pass(trainer_class=None):
    """TRL's own `_get_per_token_logps_and_entropies` of `trainer_class` (default: GRPOTrainer), without its
    profiling timer: grpo/shared_prompt_forward.py falls back on it inside a timer of its own, and
    scripts/bench_training_pass.py times it."""
    if trainer_class is None:
        from trl import GRPOTrainer as trainer_class
    method = trainer_class._get_per_token_logps_and_entropies
    return getattr(method, "__wrapped__", method)


def weight_sync_iterators():
    """(TRL's own `_iter_named_params`, ours or None when not installed), to compare the two syncs."""
    from trl.generation.vllm_generation import VLLMGeneration

    current = VLLMGeneration._iter_named_params
    return getattr(current, "trl_original", current), (current if _is_ours(current) else None)


def vllm_name_fixer():
    """TRL's mapping of a model's parameter names to vLLM's, callable without a VLLMGeneration."""
    from trl.generation.vllm_generation import VLLMGeneration

    return functools.partial(VLLMGeneration._fix_param_name_to_vllm, None)
