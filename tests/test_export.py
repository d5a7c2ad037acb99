"""Exports are the trained model: merged and GGUF (f16, q8_0) exports, loaded back, continue prompts greedily
as the unmerged adapter does (grpo/export_check.py); bad input is refused early and leaves nothing behind.

The run is a stand-in on the tiny Gemma 3: its resolved config as training writes it, and a LoRA adapter on
every linear layer whose B matrices are random (not zero, as a fresh adapter's are), so the adapter changes
the output and a skipped or wrong merge fails the comparison. One test takes a run that really trained
(conftest.pipeline_run: SFT then GRPO, shared with tests/test_sft_cli.py). The embedded 270M after real
training: scripts/export_agreement.py --run <run dir>.
"""

import json

import pytest
import torch

from conftest import run_cli
from compose import compose_train

NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    from omegaconf import OmegaConf, open_dict
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from grpo.models import load_tokenizer
    from grpo.run_dir import record_base_model

    run = tmp_path_factory.mktemp("run")
    cfg = compose_train("+task=gsm8k", "model=tiny", "logger=none")
    with open_dict(cfg):
        cfg.output_dir = str(run)
    OmegaConf.save(cfg, run / "resolved_config.yaml", resolve=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # LoRA A is initialised from the global generator: the same adapter every time
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(cfg.model.lora_target_modules)))
    from grpo.export_check import randomize_lora_b

    randomize_lora_b(model, 0.5)
    model.save_pretrained(run / "adapter")
    load_tokenizer(cfg.model).save_pretrained(run / "adapter")
    record_base_model(run / "adapter", cfg.model)
    (run / "README.md").write_text("---\nbase_model: tiny\nlibrary_name: peft\ntags: [gemma, grpo, trl, gemma-grpo]\n"
                                   "---\n\n# gsm8k GRPO fine-tune of tiny\n")
    (run / "reward.png").write_bytes(b"\x89PNG stand-in")
    return run


@pytest.fixture(scope="module")
def adapter_reference(tiny_run):
    """The unmerged adapter's greedy continuations, and the prompt ids they continue."""
    from omegaconf import OmegaConf

    from grpo.export_check import greedy_continuations, prompt_ids
    from grpo.models import load_model_and_tokenizer

    cfg = OmegaConf.load(tiny_run / "resolved_config.yaml")
    model, tokenizer = load_model_and_tokenizer(cfg.model, adapter=str(tiny_run / "adapter"))
    ids = prompt_ids(tokenizer)
    reference = greedy_continuations(model, ids, NEW_TOKENS)
    with model.disable_adapter():
        base = greedy_continuations(model, ids, NEW_TOKENS)
    assert reference != base, "the stand-in adapter must change the output, or the comparisons prove nothing"
    return ids, reference


@pytest.fixture(scope="module")
def gguf_exports(tiny_run):
    """Both GGUF types of the stand-in run, exported once for the tests below."""
    from grpo.export import export_gguf, gguf_file_name
    from grpo.run_dir import load_run

    run = load_run(tiny_run)
    return {t: export_gguf(run, tiny_run / "export" / gguf_file_name(run, t), t) for t in ("f16", "q8_0")}


@pytest.fixture(scope="module")
def gguf_parsed_once():
    """gguf's GGUFReader takes ~15 s over a 262k vocabulary and transformers' GGUF loader parses a file twice
    (config, then weights): within this module each file is parsed once, the readers being read-only."""
    import os

    import gguf

    original, readers = gguf.GGUFReader, {}

    def parsed_once(path, mode="r"):
        if mode != "r":
            return original(path, mode)
        key = (os.fspath(path), os.stat(path).st_mtime_ns)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gguf, "GGUFReader", parsed_once)
        yield parsed_once


def export_cfg(run, *overrides):
    return compose_train(f"run={run}", *overrides, config_name="export")


# ---- merged ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_merged_export_continues_prompts_as_the_adapter(tiny_run, adapter_reference):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo.export_check import greedy_continuations, prompt_ids

    result = run_cli("grpo.export", f"run={tiny_run}", "format=merged")
    assert result.returncode == 0, result.output[-3000:]
    merged_dir = tiny_run / "export" / "merged"
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in merged_dir.iterdir()
    }
    assert not any(p.name.startswith(".") for p in (tiny_run / "export").iterdir()), "a temporary dir was left"
    model = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert model.dtype == torch.float32  # the run trained in float32 (trainer.bf16=false)
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids, reference = adapter_reference
    assert prompt_ids(tokenizer) == ids  # same tokenizer and chat template
    assert greedy_continuations(model, ids, NEW_TOKENS) == reference


