"""What a recipe returns to its stage: curves for MLflow, headline metrics and counts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainResult:
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    resumed_from: str | None = None
    resolved: dict = field(default_factory=dict)
    """The TrainingArguments (and DeepSpeed config) the run resolved to."""


_HISTORY_KEYS = {"loss": "train_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm", "eval_loss": "eval_loss"}


def history_curves(log_history: list[dict], extra: tuple[str, ...] = ()) -> dict[str, list[tuple[int, float]]]:
    """Curves from the trainer's history, which survives a resume (it is in the checkpoint):
    the steps before a kill are in it too. `extra` adds more logged keys under their own
    names (`/` becomes `.` for MLflow)."""
    keys = {**_HISTORY_KEYS, **{k: k.replace("/", ".") for k in extra}}
    curves: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        for key, name in keys.items():
            if key in entry and "step" in entry:
                curves.setdefault(name, []).append((int(entry["step"]), float(entry[key])))
    return curves


def finish(trainer, output, recorder, *, resumed_from: str | None, has_eval: bool, extra: tuple[str, ...] = ()) -> TrainResult:
    """Curves, metrics (first/last/final losses, tokens/s) and counts after `trainer.train()`."""
    curves = {**recorder.curves, **history_curves(trainer.state.log_history, extra)}
    result = TrainResult(curves=curves, resumed_from=resumed_from, resolved=trainer.args.to_dict())
    result.metrics["train_loss"] = float(output.training_loss)
    if has_eval:  # the final evaluation: eval loss and, for DPO, the eval rewards
        for key, value in trainer.evaluate().items():
            if key == "eval_loss" or "rewards/" in key:
                result.metrics[key.replace("/", ".")] = float(value)
    losses = curves.get("train_loss", [])
    if losses:
        result.metrics.update(train_loss_first=losses[0][1], train_loss_last=losses[-1][1])
    tps = recorder.curves.get("tokens_per_s", [])
    if tps:
        result.metrics["tokens_per_s"] = tps[-1][1]
    result.counts["steps"] = int(trainer.state.global_step)
    result.counts["train_tokens"] = int(recorder.tokens_seen(trainer.state))
    return result
