"""Evaluate a model (optionally with a trained adapter): `python -m eval.run +task=gsm8k model=<name>`.

Same Hydra tree as training (conf/eval.yaml includes conf/train.yaml), so a model, task or profile means
the same thing in both. Order: load every selected evaluation's data (fails fast, before a model is
loaded), load the model, score each, write eval_results.json and samples.jsonl, print a summary.
"""

import json
import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from grpo.entry import CONFIG_DIR, prepare_process
from grpo.errors import user_errors
from eval.suite import selected_evaluators
from tasks import ConfigError

log = logging.getLogger("eval.run")



def run_eval(cfg: DictConfig, generator=None) -> dict:
    """Evaluate as configured (`run=<run dir>`: as that run was trained, grpo/eval_from_run.py); return the flat
    results written to eval_results.json.

    `generator`: a stand-in for tests; by default the model named by the config is loaded.
    """
    started = time.time()
    if cfg.get("run"):
        from grpo.eval_from_run import command_line_overrides, config_from_run

        cfg = config_from_run(cfg, command_line_overrides())
    if cfg.get("adapter"):
        from grpo.run_dir import check_adapter_base

        check_adapter_base(cfg.adapter, cfg.model)  # before a shape-mismatch traceback from peft
    limit = cfg.eval.limit
    if limit is not None and limit <= 0:
        raise ConfigError("eval.limit must be a positive number of questions, or null for the whole test set")
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    from grpo.validate import check_eval

    check_eval(cfg, limit_may_be_null=True)  # sampling settings too, before anything loads
    prepared = [(evaluator, evaluator.load(cfg, limit)) for evaluator in selected_evaluators(cfg)]
    if generator is None:
        from grpo.generators import build_generator
        from grpo.hub_access import check_model_access
        from grpo.validate import check_context_length

        check_model_access(cfg.model)
        check_context_length(cfg, ("eval.max_new_tokens",))

        generator = build_generator(cfg, cfg.get("adapter"))
    results = {"model": cfg.model.name, "adapter": cfg.get("adapter"), "limit": limit}
    with (output_dir / "samples.jsonl").open("w") as samples_file:
        for evaluator, rows in prepared:
            begun = time.time()
            result = evaluator.score(rows, generator, cfg)
            result.metrics["wall_time_s"] = round(time.time() - begun, 2)
            results.update(result.prefixed())
            for sample in result.samples:
                samples_file.write(json.dumps(sample) + "\n")
            log.info("%s: %s", evaluator.name, _headline(result.metrics))
    results["wall_time_s"] = round(time.time() - started, 2)
    (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _headline(metrics: dict) -> str:
    return "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def print_summary(results: dict, output_dir: Path) -> None:
    lines = [f"eval: {results['model']}" + (f" + {results['adapter']}" if results["adapter"] else "")]
    lines += [f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}"
              for key, value in results.items() if "/" in key]
    lines += [f"  wall time: {results['wall_time_s']:.0f} s", f"  results: {output_dir / 'eval_results.json'}"]
    print("\n".join(lines))


@hydra.main(version_base=None, config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    with user_errors("eval.run"):
        print_summary(run_eval(cfg), Path(cfg.output_dir))


if __name__ == "__main__":
    prepare_process()
    main()
