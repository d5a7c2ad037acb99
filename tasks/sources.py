"""Reading task data: local JSON lines / JSON / CSV files, the Hugging Face Hub, and counting bad rows.

Nothing here knows a task's columns: a task converts each raw row itself and reports why a row is
unusable; `DataReport` counts the reasons so a run says what it left out instead of crashing on it.
"""

import csv
import gzip
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tasks.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class DataReport:
    """How many rows a split had and why the unusable ones were left out."""

    source: str
    split: str
    total: int = 0
    dropped: Counter = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return self.total - sum(self.dropped.values())

    def keep_usable(self, raw_rows, convert) -> list[dict]:
        """Convert each raw row with `convert(raw) -> (row, None) | (None, reason)`; count the rejects."""
        rows = []
        for raw in raw_rows:
            self.total += 1
            row, problem = convert(raw) if isinstance(raw, dict) else (None, "unreadable line")
            if problem:
                self.dropped[problem] += 1
            else:
                rows.append(row)
        return rows

    def summary(self) -> str:
        line = f"{self.source} {self.split}: {self.total} rows, {self.kept} usable"
        if self.dropped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.dropped.most_common())
            line += f", {sum(self.dropped.values())} left out ({reasons})"
        return line


def read_jsonl(path: Path):
    """Yield one object per line; an undecodable or non-JSON line yields None (counted by the caller)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                yield json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                yield None


def read_rows(path: Path) -> list:
    """Rows of a `.jsonl` (optionally `.gz`), `.json` (a list of objects) or `.csv` file."""
    suffixes = [s for s in path.suffixes if s != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    if kind == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"{path}: not valid JSON ({error}); give a list of objects, or JSON lines (.jsonl)")
        if not isinstance(data, list):
            raise ConfigError(f"{path}: a .json data file must hold a list of objects; use .jsonl for one object per line")
        return data
    return list(read_jsonl(path))


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"


def hub_reachable(timeout_s: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def hub_rows(hub_id: str, config: str | None, split: str) -> list | None:
    """`datasets.load_dataset(hub_id, config, split=split)` as a list of dicts, or None when the hub (or
    the local datasets cache, offline) cannot provide it; the caller decides what that means."""
    if not offline() and not hub_reachable():
        return None
    try:
        from datasets import load_dataset

        return [dict(row) for row in load_dataset(hub_id, config, split=split)]
    except Exception as error:  # any hub, network or cache failure means the same: not available here
        log.info("Could not load %s (%s) from the hub: %s", hub_id, split, str(error)[:200])
        return None
