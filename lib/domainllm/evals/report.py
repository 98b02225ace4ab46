"""The comparison report: candidate vs champion vs base on every metric, as a Markdown
table (also printed in the task log) and a plot, logged to MLflow with the gate's decision."""

from __future__ import annotations

from collections.abc import Sequence

ROLES = ("candidate", "candidate_rag", "champion", "base")
COLORS = {"candidate": "tab:blue", "candidate_rag": "tab:cyan", "champion": "tab:orange", "base": "tab:gray"}
_OTHER_COLORS = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def _color(role: str, roles: Sequence[str]) -> str:
    return COLORS.get(role) or _OTHER_COLORS[list(roles).index(role) % len(_OTHER_COLORS)]


def means(scores: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {metric: {role: sum(v) / len(v) for role, v in roles.items() if v} for metric, roles in sorted(scores.items())}


def present(scores: dict[str, dict[str, list[float]]]) -> list[str]:
    """The usual roles, in the usual order: candidate, champion and base always (a dash says
    there is no champion yet), candidate_rag when some suite ran with retrieval."""
    return [r for r in ROLES if r != "candidate_rag" or any(r in by_role for by_role in scores.values())]


def table(scores: dict[str, dict[str, list[float]]], roles: Sequence[str] | None = None) -> str:
    """Per-item means: a row per metric, a column per role (`-` where a role has no score)."""
    roles = roles or present(scores)
    rows = ["| metric | items | " + " | ".join(roles) + " |", "|---|---|" + "---|" * len(roles)]
    for metric, by_role in means(scores).items():
        items = len(scores[metric][roles[0]])
        cells = [f"{by_role[r]:.4f}" if r in by_role else "-" for r in roles]
        rows.append(f"| {metric} | {items} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def plot(scores: dict[str, dict[str, list[float]]], roles: Sequence[str] | None = None) -> bytes:
    from domainllm.plots import subplots, to_png

    roles = roles or present(scores)
    data = means(scores)
    width = 3.2 if len(roles) <= 3 else 0.8 * len(roles) + 1
    fig, axes = subplots(1, len(data), figsize=(width * max(1, len(data)), 3.2), squeeze=False)
    for ax, (metric, by_role) in zip(axes[0], data.items(), strict=True):
        shown = [r for r in roles if r in by_role]
        ax.bar(shown, [by_role[r] for r in shown], color=[_color(r, roles) for r in shown])
        ax.set_title(metric, fontsize=9)
        ax.tick_params(axis="x", labelsize=8, labelrotation=40 if len(roles) > 3 else 0)
    return to_png(fig)