def test_merge_is_done_in_float32_and_cast_to_the_asked_dtype(tiny_run):
    from grpo.export import merged_model
    from grpo.run_dir import load_run

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = load_run(tiny_run)
    model, _ = merged_model(run, torch.bfloat16)
    assert model.dtype == torch.bfloat16
    assert not any("lora" in name for name, _ in model.named_parameters())
    # the merged bf16 weight is the float32 sum W + scale * B @ A, rounded once
    base = AutoModelForCausalLM.from_pretrained(_tiny_path(run), dtype=torch.float32)
    lora = PeftModel.from_pretrained(base, run.weights).base_model.model.model.layers[0].self_attn.q_proj
    delta = lora.scaling["default"] * lora.lora_B["default"].weight @ lora.lora_A["default"].weight
    expected = (lora.base_layer.weight + delta).to(torch.bfloat16)
    assert torch.equal(model.model.layers[0].self_attn.q_proj.weight, expected)


def _tiny_path(run):
    from grpo.models import resolve_model_path

    return resolve_model_path(run.cfg.model)


# ---- GGUF ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gguf_exports_continue_prompts_as_the_adapter(gguf_exports, adapter_reference, gguf_parsed_once, capsys):
    """f16: the same greedy tokens. q8_0: at least 95% of the adapter's tokens predicted, each given the
    adapter's prefix (teacher-forced). The free-running figure is printed too: on this random tiny model the
    262k logits lie close together, so one flipped argmax derails the rest of a continuation (measured here:
    teacher-forced 97.9%, free-running 95.8% at 12 tokens; the 270M: scripts/export_agreement.py)."""
    from transformers import AutoModelForCausalLM

    from grpo.export_check import greedy_continuations, teacher_forced_agreement, token_agreement

    ids, reference = adapter_reference
    figures = {}
    for gguf_type, path in gguf_exports.items():
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        figures[gguf_type] = {
            "free_running": token_agreement(reference, greedy_continuations(model, ids, NEW_TOKENS)),
            "teacher_forced": teacher_forced_agreement(model, ids, reference),
        }
    with capsys.disabled():
        print(f"\nGGUF greedy token agreement with the adapter ({len(ids)} prompts x {NEW_TOKENS} tokens): {figures}")
    assert figures["f16"]["free_running"] == 1.0
    assert figures["q8_0"]["teacher_forced"] >= 0.95


@pytest.mark.slow
def test_gguf_carries_the_tokenizer_chat_template_and_llama_cpp_gemma3_keys(tiny_run, gguf_exports,
                                                                           gguf_parsed_once):
    from grpo.embedded import _gguf_path
    from grpo.gguf_metadata import read_gguf_metadata
    from grpo.gguf_tokenizer import build_gemma_tokenizer
    from grpo.models import load_tokenizer
    from grpo.run_dir import load_run

    run = load_run(tiny_run)
    path = gguf_exports["q8_0"]
    reader = gguf_parsed_once(path)
    ours = read_gguf_metadata(path)
    # our header reader (exports and the tokenizer conversion use it) reads what gguf's GGUFReader reads
    assert ours == {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    reference = read_gguf_metadata(_gguf_path())
    # every key the llama.cpp-made Gemma 3 file has (architecture, hyperparameters, tokenizer) is there
    missing = {k for k in reference if not k.startswith("general.")} - set(ours)
    assert not missing, missing
    assert ours["general.architecture"] == "gemma3"
    assert {t.name for t in reader.tensors} >= {"token_embd.weight", "output_norm.weight", "blk.1.ffn_down.weight",
                                                "blk.0.attn_q_norm.weight", "blk.0.post_ffw_norm.weight"}
    assert ours["gemma3.block_count"] == 2 and ours["gemma3.embedding_length"] == 32
    tokenizer = load_tokenizer(run.cfg.model, str(run.weights))
    assert ours["tokenizer.chat_template"] == tokenizer.chat_template
    for key, token_id in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id),
                          ("padding", tokenizer.pad_token_id), ("eot", tokenizer.convert_tokens_to_ids("<end_of_turn>"))):
        assert ours[f"tokenizer.ggml.{key}_token_id"] == token_id
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        assert ours[key] == reference[key], key  # the whole vocabulary
    # the tokenizer rebuilt from the export encodes text as the run's own does
    rebuilt = build_gemma_tokenizer(path, ours["tokenizer.chat_template"])
    for text in ("Hello world", "<start_of_turn>user\nWhat is 12 * 7?<end_of_turn>\n", "  spaces\n\n\nand 3.14"):
        assert rebuilt(text)["input_ids"] == tokenizer(text)["input_ids"]


