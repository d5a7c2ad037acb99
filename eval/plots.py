"""PNG plots for the model card, read from metrics.jsonl rows (headless: matplotlib's Agg backend)."""

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rewards(rows: list[dict], path: Path) -> Path | None:
    """Total reward per step with its std band, and each reward function's mean (TRL's log keys)."""
    points = [(r["step"], r["reward"], r.get("reward_std")) for r in rows if r.get("reward") is not None]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    steps, rewards, stds = zip(*points)
    ax.plot(steps, rewards, label="reward (weighted sum)", color="black", linewidth=2)
    if all(s is not None for s in stds):
        low = [r - s for r, s in zip(rewards, stds)]
        high = [r + s for r, s in zip(rewards, stds)]
        ax.fill_between(steps, low, high, color="grey", alpha=0.2, label="± std")
    names = sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")})
    for name in names:
        series = [(r["step"], r[name]) for r in rows if r.get(name) is not None]
        ax.plot(*zip(*series), label=name.removeprefix("rewards/").removesuffix("/mean"), linewidth=1)
    ax.set(xlabel="step", ylabel="reward", title="Reward per step")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_eval(rows: list[dict], path: Path) -> Path | None:
    """Every held-out accuracy (`eval/<name>/accuracy*`) against the step it was measured at."""
    eval_rows = [r for r in rows if "eval/phase" in r]
    keys = sorted({k for r in eval_rows for k in r if k.startswith("eval/") and "/accuracy" in k})
    if not keys:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        series = [(r["step"], r[key]) for r in eval_rows if r.get(key) is not None]
        ax.plot(*zip(*series), marker="o", label=key.removeprefix("eval/"))
    ax.set(xlabel="step", ylabel="accuracy", title="Held-out accuracy", ylim=(-0.02, 1.02))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
