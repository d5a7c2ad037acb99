"""`python -m eval.run run=<run dir>`: evaluate a finished run as it was trained.

The model, task, LoRA settings, rollout backend, seed and evaluation settings come from the run's
resolved_config.yaml and the adapter from its adapter/ directory; what the user typed on the command
line still wins for plain values (`eval.limit=50`, `eval.domains=[pubmedqa]`, `adapter=<dir>`). A different
`model=` than the run's is refused, naming both, since its adapter cannot load on that base.
"""

from omegaconf import DictConfig, OmegaConf, open_dict

from grpo.run_dir import load_run
from grpo.validate import ConfigError

# taken from the run; everything else (output_dir, hydra) belongs to this evaluation
RUN_KEYS = ("model", "task", "peft", "rollout", "seed", "eval")
# config groups: chosen by name on the command line, not re-applied as values
GROUPS = ("model", "task", "peft", "rollout", "rewards", "logger", "sft", "profile", "sweep", "experiment")


def config_from_run(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """`cfg` with the run's settings in place, then the command line's value overrides re-applied."""
    run = load_run(cfg.run)
    explicit = _parse(overrides)
    model_choice = explicit.get("model")
    if model_choice is not None and model_choice != run.cfg.model.name:
        raise ConfigError(
            f"run={cfg.run} trained {run.cfg.model.name} ({run.cfg.model.get('hub_id') or run.cfg.model.source}); "
            f"its adapter cannot be evaluated on model={model_choice}. Drop model= to evaluate the run's own model"
        )
    limit = cfg.eval.limit
    cfg = cfg.copy()
    with open_dict(cfg):
        for key in RUN_KEYS:
            if key == "task" and "task" in explicit:
                continue  # +task=<other> evaluates the run's model on another task
            if key in run.cfg:
                cfg[key] = run.cfg[key]
        if not cfg.eval.limit:
            cfg.eval.limit = limit  # the run evaluated nothing during training (eval.limit=0): this CLI's default
        if "adapter" not in explicit:
            cfg.adapter = str(run.weights)
        values = [f"{k}={v}" for k, v in explicit.items() if k.split(".")[0] not in GROUPS + ("run", "adapter")]
        values += [f"{k}={v}" for k, v in explicit.items()
                   if "." in k and k.split(".")[0] in ("model", "task", "peft", "rollout")]
        if values:
            cfg.merge_with(OmegaConf.from_dotlist(values))
    return cfg


def _parse(overrides: list[str]) -> dict[str, str]:
    """key -> value of `key=value` overrides (leading + / ++ dropped; deletions ~key ignored)."""
    parsed = {}
    for item in overrides:
        if item.startswith("~") or "=" not in item:
            continue
        key, value = item.lstrip("+").split("=", 1)
        if not key.startswith("hydra."):
            parsed[key] = value
    return parsed


def command_line_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
