"""W&B set-up that never stops a run: online when logged in, offline otherwise, off when broken."""

import logging
import os

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
                settings=wandb.Settings(init_timeout=60, silent=True),
            )
            log.info("W&B: %s run %s in %s", attempt, run_name, output_dir)
            _guard_log(wandb)
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


def _guard_log(wandb) -> None:
    """Make `wandb.log` (what transformers' WandbCallback calls) survive a failing W&B mid-run.

    On the first error the run is re-opened offline under the same id (synced later with
    `wandb sync`) and the row logged again; if that fails too, W&B logging is switched off.
    Training never stops for it: metrics.jsonl has every row either way.
    """

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
            _guard_log(wandb)  # wandb.init rebinds wandb.log to the new run
            return wandb.run.log(*args, **kwargs)
        except Exception as error:
            log.warning("W&B offline fallback failed too (%s); W&B off, metrics.jsonl has every step", error)
            wandb.log = lambda *args, **kwargs: None
            return None

    wandb.log = log_or_fall_back


def finish_wandb() -> None:
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except Exception as error:
        log.warning("W&B finish failed (%s); the local files are complete", error)
