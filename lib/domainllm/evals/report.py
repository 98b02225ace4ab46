"""The comparison report: candidate vs champion vs base on every metric, as a Markdown
table (also printed in the task log) and a plot, logged to MLflow with the gate's decision."""

from __future__ import annotations

ROLES = ("candidate", "champion", "base")
COLORS = {"candidate": "tab:blue", "champion": "tab:orange", "base": "tab:gray"}


def means(scores: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {metric: {role: sum(v) / len(v) for role, v in roles.items() if v} for metric, roles in sorted(scores.items())}


def table(scores: dict[str, dict[str, list[float]]]) -> str:
    rows = ["| metric | items | " + " | ".join(ROLES) + " |", "|---|---|" + "---|" * len(ROLES)]
    for metric, by_role in means(scores).items():
        items = len(scores[metric]["candidate"])
        cells = [f"{by_role[r]:.4f}" if r in by_role else "-" for r in ROLES]
        rows.append(f"| {metric} | {items} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def plot(scores: dict[str, dict[str, list[float]]]) -> bytes:
    from domainllm.plots import subplots, to_png

    data = means(scores)
    fig, axes = subplots(1, len(data), figsize=(3.2 * max(1, len(data)), 3.2), squeeze=False)
    for ax, (metric, by_role) in zip(axes[0], data.items(), strict=True):
        roles = [r for r in ROLES if r in by_role]
        ax.bar(roles, [by_role[r] for r in roles], color=[COLORS[r] for r in roles])
        ax.set_title(metric, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    return to_png(fig)