@pytest.mark.slow
def test_merged_export_of_a_trained_run_is_its_adapter(pipeline_run, tmp_path):
    """A run as training writes it (SFT then GRPO on the tiny model, conftest.pipeline_run), not a stand-in:
    its adapter changes the base's greedy tokens, and the merged export gives exactly the adapter's. GGUF is
    left to the stand-in tests above (transformers' GGUF loader parses a file's 262k tokens in ~15 s);
    the trained 270M's f16 and q8_0: scripts/export_agreement.py --run <run dir> (README, Use your model)."""
    from transformers import AutoModelForCausalLM

    from grpo.export import export_merged
    from grpo.export_check import greedy_continuations, prompt_ids
    from grpo.models import load_model_and_tokenizer
    from grpo.run_dir import load_run

    run = load_run(pipeline_run[0])
    assert run.dir.name == "grpo" and run.is_adapter  # the pipeline's final stage
    model, tokenizer = load_model_and_tokenizer(run.cfg.model, adapter=str(run.weights))
    ids = prompt_ids(tokenizer)
    reference = greedy_continuations(model, ids, NEW_TOKENS)
    with model.disable_adapter():
        assert greedy_continuations(model, ids, NEW_TOKENS) != reference, "training left the greedy output as is"
    merged = AutoModelForCausalLM.from_pretrained(export_merged(run, tmp_path / "merged"))
    assert greedy_continuations(merged, ids, NEW_TOKENS) == reference


