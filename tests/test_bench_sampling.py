"""scripts/bench_sampling.py times both draws for every shape asked and writes what it printed."""

import json
import sys

from conftest import REPO


def test_every_rows_and_top_k_pair_is_timed_for_both_draws(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import bench_sampling

    out = tmp_path / "sampling.json"
    monkeypatch.setattr(sys, "argv", ["bench_sampling.py", "--rows", "2", "--top-k", "0", "4", "--rounds", "1",
                                      "--json", str(out)])
    bench_sampling.main()
    results = json.loads(out.read_text())["results"]
    assert [(r["rows"], r["top_k"]) for r in results] == [(2, 0), (2, 4)]
    assert all(r["transformers_ms"] > 0 and r["inverse_cdf_ms"] > 0 for r in results)
    printed = capsys.readouterr().out
    assert len([line for line in printed.splitlines() if line.strip().startswith("2 ")]) == 2
