"""Publish a run to the Hugging Face Hub: the adapter (end of training, `hub.push=true`) or an export
(`python -m grpo.export ... push=true`), together with the run's model card and plots.

Everything goes in one commit built from the local files (`create_commit` with `CommitOperationAdd`), so
`upload_plan` is the exact list of what would be sent and tests check it without a network. The card is
sent from memory with a "use this model" section for what was uploaded; nothing in the run dir is
written or moved, so a failed upload (no token, no network, no permission) leaves the outputs as they were
and says how to retry.
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from grpo.validate import ConfigError

log = logging.getLogger(__name__)

CARD = "README.md"
# files of a run that travel with any upload besides the weights (the card is added separately)
RUN_EXTRAS = ("*.png", "resolved_config.yaml", "eval_results.json")


class HubPushError(RuntimeError):
    """The upload did not happen; the message says why and how to retry."""


@dataclass(frozen=True)
class Upload:
    path_in_repo: str
    local: Path | None = None  # a file to send, or ...
    content: bytes | None = None  # ... text generated here (the card)


def check_hub_config(hub) -> None:
    """Before anything loads: a push needs a repo id."""
    if hub is not None and hub.get("push") and not hub.get("repo_id"):
        raise ConfigError("hub.push=true needs hub.repo_id=<user or org>/<name> (the repo is created if missing)")


def upload_plan(run_dir: Path, weights: Path, kind: str, repo_id: str) -> list[Upload]:
    """What one upload sends: the weights (a directory's files, or one file) at the repo root, the run's
    plots, config and results, and its model card with a section on loading `kind`
    (adapter | merged | gguf)."""
    run_dir, weights = Path(run_dir), Path(weights)
    files = [weights] if weights.is_file() else sorted(p for p in weights.rglob("*") if p.is_file())
    plan = [Upload(str(p.relative_to(weights.parent if weights.is_file() else weights)), local=p) for p in files]
    for pattern in RUN_EXTRAS:
        plan += [Upload(p.name, local=p) for p in sorted(run_dir.glob(pattern))]
    card = (run_dir / CARD).read_text() if (run_dir / CARD).exists() else ""
    names = {u.path_in_repo for u in plan}
    plan = [u for u in plan if u.path_in_repo != CARD]  # the weights' own README (peft writes one) gives way
    plan.append(Upload(CARD, content=hub_card(card, kind, repo_id, names).encode()))
    return plan


def hub_card(card: str, kind: str, repo_id: str, files: set[str]) -> str:
    """The run's card with its front matter fitted to what was uploaded and a "use this model" section."""
    library = {"adapter": "peft", "merged": "transformers", "gguf": "gguf"}[kind]
    if card.startswith("---"):
        card = re.sub(r"(?m)^library_name: .*$", f"library_name: {library}", card, count=1)
        if kind == "gguf":
            card = card.replace("tags: [gemma, grpo", "tags: [gguf, gemma, grpo", 1)
    else:
        card = f"---\nlibrary_name: {library}\ntags: [gemma, grpo, trl, gemma-grpo]\n---\n\n{card}"
    gguf = sorted(f for f in files if f.endswith(".gguf"))
    usage = {
        "adapter": (
            "```python\nfrom peft import AutoPeftModelForCausalLM\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{repo_id}")\n```'
        ),
        "merged": (
            "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n```\n\n'
            f"vLLM: `vllm serve {repo_id}`"
        ),
        "gguf": (
            f"llama.cpp: `llama-cli -hf {repo_id}`; Ollama: `ollama run hf.co/{repo_id}`"
            + (f"; the file: `{gguf[0]}`" if gguf else "")
        ),
    }[kind]
    return card.rstrip() + f"\n\n## Use this model\n\n{usage}\n"


def push(plan: list[Upload], repo_id: str, private: bool = True, message: str = "Upload from gemma-grpo") -> str:
    """Create the repo if needed and send `plan` in one commit; return the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    if not get_token():
        raise HubPushError(
            "no Hugging Face token: run `hf auth login` (or set HF_TOKEN) and retry; nothing was uploaded"
        )
    operations = [
        CommitOperationAdd(path_in_repo=u.path_in_repo, path_or_fileobj=u.content if u.local is None else str(u.local))
        for u in plan
    ]
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.create_commit(repo_id, operations=operations, commit_message=message, repo_type="model")
    except Exception as error:  # noqa: BLE001 - offline mode, HTTP, DNS and auth errors all mean the same here
        raise HubPushError(f"upload to {repo_id} failed ({type(error).__name__}: {error}); nothing was changed "
                           "locally") from error
    return str(getattr(commit, "commit_url", commit))


def push_run(cfg, output_dir: Path) -> bool:
    """End of training with hub.push=true: upload adapter/, card and plots. A failure is logged with the
    command that retries it; the run's outputs stay as they are. Returns whether it was uploaded."""
    hub = cfg.get("hub")
    if hub is None or not hub.get("push"):
        return False
    output_dir = Path(output_dir)
    plan = upload_plan(output_dir, output_dir / "adapter", "adapter", hub.repo_id)
    try:
        url = push(plan, hub.repo_id, bool(hub.get("private", True)), f"{cfg.task.name} GRPO adapter (gemma-grpo)")
    except HubPushError as error:
        log.error("hub.push: %s. Retry with `python -m grpo.export run=%s format=adapter push=true hub.repo_id=%s`",
                  error, output_dir, hub.repo_id)
        return False
    log.info("Uploaded %d files to https://huggingface.co/%s (%s)", len(plan), hub.repo_id, url)
    return True