def test_norm_weights_are_stored_as_one_plus_w_as_llama_cpp_expects(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from grpo.gguf_writer import gemma3_tensors

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tensors = {name: (array, raw) for name, array, raw in gemma3_tensors(model, "q8_0")}
    hf_norm = model.model.layers[0].input_layernorm.weight.detach().numpy()
    assert (tensors["blk.0.attn_norm.weight"][0] == hf_norm + 1).all()
    assert tensors["blk.0.attn_norm.weight"][1] is None  # norms stay float32
    assert tensors["blk.0.attn_q.weight"][1].name == "Q8_0"
    assert "output.weight" not in tensors  # tied to token_embd, as llama.cpp reads it


# ---- bad input ---------------------------------------------------------------------------------------------


def test_unknown_gguf_type_lists_the_valid_ones(tiny_run):
    from grpo.export import run_export
    from grpo.validate import ConfigError

    with pytest.raises(ConfigError, match=r"gguf.type=q4_k: unknown; valid types: f16, q8_0"):
        run_export(export_cfg(tiny_run, "format=gguf", "gguf.type=q4_k"))


def test_export_without_run_says_what_to_give():
    from grpo.export import run_export
    from grpo.validate import ConfigError

    with pytest.raises(ConfigError, match=r"run=<run dir> is required"):
        run_export(compose_train(config_name="export"))


def test_cli_refuses_a_run_dir_without_adapter(tmp_path):
    (tmp_path / "resolved_config.yaml").write_text("model: {name: tiny}\n")
    result = run_cli("grpo.export", f"run={tmp_path}", "format=gguf")
    assert result.returncode == 2
    assert "no trained model in" in result.output and "Traceback" not in result.output


def test_interrupted_gguf_export_leaves_nothing(tiny_run, monkeypatch):
    import grpo.export as export

    def fail_halfway(model, tokenizer, path, *args, **kwargs):
        path.write_bytes(b"GGUF half")
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_gguf", fail_halfway)
    out = tiny_run / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        export.run_export(export_cfg(tiny_run, "format=gguf", f"output_dir={out}"))
    assert list(out.iterdir()) == []


def test_interrupted_merged_export_keeps_the_previous_one(tiny_run, monkeypatch):
    from transformers import PreTrainedModel

    import grpo.export as export

    out = tiny_run / "interrupted-merged"
    (out / "merged").mkdir(parents=True)
    (out / "merged" / "config.json").write_text("{}")

    def fail_halfway(self, directory, *args, **kwargs):
        (directory / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", fail_halfway)
    with pytest.raises(KeyboardInterrupt):
        export.run_export(export_cfg(tiny_run, "format=merged", f"output_dir={out}"))
    assert [p.name for p in out.iterdir()] == ["merged"]
    assert [p.name for p in (out / "merged").iterdir()] == ["config.json"]


# ---- the right base ------------------------------------------------------------------------------------------


def test_adapter_names_the_hub_id_not_the_local_cache(tmp_path):
    """save_final (end of training) records the hub id, so PeftModel.from_pretrained works elsewhere."""
    from omegaconf import OmegaConf

    from grpo.train import save_final

    model_cfg = OmegaConf.load("conf/model/gemma3-270m.yaml")

    class Trainer:  # the two calls save_final makes on TRL's trainer
        class processing_class:
            @staticmethod
            def save_pretrained(directory):
                pass

        @staticmethod
        def save_model(directory):
            (tmp_path / "adapter").mkdir()
            (tmp_path / "adapter" / "adapter_config.json").write_text(
                json.dumps({"base_model_name_or_path": "/root/.cache/gemma-grpo/gemma3-270m-embedded-v3"}))

    save_final(Trainer, tmp_path, model_cfg)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "google/gemma-3-270m"


def test_card_says_when_the_weights_were_the_embedded_copy():
    from eval.card import render_card

    embedded = render_card(compose_train("+task=gsm8k", "logger=none"), [], [], [], [], None)
    hub = render_card(compose_train("+task=gsm8k", "model=gemma3-1b-it", "logger=none"), [], [], [], [], None)
    assert "embedded copy" in embedded and "Q4_K_M" in embedded and "dequantized" in embedded
    assert "embedded copy" not in hub


# ---- llama.cpp (optional) ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(__import__("importlib.util").util.find_spec("llama_cpp") is None,
                    reason="needs llama-cpp-python (optional; not installed by the project)")
def test_llama_cpp_reads_the_gguf_as_the_adapter(tmp_path, tiny_model_dir, capsys):
    """llama.cpp itself loads the export and predicts the adapter's tokens. llama.cpp scales attention by
    1/sqrt(head_dim), so the tiny model is copied with query_pre_attn_scalar = head_dim, as real Gemma 3
    checkpoints have it. Teacher-forced: llama.cpp's f16 kernels round activations too."""
    import shutil

    import numpy as np
    from llama_cpp import Llama
    from omegaconf import OmegaConf, open_dict
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from grpo.export import export_gguf
    from grpo.export_check import greedy_continuations, prompt_ids
    from grpo.models import load_tokenizer
    from grpo.run_dir import Run

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "query_pre_attn_scalar": config["head_dim"]}))
    cfg = compose_train("+task=gsm8k", "model=tiny", "logger=none")
    with open_dict(cfg):
        cfg.model.source, cfg.model.hub_id = "hub", str(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = get_peft_model(model, LoraConfig(r=8, target_modules=list(cfg.model.lora_target_modules)))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    model.save_pretrained(tmp_path / "adapter")
    tokenizer = load_tokenizer(cfg.model)
    tokenizer.save_pretrained(tmp_path / "adapter")
    OmegaConf.save(cfg, tmp_path / "resolved_config.yaml", resolve=True)
    ids = prompt_ids(tokenizer)
    reference = greedy_continuations(model, ids, NEW_TOKENS)
    figures = {}
    for gguf_type in ("f16", "q8_0"):
        path = export_gguf(Run(tmp_path, cfg, tmp_path / "adapter"), tmp_path / f"m-{gguf_type}.gguf", gguf_type)
        llm = Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False)
        hits = 0
        for prompt, continuation in zip(ids, reference):
            llm.reset()
            llm.eval(prompt + continuation)
            scores = np.asarray(llm.scores[: llm.n_tokens])
            predicted = scores[len(prompt) - 1 : len(prompt) - 1 + len(continuation)].argmax(-1)
            hits += int((predicted == np.asarray(continuation)).sum())
        figures[gguf_type] = hits / sum(len(c) for c in reference)
    with capsys.disabled():
        print(f"\nllama.cpp teacher-forced agreement with the adapter: {figures}")
    assert min(figures.values()) >= 0.95
