"""A finished run's directory, read back: its resolved config and its trained weights.

Export (`grpo.export`), evaluation (`eval.run run=<dir>`) and the Hub upload all start from a run dir, so
they find the model and the adapter one way and refuse a wrong one with the same message. The adapter's
base model is recorded as the hub id (not a path in a local cache) so that `PeftModel.from_pretrained`
works on another machine; `check_adapter_base` refuses an adapter trained on another base before a
shape-mismatch traceback can happen.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from grpo.validate import ConfigError

log = logging.getLogger(__name__)

RESOLVED_CONFIG = "resolved_config.yaml"
ADAPTER_DIR = "adapter"


@dataclass
class Run:
    dir: Path
    cfg: DictConfig
    # the trained weights: a LoRA adapter (adapter_config.json) or, with peft=full, a whole model
    weights: Path

    @property
    def is_adapter(self) -> bool:
        return (self.weights / "adapter_config.json").exists()


def load_run(run_dir) -> Run:
    """The run in `run_dir`; a pipeline run (SFT then GRPO) resolves to its GRPO stage."""
    path = Path(str(run_dir)).expanduser()
    if not path.is_dir():
        raise ConfigError(f"run={run_dir}: no such directory (give a run's output dir, e.g. outputs/gsm8k/<time>)")
    if not (path / RESOLVED_CONFIG).exists() and (path / "grpo" / RESOLVED_CONFIG).exists():
        path = path / "grpo"  # `sft=...` runs write sft/ and grpo/; the GRPO stage holds the final adapter
    if not (path / RESOLVED_CONFIG).exists():
        raise ConfigError(f"run={run_dir}: no {RESOLVED_CONFIG} here; is this a gemma-grpo run directory?")
    weights = path / ADAPTER_DIR
    if not ((weights / "adapter_config.json").exists() or (weights / "config.json").exists()):
        raise ConfigError(
            f"run={run_dir}: no trained model in {weights} (the run did not finish, or was stopped before "
            "saving). Finish or resume it first: `python -m grpo.train ... hydra.run.dir=<that dir>` resumes "
            "from its last checkpoint"
        )
    cfg = OmegaConf.load(path / RESOLVED_CONFIG)
    return Run(dir=path, cfg=cfg, weights=weights)


def base_model_id(model_cfg) -> str:
    """What an adapter names as its base: the hub id when the model has one, else the local path."""
    if model_cfg.get("hub_id"):
        return str(model_cfg.hub_id)
    from grpo.models import resolve_model_path

    return resolve_model_path(model_cfg)


def record_base_model(adapter_dir, model_cfg) -> None:
    """Point adapter_config.json's `base_model_name_or_path` at the hub id instead of the local cache path
    peft records (our embedded model loads from ~/.cache), so the adapter loads on any machine."""
    config_path = Path(adapter_dir) / "adapter_config.json"
    if not config_path.exists():
        return  # peft=full: a whole model, no adapter config
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_model_id(model_cfg)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def check_adapter_base(adapter_dir, model_cfg) -> None:
    """Refuse an adapter whose recorded base is another model than `model_cfg`, naming both."""
    config_path = Path(adapter_dir) / "adapter_config.json"
    if not config_path.exists():
        if (Path(adapter_dir) / "config.json").exists():
            return  # a full fine-tune: the directory is the model
        raise ConfigError(f"adapter={adapter_dir}: no adapter_config.json there (a run's adapter/ directory?)")
    recorded = json.loads(config_path.read_text()).get("base_model_name_or_path")
    if not recorded or _same_model(recorded, model_cfg):
        return
    raise ConfigError(
        f"adapter={adapter_dir} was trained on {recorded}, but the model here is {model_cfg.name} "
        f"({base_model_id(model_cfg)}); choose that base with model=<its conf/model name>, or evaluate the "
        "whole run with run=<run dir>"
    )


def _same_model(recorded: str, model_cfg) -> bool:
    from grpo.cache import cache_dir
    from grpo.models import resolve_model_path

    names = {str(model_cfg.get("hub_id") or ""), str(model_cfg.name)}
    if recorded in names:
        return True
    recorded_path = Path(recorded).expanduser()
    if recorded_path.is_absolute() and recorded_path.parent == cache_dir():
        # an adapter saved before the hub id was recorded names our cache: compare the model it holds
        if model_cfg.source == "embedded" and recorded_path.name.startswith("gemma3-270m-embedded"):
            return True
        return recorded_path == Path(resolve_model_path(model_cfg))
    if recorded_path.is_absolute() and model_cfg.source not in ("embedded", "tiny"):
        return str(recorded_path) == str(model_cfg.get("hub_id"))
    return False
