"""math-verify, bounded in time and memory wherever the reward is called.

Why a worker process: math-verify's own timeout is ``signal.alarm``, which only works in the
main thread (Math-Verify #50, #55) and cannot interrupt long big-integer work in C (#63, #65).
TRL may call rewards from any thread, and a policy optimised against us will find inputs that
make sympy run for minutes. So the single place in this project that calls
``math_verify.parse``/``verify`` is ``_worker_main`` below, running in a child process that:

* is started lazily on first need (most answers never get here: ``rewards.normalize`` decides
  plain numbers exactly in microseconds), and reused across calls;
* runs under ``RLIMIT_AS`` (1 GiB by default), so a runaway allocation kills only the worker;
* is killed and replaced when one call exceeds its deadline (1 s by default); the replacement
  starts booting at once, so the next caller usually finds it ready.

Why ``subprocess`` and not ``multiprocessing``: spawn/forkserver children re-import the
parent's ``__main__`` (it crashes outright under ``python -`` or a notebook, and re-runs an
unguarded training script); a plain ``python -c`` child talking JSON lines over pipes has no
such coupling, needs no pickling, and works from any thread. (POSIX only: uses ``select``.)

Callers get ``True``/``False``, or ``VerifyError`` when the worker timed out or died; the
reward wrapper turns that into a 0.0 score and counts it as an error.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict

__all__ = ["VerifyError", "VerifierPool", "get_pool", "shutdown", "verify_equivalent"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_MEMORY_BYTES = 1 << 30
STARTUP_TIMEOUT_S = 60.0
_CACHE_SIZE = 4096
_MAX_LINE = 4096
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class VerifyError(RuntimeError):
    """The bounded verifier could not answer (timeout, worker crash, memory limit)."""


def _worker_main() -> None:  # pragma: no cover - runs in the child process
    """Child loop: read ``[gold, predicted]`` JSON lines, answer ``["ok", bool]`` or ``["error", msg]``."""
    memory_bytes = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MEMORY_BYTES
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ImportError, ValueError, OSError):
        pass
    logging.basicConfig(level=logging.ERROR)
    from math_verify import LatexExtractionConfig, parse, verify

    # LaTeX extraction only: ExprExtractionConfig goes through sympy's parse_expr, which
    # evaluates Python, and these strings come from an adversarial model.
    config = [LatexExtractionConfig()]
    out = sys.stdout
    out.write('["ready", null]\n')
    out.flush()
    for line in sys.stdin:
        try:
            gold, predicted = json.loads(line)
            gold_parsed = parse(f"${gold}$", extraction_config=config, parsing_timeout=None)
            pred_parsed = parse(f"${predicted}$", extraction_config=config, parsing_timeout=None)
            # verify is not symmetric: gold first.
            ok = bool(gold_parsed) and bool(pred_parsed) and verify(gold_parsed, pred_parsed, timeout_seconds=None)
            reply = ["ok", bool(ok)]
        except MemoryError:
            reply = ["error", "MemoryError"]
        except Exception as exc:  # math-verify/sympy raise many types on odd input
            reply = ["error", f"{type(exc).__name__}: {exc}"[:200]]
        out.write(json.dumps(reply) + "\n")
        out.flush()


_WORKER_CODE = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from rewards.safe_verify import _worker_main; _worker_main()"
)


class VerifierPool:
    """One lazily started, self-healing math-verify worker process (thread-safe)."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, memory_bytes: int = DEFAULT_MEMORY_BYTES):
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._ready = False
        self._pid_owner = os.getpid()
        self.restarts = 0
        self.calls = 0

    # -- lifecycle ----------------------------------------------------------------------
    def _start(self) -> None:
        env = dict(os.environ)
        env.pop("PYTHONSTARTUP", None)
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, _PACKAGE_PARENT, str(self.memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=env,
            close_fds=True,
        )
        self._ready = False
        self._pid_owner = os.getpid()

    def _kill(self) -> None:
        process, self._process, self._ready = self._process, None, False
        if process is None:
            return
        try:
            process.kill()
            process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def _read_line(self, timeout_s: float) -> list | None:
        """One JSON reply line within ``timeout_s``, or None on timeout; raises EOFError if the worker died."""
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        chunks: list[bytes] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, _MAX_LINE)
            if not chunk:
                raise EOFError("worker closed its output")
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                return json.loads(b"".join(chunks))
            if sum(map(len, chunks)) > _MAX_LINE:
                raise EOFError("worker sent an overlong reply")

    def _ensure_ready(self) -> None:
        if self._process is not None and self._pid_owner != os.getpid():
            # We were forked (e.g. a DataLoader worker): the pipes belong to the parent.
            self._process, self._ready = None, False
        if self._process is not None and self._process.poll() is not None:
            self._kill()
            self.restarts += 1
        if self._process is None:
            self._start()
        if not self._ready:
            greeting = self._read_line(STARTUP_TIMEOUT_S)
            if not greeting or greeting[0] != "ready":
                self._kill()
                raise VerifyError("math-verify worker did not start")
            self._ready = True

    def warm_up(self) -> None:
        """Start the worker now (optional; the first fallback call does it otherwise)."""
        with self._lock:
            self._ensure_ready()

    def close(self) -> None:
        with self._lock:
            if self._process is not None and self._pid_owner == os.getpid():
                self._kill()
            self._process = None

    # -- the one call ---------------------------------------------------------------------
    def verify(self, gold: str, predicted: str, timeout_s: float | None = None) -> bool:
        """math-verify equivalence of two short, pre-screened strings; gold first.

        Raises ``VerifyError`` on timeout or worker death (the worker is then replaced).
        """
        deadline = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            self.calls += 1
            try:
                self._ensure_ready()
                self._process.stdin.write((json.dumps([gold, predicted]) + "\n").encode())
                reply = self._read_line(deadline)
                if reply is None:
                    self._kill()
                    self.restarts += 1
                    self._start()  # the replacement boots while the caller moves on
                    raise VerifyError(f"math-verify timed out after {deadline:.2f}s")
                tag, payload = reply
            except (EOFError, OSError, ValueError) as exc:
                self._kill()
                self.restarts += 1
                raise VerifyError(f"math-verify worker died: {type(exc).__name__}: {exc}") from exc
        if tag == "ok":
            return bool(payload)
        if payload == "MemoryError":
            raise VerifyError("math-verify hit the worker memory limit")
        # A parse failure inside math-verify is an unparseable answer, not an infrastructure error.
        logger.debug("math-verify could not parse %r vs %r: %s", predicted, gold, payload)
        return False


_POOL: VerifierPool | None = None
_POOL_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple[str, str], bool] = OrderedDict()


def get_pool() -> VerifierPool:
    """The process-wide pool (created on first use; shut down at exit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = VerifierPool()
            atexit.register(shutdown)
        return _POOL


def shutdown() -> None:
    """Stop the worker process, if any. Safe to call repeatedly."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


def verify_equivalent(gold: str, predicted: str) -> bool:
    """Cached, bounded math-verify. Errors (``VerifyError``) are not cached."""
    key = (gold, predicted)
    with _POOL_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    result = get_pool().verify(gold, predicted)
    with _POOL_LOCK:
        _CACHE[key] = result
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result
