"""First use of an empty cache by several runs at once: each model is converted once, and all get it."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

# Waits for the test's go-file, so both processes ask for the model within milliseconds of each other.
BUILD_AFTER_GO = """
import logging, os, sys, time
from pathlib import Path
from omegaconf import OmegaConf
logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(message)s")
from grpo.models import tiny_model_dir
shape = dict(OmegaConf.load("conf/model/tiny.yaml").tiny_config)
Path(sys.argv[1] + f".ready-{os.getpid()}").touch()
while not Path(sys.argv[1]).exists():
    time.sleep(0.01)
print("DIR", tiny_model_dir(shape))
"""


def test_two_processes_on_an_empty_cache_convert_the_tiny_model_once(tmp_path, tiny_model_dir):
    from grpo.embedded import TOKENIZER_DIR_NAME

    cache = tmp_path / "cache"
    cache.mkdir()
    # the tokenizer conversion (~35 s) goes through the same build_once; reuse it to keep this test short
    shutil.copytree(tiny_model_dir.parent / TOKENIZER_DIR_NAME, cache / TOKENIZER_DIR_NAME)
    go = tmp_path / "go"
    env = {**os.environ, "GEMMA_GRPO_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_AFTER_GO, str(go)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("go.ready-*"))) < 2:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    go.touch()
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    dirs = {line.split(" ", 1)[1] for out in outputs for line in out.splitlines() if line.startswith("DIR ")}
    assert len(dirs) == 1, outputs
    built = [line for out in outputs for line in out.splitlines() if "Building" in line and "tiny-gemma3" in line]
    assert len(built) == 1, outputs
    assert (cache / dirs.pop().rsplit("/", 1)[1] / "model.safetensors").exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".tiny-gemma3") and p.is_dir()]  # no staging left
