"""rollout=vllm_server: the reachability check against a fake server on 127.0.0.1, and the settings.

No vLLM is needed: the check speaks plain HTTP to the endpoint TRL's VLLMClient.check_server polls."""

import json
import logging
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from omegaconf import open_dict

from compose import compose_train
from grpo import validate
from grpo.validate import ConfigError, check_rollout
from grpo.vllm_server import serve_command


@contextmanager
def fake_vllm_server(world_size: int = 1, start_after_s: float = 0.0):
    """An HTTP server on a free 127.0.0.1 port answering /health and /get_world_size, started in a thread
    `start_after_s` seconds from now (the port is reserved meanwhile but refuses connections)."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            if self.path == "/health":
                body = b""
            elif self.path == "/get_world_size":
                body = json.dumps({"world_size": world_size}).encode()
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.server_bind()  # the port is ours from here; connections are refused until listen()
    port = server.server_address[1]

    activated = threading.Event()

    def serve():
        time.sleep(start_after_s)
        server.server_activate()
        activated.set()
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, seen
    finally:
        activated.wait(timeout=start_after_s + 5)  # shutdown() waits for serve_forever, so let it start
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A port nothing listens on: bound once by the OS and released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_config(port: int, *overrides: str):
    cfg = compose_train("+task=gsm8k", "model=gemma3-1b-it", "rollout=vllm_server",
                        f"rollout.trainer_overrides.vllm_server_port={port}", *overrides)
    return cfg


def check_on_gpu(cfg, monkeypatch):
    """check_rollout as it runs on a CUDA machine with vLLM installed."""
    monkeypatch.setattr(validate, "find_spec", lambda name: object())
    check_rollout(cfg, cuda=True)


def test_unreachable_server_fails_fast_naming_the_address_the_command_and_the_keys(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        check_on_gpu(server_config(port, "rollout.server.wait_s=1"), monkeypatch)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert f"http://127.0.0.1:{port}/health within 1 s" in message
    assert f"trl vllm-serve --model google/gemma-3-1b-it --host 127.0.0.1 --port {port}" in message
    assert "vllm_server_host" in message and "vllm_server_port" in message and "rollout.server.wait_s" in message
    assert elapsed < 10, f"the check took {elapsed:.1f} s for wait_s=1"  # bounded: not TRL's 240 s wait


def test_server_answering_health_passes(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with fake_vllm_server() as (port, seen):
        check_on_gpu(server_config(port, "rollout.server.wait_s=5"), monkeypatch)
    assert seen[0] == "/health"


def test_server_still_starting_is_awaited_within_wait_s(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with fake_vllm_server(start_after_s=1.5) as (port, seen):
        check_on_gpu(server_config(port, "rollout.server.wait_s=10"), monkeypatch)
    assert "/health" in seen


def test_base_url_wins_over_host_and_port(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with fake_vllm_server() as (port, seen):
        cfg = server_config(free_port(), f"rollout.trainer_overrides.vllm_server_base_url=http://127.0.0.1:{port}",
                            "rollout.server.wait_s=2")
        check_on_gpu(cfg, monkeypatch)
    assert seen[0] == "/health"


def test_only_the_main_process_contacts_the_server(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    check_on_gpu(server_config(free_port(), "rollout.server.wait_s=1"), monkeypatch)  # no server, no error


def test_a_server_of_another_size_is_reported(monkeypatch, caplog):
    monkeypatch.delenv("RANK", raising=False)
    with fake_vllm_server(world_size=4) as (port, _), caplog.at_level(logging.WARNING, logger="grpo.vllm_server"):
        check_on_gpu(server_config(port, "rollout.server.tensor_parallel_size=2"), monkeypatch)
    assert "runs 4 worker(s)" in caplog.text and "tensor_parallel_size = 2" in caplog.text


@pytest.mark.parametrize("override, field", [
    ("rollout.trainer_overrides.vllm_group_port=8000", "vllm_group_port"),
    ("rollout.trainer_overrides.vllm_group_port=70000", "vllm_group_port"),
    ("rollout.trainer_overrides.vllm_server_base_url=localhost:8000", "vllm_server_base_url"),
    ("rollout.server.tensor_parallel_size=0", "rollout.server.tensor_parallel_size"),
])
def test_bad_server_settings_are_refused_before_connecting(override, field, monkeypatch):
    with pytest.raises(ConfigError, match=field):
        check_on_gpu(server_config(8000, override), monkeypatch)


def test_serve_command_matches_the_config():
    cfg = server_config(8001, "rollout.trainer_overrides.vllm_server_host=10.0.0.5",
                        "rollout.server.tensor_parallel_size=2", "rollout.server.max_model_len=4096")
    command = serve_command(cfg)
    # a server reached over the network must listen on it
    assert command.startswith("trl vllm-serve --model google/gemma-3-1b-it --host 0.0.0.0 --port 8001")
    assert "--tensor_parallel_size 2" in command and "--max_model_len 4096" in command


def test_group_port_and_base_url_reach_grpo_config():
    """The server keys are TRL's own GRPOConfig fields, so they pass through as_run unchanged."""
    from trl import GRPOConfig

    cfg = server_config(8002, "rollout.trainer_overrides.vllm_group_port=51300")
    with open_dict(cfg):
        fields = dict(cfg.rollout.trainer_overrides)
    args = GRPOConfig(output_dir="unused", bf16=False, **fields)
    assert (args.vllm_server_port, args.vllm_group_port, args.vllm_server_base_url) == (8002, 51300, None)
