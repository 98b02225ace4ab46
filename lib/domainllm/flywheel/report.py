"""The nightly flywheel report: counts at every step, label sources, pair margins, and what
was triggered; as Markdown and one figure."""

from __future__ import annotations

from typing import Any


def funnel(counts: dict[str, dict[str, int]]) -> list[tuple[str, int]]:
    h, c, s, lb, p = (counts.get(k, {}) for k in ("harvest", "curate", "sample", "label", "preferences"))
    return [("requests logged", h.get("requests", 0)), ("answered user requests", h.get("harvested", 0)),
            ("prompts kept", c.get("kept", 0)), ("prompts sampled", s.get("prompts", 0)),
            ("candidates", s.get("candidates", 0)), ("pairs", lb.get("pairs", 0)), ("pending pairs", p.get("pending", 0))]  # fmt: skip


def markdown(counts: dict[str, dict[str, int]], info: dict[str, Any], margins: list[float]) -> str:
    lines = [f"# Data flywheel {info.get('run_id', '')}", "",
             f"Window: {info.get('window', {}).get('start')} to {info.get('window', {}).get('end')}", "",
             "| step | count |", "|---|---:|"]  # fmt: skip
    lines += [f"| {name} | {n} |" for name, n in funnel(counts)]
    lines += ["", "## Dropped or left out", "", "| step | reason | count |", "|---|---|---:|"]
    for stage in ("harvest", "curate", "sample", "label"):
        for key, n in sorted(counts.get(stage, {}).items()):
            if key.startswith(("skipped", "quarantined", "dropped", "deferred", "no_pair", "capped", "excluded", "feedback.")) and n:
                lines.append(f"| {stage} | {key} | {n} |")
    lines += principals_section(info.get("flags") or {}, info.get("principals") or {})
    intents = {k.split(".", 1)[1]: n for k, n in counts.get("harvest", {}).items() if k.startswith("intent.") and k.count(".") == 1}
    if intents:
        total = sum(intents.values()) or 1
        lines += ["", "## Requests by intent route", "", "| route | requests | share | with retrieval |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {n} | {n / total:.0%} | {counts['harvest'].get(f'intent.{k}.retrieval', 0)} |" for k, n in sorted(intents.items())]
    sources = {k.split(".", 1)[1]: n for k, n in counts.get("label", {}).items() if k.startswith("pairs.")}
    lines += ["", "## Pairs by label source", "", *(f"- {k}: {n}" for k, n in sorted(sources.items()))]
    if margins:
        lines += ["", f"Margins: mean {sum(margins) / len(margins):.3f}, min {min(margins):.3f}, max {max(margins):.3f}"]
    lines += ["", "## Dataset and training", "",
              f"Preference dataset version {info.get('version')} at {info.get('dataset')}: "
              f"{counts.get('preferences', {}).get('pairs_new', 0)} new pairs, {counts.get('preferences', {}).get('pairs_total', 0)} in all.",
              info.get("triggered_line", "")]  # fmt: skip
    return "\n".join(lines) + "\n"


def principals_section(flags: dict[str, list[str]], principals: dict[str, dict[str, Any]], top: int = 10) -> list[str]:
    """Who the night's data came from (pseudonymous principals, the most active first) and
    which of them were flagged, and why."""
    if not principals and not flags:
        return []
    lines = ["", "## Principals", "", f"{len(principals)} principals; flagged: {len(flags)}.", "",
             "| principal | requests | feedback | capped requests | capped feedback | flags |", "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    ranked = sorted(principals.items(), key=lambda kv: (kv[0] not in flags, -kv[1].get("requests", 0)))
    for p, s in ranked[:top]:
        lines.append(f"| {p} | {s.get('requests', 0)} | {s.get('feedback', 0)} | {s.get('capped_requests', 0)} | "
                     f"{s.get('capped_feedback', 0)} | {'; '.join(flags.get(p, [])) or '-'} |")  # fmt: skip
    return lines


def plot(counts: dict[str, dict[str, int]], margins: list[float]) -> bytes:
    from domainllm.plots import subplots, to_png

    fig, (ax1, ax2, ax3) = subplots(1, 3, figsize=(14, 4))
    steps = funnel(counts)
    ax1.barh([n for n, _ in steps][::-1], [v for _, v in steps][::-1], color="#4c72b0")
    ax1.set_title("Tonight's funnel")
    sources = {k.split(".", 1)[1]: n for k, n in counts.get("label", {}).items() if k.startswith("pairs.")}
    ax2.bar(list(sources) or ["none"], list(sources.values()) or [0], color="#55a868")
    ax2.set_title("Pairs by label source")
    ax3.hist(margins or [0], bins=10, range=(0, 1), color="#c44e52")
    ax3.set_title("Pair margins (chosen - rejected)")
    return to_png(fig)
