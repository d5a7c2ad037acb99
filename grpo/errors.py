"""The one error boundary of every command: a user-caused error ends in one message and exit code 2.

What counts as user-caused: our own ConfigError (a setting, a file, a dataset), and the errors the
libraries raise for things a user controls, translated here into what is wrong, where, and the fix: a
gated or missing hub model, offline without a cached copy, a damaged weight file, a dataset that cannot
be had. Anything else is a bug and keeps its traceback; `HYDRA_FULL_ERROR=1` shows the traceback of a
user error too.
"""

import logging
import os
import sys
from contextlib import contextmanager

from tasks import ConfigError

log = logging.getLogger(__name__)

USER_ERROR_EXIT = 2


def user_error_message(error: BaseException) -> str | None:
    """What to tell the user about `error`, or None when it is not theirs to fix (a bug)."""
    if isinstance(error, ConfigError):
        return str(error)
    name = type(error).__name__
    module = type(error).__module__ or ""
    text = str(error).strip().splitlines()[0][:300] if str(error).strip() else name
    if module.startswith("huggingface_hub"):
        if name == "GatedRepoError":
            return (f"a gated Hugging Face model ({text}): accept its licence on its page on huggingface.co, then "
                    "log in with `hf auth login`")
        if name in ("RepositoryNotFoundError", "RevisionNotFoundError"):
            return f"no such model or dataset on the Hugging Face Hub ({text}): check model.hub_id, or log in "\
                   "with `hf auth login` for a private one"
        if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
            return f"not in the local Hugging Face cache and the hub is not reachable or offline ({text}): " \
                   "download it once where the hub is reachable, or point the setting at a local directory"
        if name == "LocalTokenNotFoundError":
            return "no Hugging Face token: log in with `hf auth login` (or set HF_TOKEN)"
    if name == "SafetensorError" or "safetensors" in module:
        return f"a damaged or incomplete weight file ({text}): delete that checkpoint or adapter and rerun, or " \
               "point the setting at another one"
    if module.startswith("datasets"):
        if name in ("DatasetNotFoundError", "DataFilesNotFoundError", "FileNotFoundDatasetsError"):
            return f"a dataset that cannot be had here ({text}): give local files (task.data_files / " \
                   "sft.data_files) instead"
    return None


@contextmanager
def user_errors(command: str, reraise: bool = False):
    """Turn a user-caused error raised inside the block into one logged message and exit 2.

    `reraise`: raise it instead (a Hydra multirun trial, whose failure the sweep records)."""
    try:
        yield
    except Exception as error:
        message = user_error_message(error)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s: error: %s", command, message)
        if reraise:
            raise
        sys.exit(USER_ERROR_EXIT)
