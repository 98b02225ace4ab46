"""The decoding grid search's report: one row per decoding tried (the spec's own first),
the best marked, as a Markdown table and a bar chart."""

from __future__ import annotations

from dataclasses import dataclass

from domainllm.spec.evals import SEARCHABLE, Decoding


@dataclass(frozen=True)
class Trial:
    label: str
    decoding: Decoding
    score: float
    items: int
    seconds: float


def varied(trials: list[Trial]) -> list[str]:
    """The decoding fields that differ between trials (the table's columns)."""
    return [f for f in SEARCHABLE if len({getattr(t.decoding, f) for t in trials}) > 1]


def best(trials: list[Trial]) -> Trial:
    return max(trials, key=lambda t: t.score)


def table(trials: list[Trial], objective: str) -> str:
    fields, top = varied(trials), best(trials)
    rows = [f"| trial | {' | '.join(fields)} | {objective} | items | seconds |", "|---|" + "---|" * (len(fields) + 3)]
    for t in trials:
        mark = " (best)" if t is top else ""
        cells = " | ".join(str(getattr(t.decoding, f)) for f in fields)
        rows.append(f"| {t.label}{mark} | {cells} | {t.score:.4f} | {t.items} | {t.seconds:.0f} |")
    return "\n".join(rows) + "\n"


def plot(trials: list[Trial], objective: str) -> bytes:
    from domainllm.plots import subplots, to_png

    fields, top = varied(trials), best(trials)
    labels = [t.label + (": " + ", ".join(f"{f}={getattr(t.decoding, f)}" for f in fields) if fields else "") for t in trials]
    fig, axes = subplots(1, 1, figsize=(7, 0.35 * len(trials) + 1.2), squeeze=False)
    ax = axes[0][0]
    colors = ["tab:green" if t is top else ("tab:gray" if t.label == "spec" else "tab:blue") for t in trials]
    ax.barh(range(len(trials)), [t.score for t in trials], color=colors)
    ax.set_yticks(range(len(trials)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(objective, fontsize=8)
    ax.set_title("decoding search (green: best, gray: the spec's)", fontsize=9)
    return to_png(fig)
