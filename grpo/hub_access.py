"""Check, before W&B starts and before a model loads, that a hub model can actually be read here.

Hub Gemma checkpoints are gated: the licence must be accepted on the model's page and a token must be
present, or loading ends in a 401 traceback deep inside transformers, after W&B has opened a run.
One cheap request (`huggingface_hub.auth_check`) tells gated, missing and reachable apart; offline,
the local cache is what counts.
"""

import logging
from pathlib import Path

from grpo.validate import ConfigError

log = logging.getLogger(__name__)

LOGIN = "`hf auth login` (or set HF_TOKEN)"


def licence_page(repo_id: str) -> str:
    return f"https://huggingface.co/{repo_id}"


def offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


def cached(repo_id: str) -> bool:
    """The model's config.json is in the local hub cache (a download was at least started before)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def has_token() -> bool:
    from huggingface_hub import get_token

    return get_token() is not None


def check_model_access(model_cfg) -> None:
    """Raise ConfigError when `model_cfg` (source=hub) cannot be loaded here; local directories pass."""
    if model_cfg.get("source") != "hub":
        return
    repo_id = str(model_cfg.hub_id)
    if Path(repo_id).expanduser().is_dir():
        return
    if offline():
        if cached(repo_id):
            return
        raise ConfigError(
            f"model.hub_id={repo_id}: offline (HF_HUB_OFFLINE=1) and no copy in the local hub cache. "
            f"Download it once online (accept the licence at {licence_page(repo_id)}, log in with {LOGIN}, "
            f"then `hf download {repo_id}`), or set model.hub_id to a local directory holding the checkpoint"
        )
    import httpx
    from huggingface_hub import auth_check
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        auth_check(repo_id)
    except GatedRepoError:
        token = "you are logged in, but this account has not been granted access" if has_token() else "no Hugging Face token was found"
        raise ConfigError(
            f"model.hub_id={repo_id} is gated and {token}: accept the licence at {licence_page(repo_id)} "
            f"(with the account you log in with), then log in with {LOGIN} and run again"
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            f"model.hub_id={repo_id}: no such model on the Hugging Face hub, or it is private and this "
            f"account cannot see it. Check the id ({licence_page(repo_id)}); for a private or gated model "
            f"log in with {LOGIN}; for a local checkpoint give its directory"
        ) from None
    except HfHubHTTPError as error:
        _unreachable(repo_id, f"the hub answered {error}")
    # no connection (DNS, refused, timeout), or huggingface_hub's OfflineModeIsEnabled (a ConnectionError)
    except (httpx.TransportError, OSError) as error:
        _unreachable(repo_id, str(error) or type(error).__name__)


def _unreachable(repo_id: str, why: str) -> None:
    """The hub cannot be asked: a cached copy is enough (transformers will use it), else stop here."""
    if cached(repo_id):
        log.warning("Could not check access to %s on the hub (%s); using the cached copy", repo_id, why)
        return
    raise ConfigError(
        f"model.hub_id={repo_id}: cannot reach the Hugging Face hub ({why}) and there is no cached copy. "
        f"Check the network (or HF_ENDPOINT), or download it where the hub is reachable ({licence_page(repo_id)}, "
        f"{LOGIN}, `hf download {repo_id}`) and set model.hub_id to its directory"
    )
