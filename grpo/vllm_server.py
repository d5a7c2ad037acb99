"""Server mode (rollout=vllm_server): where the `trl vllm-serve` process is, and whether it answers.

TRL 1.16 reaches the server only once the policy has loaded and `GRPOTrainer` starts its vLLM client
(on the main process only), and then polls `<base url>/health` for `vllm_server_timeout` seconds
(240 by default) before failing with a `ConnectionError`. A wrong host or port therefore costs a model
load and four minutes. `check_server_reachable` asks the same endpoint first, before any model loads,
and waits only `rollout.server.wait_s` seconds (a small default; raise it when the server is started
together with training, e.g. in one SLURM job, and still loading its weights). Once it has answered,
TRL's own wait finds it up at once.

The URL rule is TRL's (`VLLMGeneration._init_vllm`): `vllm_server_base_url` when set, else
`http://{vllm_server_host}:{vllm_server_port}`. The server's own size (tensor and data parallel, memory
share, context) is set where it starts, on the `trl vllm-serve` command line; `rollout.server` records
it so that `serve_command` can print the command that matches the config. Data parallel serving is left
out: TRL 1.16's vllm-serve documents that vLLM refuses data_parallel_size > 1 for dense models (vllm
#30739), and every Gemma is dense.
"""

import json
import logging
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

from omegaconf import DictConfig

from grpo import ranks

from tasks import ConfigError

log = logging.getLogger(__name__)

KEYS = "rollout.trainer_overrides.vllm_server_host / vllm_server_port (or vllm_server_base_url)"


def server_url(overrides) -> str:
    base_url = overrides.get("vllm_server_base_url")
    if base_url:
        return str(base_url).rstrip("/")
    return f"http://{overrides.get('vllm_server_host', '0.0.0.0')}:{overrides.get('vllm_server_port', 8000)}"


def serve_command(cfg: DictConfig) -> str:
    """The `trl vllm-serve` command that serves this config's model where the trainer will look for it."""
    overrides = cfg.rollout.trainer_overrides
    server = cfg.rollout.get("server") or {}
    model = cfg.model.get("hub_id") or "<the model's directory>"
    url = urlparse(server_url(overrides))
    # a server the trainer reaches on loopback need not listen on the network; any other must
    listen = url.hostname if url.hostname in ("127.0.0.1", "localhost") else "0.0.0.0"
    parts = [f"trl vllm-serve --model {model}", f"--host {listen}", f"--port {url.port or (443 if url.scheme == 'https' else 80)}"]
    for flag in ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len"):
        if server.get(flag) is not None:
            parts.append(f"--{flag} {server[flag]}")
    return " ".join(parts)


def check_server_config(rollout: DictConfig) -> None:
    """Ports, sizes and URL of rollout=vllm_server, checked before anything connects."""
    from grpo.validate import check_number

    overrides = rollout.trainer_overrides
    for key in ("vllm_server_port", "vllm_group_port"):
        value = overrides.get(key)
        check_number(value, f"rollout.trainer_overrides.{key}", minimum=1, integer=True)
        if value > 65535:
            raise ConfigError(f"rollout.trainer_overrides.{key}={value} is not a port (1-65535)")
    base_url = overrides.get("vllm_server_base_url")
    if base_url is not None:
        parsed = urlparse(str(base_url))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"rollout.trainer_overrides.vllm_server_base_url={base_url!r} must be a URL such as "
                "http://10.0.0.5:8000, or null to use vllm_server_host and vllm_server_port"
            )
    port = urlparse(server_url(overrides)).port
    if port is not None and port == overrides.vllm_group_port:
        raise ConfigError(
            f"rollout.trainer_overrides.vllm_group_port={port} is also the server's HTTP port: the weight-sync "
            "group needs a port of its own (TRL's default 51216)"
        )
    check_number(overrides.get("vllm_server_timeout"), "rollout.trainer_overrides.vllm_server_timeout", minimum=0)
    server = rollout.get("server") or {}
    check_number(server.get("tensor_parallel_size", 1), "rollout.server.tensor_parallel_size", minimum=1, integer=True)
    check_number(server.get("wait_s", 0), "rollout.server.wait_s", minimum=0)


def health_ok(url: str, timeout_s: float) -> bool:
    """One GET of `<url>/health`, the endpoint TRL's VLLMClient.check_server polls; True on HTTP 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_for_health(url: str, within_s: float, poll_s: float = 1.0) -> bool:
    """Poll `<url>/health` until it answers 200 or `within_s` seconds have passed (at least one try).
    Each request is bounded too, so an address that drops packets cannot hang the check."""
    deadline = time.monotonic() + within_s
    while True:
        remaining = deadline - time.monotonic()
        if health_ok(url, timeout_s=max(0.5, min(3.0, remaining))):
            return True
        if time.monotonic() + poll_s > deadline:
            return False
        time.sleep(poll_s)


def server_world_size(url: str, timeout_s: float = 3.0) -> int | None:
    """Workers behind the server (its tensor-parallel size), from the endpoint TRL's client reads; None
    when it does not answer (an older server, or one without dev-mode endpoints)."""
    try:
        with urllib.request.urlopen(f"{url}/get_world_size", timeout=timeout_s) as response:
            return int(json.load(response)["world_size"])
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return None


def check_server_reachable(cfg: DictConfig) -> None:
    """On the main process: the server answers `/health` within `rollout.server.wait_s` seconds, or a
    ConfigError that says where we looked and how to start it. Other ranks never contact the server."""
    if not ranks.is_main_process():  # only rank 0 talks to the server in TRL
        return
    url = server_url(cfg.rollout.trainer_overrides)
    server = cfg.rollout.get("server") or {}
    wait_s = float(server.get("wait_s", 30))
    started = time.monotonic()
    if not wait_for_health(url, wait_s):
        raise ConfigError(
            f"rollout=vllm_server: no vLLM server answered at {url}/health within {wait_s:g} s. Start it first, "
            f"on GPUs the training does not use, e.g. `CUDA_VISIBLE_DEVICES=<gpus> {serve_command(cfg)}`, "
            f"or point the trainer at it with {KEYS}; a server still loading its weights needs a longer "
            "rollout.server.wait_s"
        )
    log.info("vLLM server at %s is up (answered in %.1f s)", url, time.monotonic() - started)
    expected = server.get("tensor_parallel_size", 1)
    workers = server_world_size(url)
    if workers is not None and workers != expected:
        log.warning(
            "vLLM server at %s runs %d worker(s), the config says rollout.server.tensor_parallel_size = %d: "
            "rollout.server records how the server was started; update it to match", url, workers, expected,
        )
