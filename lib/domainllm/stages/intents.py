"""Stage `intents`: the intent classifier of `serving.intents`, trained on the routes'
labelled prompts (and `serving.intents.examples`) embedded with the knowledge base's model;
saved for the gateway with a report of its cross-validated accuracy and confusion matrix.
Off (nothing to train) when no routes are configured: every request takes `serving.retrieval`."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)

CLASSIFIER_DIR = "classifier"


class IntentsStage:
    name: ClassVar[str] = "intents"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        return {"intents": spec.serving.intents.model_dump(mode="json", include={"routes", "examples", "regularization"}),
                "embedding": spec.knowledge.embedding.model}  # fmt: skip

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        from domainllm.artifacts.fs import folder_fingerprint

        path = spec.serving.intents.examples
        return {"examples": folder_fingerprint(path)} if path else {}

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.knowledge.embedding import Embedder
        from domainllm.serve.intents import load_examples, train

        cfg = ctx.spec.serving.intents
        if not cfg.routes:
            log.info("intents: no serving.intents.routes; every request takes serving.retrieval")
            return StageResult(info={"enabled": False})
        examples = [(text, r.name) for r in cfg.routes for text in r.examples]
        if cfg.examples:
            try:
                examples += load_examples(cfg.examples, {r.name for r in cfg.routes})
            except (OSError, ValueError) as exc:
                raise StageError(f"serving.intents.examples: {exc}") from None
        missing = sorted({r.name for r in cfg.routes} - {intent for _, intent in examples})
        if missing:
            raise StageError(f"serving.intents: route(s) {missing} have no labelled prompt; give each route `examples`")
        try:
            embedder = Embedder(ctx.spec.knowledge.embedding.model, ctx.spec.knowledge.embedding.batch_size)
            vectors = embedder.encode([text for text, _ in examples])
        except FileNotFoundError as exc:
            raise StageError(str(exc)) from None
        classifier, report = train(vectors, [i for _, i in examples], regularization=cfg.regularization, embedding=embedder.path)
        with ctx.out.local_dir(CLASSIFIER_DIR) as folder:
            classifier.save(folder)
        text = _report_text(report, classifier.labels)
        log.info("intents: %d labelled prompts, %d routes\n%s", len(examples), len(classifier.labels), text)
        with ctx.out.fs.open(ctx.out.file("intents.md"), "w") as fh:
            fh.write(text)
        reports = ["intents.md"]
        if "confusion" in report:
            with ctx.out.fs.open(ctx.out.file("confusion.png"), "wb") as fh:
                fh.write(_confusion_plot(report["confusion"], classifier.labels))
            reports.append("confusion.png")
        return StageResult(counts={"examples": len(examples), "routes": len(classifier.labels)},
                           metrics={"intents.cv_accuracy": report["cv_accuracy"]} if "cv_accuracy" in report else {},
                           info={"enabled": True, "classifier": ctx.layout.url(f"{ctx.layout.stage_dir(self.name)}/{CLASSIFIER_DIR}"),
                                 "labels": classifier.labels, "report": report},
                           reports=reports)  # fmt: skip


def _report_text(report: dict[str, Any], labels: list[str]) -> str:
    lines = ["| route | labelled prompts |", "|---|---|", *(f"| {k} | {v} |" for k, v in report["examples"].items())]
    if "cv_accuracy" in report:
        lines += ["", f"{report['folds']}-fold cross-validated accuracy: {report['cv_accuracy']:.3f}", "",
                  "| true \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels),
                  *(f"| {labels[i]} | " + " | ".join(str(c) for c in row) + " |" for i, row in enumerate(report["confusion"]))]  # fmt: skip
    else:
        lines += ["", "too few prompts per route to cross-validate (2 each at least)"]
    return "\n".join(lines) + "\n"


def _confusion_plot(confusion: list[list[int]], labels: list[str]) -> bytes:
    from domainllm.plots import subplots, to_png

    fig, axes = subplots(1, 1, figsize=(1.2 * len(labels) + 2, 1.0 * len(labels) + 1.5), squeeze=False)
    ax = axes[0][0]
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=40, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, row in enumerate(confusion):
        for j, c in enumerate(row):
            ax.text(j, i, str(c), ha="center", va="center", fontsize=8)
    ax.set_title("intent routing, out-of-fold", fontsize=9)
    return to_png(fig)
