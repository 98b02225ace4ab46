"""The intent classifier: multinomial logistic regression over the knowledge base's sentence
embeddings (the gateway embeds each question once, for both routing and retrieval). Saved
with skops (no pickle: loading it runs no code), its labels and embedding model beside it."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

MODEL_FILE = "classifier.skops"
META_FILE = "intents.json"


def load_examples(path: str, routes: set[str]) -> list[tuple[str, str]]:
    """(text, intent) from a JSONL of {"text", "intent"}; ValueError naming the line otherwise."""
    import fsspec

    from domainllm.evals.jsonl import json_objects

    out = []
    with fsspec.open(path, "rt", encoding="utf-8") as fh:
        for n, row in json_objects(fh, path, ValueError):
            if not isinstance(row.get("text"), str) or not row["text"].strip():
                raise ValueError(f"{path} line {n}: needs a non-empty string `text`")
            if row.get("intent") not in routes:
                raise ValueError(f"{path} line {n}: `intent` {row.get('intent')!r} is not a route ({sorted(routes)})")
            out.append((row["text"], row["intent"]))
    return out


@dataclass
class IntentClassifier:
    model: Any
    labels: list[str]
    embedding: str
    """The embedding model folder its features come from."""

    def predict(self, vectors: Any) -> list[tuple[str, float]]:
        """(intent, probability) per row of `vectors`."""
        probs = self.model.predict_proba(vectors)
        best = probs.argmax(axis=1)
        return [(self.labels[i], float(p[i])) for i, p in zip(best, probs, strict=True)]

    def save(self, folder: str) -> None:
        import skops.io

        os.makedirs(folder, exist_ok=True)
        skops.io.dump(self.model, os.path.join(folder, MODEL_FILE))
        with open(os.path.join(folder, META_FILE), "w") as fh:
            json.dump({"labels": self.labels, "embedding": self.embedding}, fh)

    @classmethod
    def load(cls, folder: str) -> IntentClassifier:
        import skops.io

        path = os.path.join(folder, MODEL_FILE)
        untrusted = skops.io.get_untrusted_types(file=path)
        if untrusted:  # a plain logistic regression has none; anything else was not written by us
            raise ValueError(f"{path} holds types a logistic regression does not ({untrusted}); refusing to load it")
        with open(os.path.join(folder, META_FILE)) as fh:
            meta = json.load(fh)
        return cls(skops.io.load(path), meta["labels"], meta["embedding"])


def train(vectors: Any, intents: list[str], *, regularization: float, embedding: str) -> tuple[IntentClassifier, dict[str, Any]]:
    """The classifier on all examples, and a report of how well it generalises: stratified
    k-fold accuracy and the confusion matrix of the out-of-fold predictions."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = sorted(set(intents))
    y = np.asarray([labels.index(i) for i in intents])
    counts = Counter(intents)
    folds = min(5, min(counts.values()))
    report: dict[str, Any] = {"examples": dict(sorted(counts.items())), "folds": folds}
    make = lambda: LogisticRegression(C=regularization, max_iter=2000)  # noqa: E731
    if folds >= 2:
        predicted = cross_val_predict(make(), vectors, y, cv=StratifiedKFold(folds, shuffle=True, random_state=0))
        report["cv_accuracy"] = float((predicted == y).mean())
        report["confusion"] = confusion_matrix(y, predicted, labels=list(range(len(labels)))).tolist()
    model = make().fit(vectors, y)
    return IntentClassifier(model, labels, embedding), report
