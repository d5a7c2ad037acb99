"""W&B set-up that never stops a run: online when logged in, offline otherwise, off when broken."""

import logging
import os

from grpo.patches import guard_wandb_log

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import netrc

        hosts = netrc.netrc().hosts
        return any("wandb" in host for host in hosts)
    except Exception:
        return False


def start_wandb(logger_cfg, run_name: str, output_dir: str, config: dict, resume_id: str | None = None) -> list[str]:
    """Start a W&B run and return TRL's `report_to`. Any failure falls back to offline, then to none."""
    if logger_cfg.name != "wandb":
        return []
    mode = logger_cfg.mode
    if mode == "auto":
        mode = "online" if wandb_logged_in() else "offline"
    for attempt in (mode, "offline") if mode == "online" else (mode,):
        try:
            import wandb

            wandb.init(
                project=logger_cfg.project,
                entity=logger_cfg.entity,
                name=run_name,
                dir=output_dir,
                config=config,
                mode=attempt,
                id=resume_id,
                resume="allow" if resume_id else None,
                settings=wandb.Settings(init_timeout=logger_cfg.get("init_timeout", 60), silent=True),
            )
            log.info("W&B: %s run %s in %s", attempt, run_name, output_dir)
            guard_wandb_log(wandb)
            return ["wandb"]
        except Exception as error:  # W&B trouble must never stop training
            log.warning("W&B %s start failed (%s)", attempt, error)
            _reset_wandb()  # a failed init keeps the run id claimed in W&B's service process
    log.warning("W&B disabled for this run; metrics are still in metrics.jsonl")
    return []


def _reset_wandb() -> None:
    try:
        import wandb

        wandb.teardown()
    except Exception as error:
        log.warning("W&B teardown failed (%s)", error)


def finish_wandb() -> None:
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except Exception as error:
        log.warning("W&B finish failed (%s); the local files are complete", error)
