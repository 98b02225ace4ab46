"""Trainer callbacks: curves for MLflow, and progress lines for the Airflow task log."""

from __future__ import annotations

import logging
import time

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class CurveRecorder(TrainerCallback):
    """Keeps loss, learning rate, grad norm, eval loss, tokens/s and peak memory per step
    (logged to MLflow by the stage runner) and logs a progress line every `every_s` seconds.
    Tokens come from the trainer's `num_input_tokens_seen` when it counts them (variable
    length batches: SFT, DPO), else `tokens_per_step` per optimizer step (packed CPT)."""

    def __init__(self, tokens_per_step: int | None = None, every_s: float = 10.0) -> None:
        self.tokens_per_step = tokens_per_step
        self.every_s = every_s
        self.curves: dict[str, list[tuple[int, float]]] = {}
        self._t0 = self._last = time.monotonic()
        self._start: tuple[int, float] | None = None

    def tokens_seen(self, state) -> float:
        if self.tokens_per_step is None:
            return float(getattr(state, "num_input_tokens_seen", 0) or 0)
        return float(state.global_step * self.tokens_per_step)

    def _add(self, name: str, step: int, value: float) -> None:
        self.curves.setdefault(name, []).append((step, float(value)))

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D401 - HF signature
        if not logs or not state.is_world_process_zero:
            return
        step = state.global_step
        for key, name in (("loss", "train_loss"), ("learning_rate", "learning_rate"), ("grad_norm", "grad_norm"),
                          ("eval_loss", "eval_loss")):  # fmt: skip
            if key in logs:
                self._add(name, step, logs[key])
        seen = self.tokens_seen(state)
        if self._start is None:
            self._start, self._t0 = (step, seen), time.monotonic()
        elapsed = time.monotonic() - self._t0
        if step > self._start[0] and elapsed > 0:
            self._add("tokens_per_s", step, (seen - self._start[1]) / elapsed)
        peak = _peak_memory_mb()
        if peak is not None:
            self._add("peak_memory_mb", step, peak)
        now = time.monotonic()
        if now - self._last >= self.every_s or step == state.max_steps or "eval_loss" in logs:
            self._last = now
            shown = {k: round(v, 5) for k, v in logs.items() if isinstance(v, float)}
            log.info("step %d/%d %s", step, state.max_steps, shown)


def _peak_memory_mb() -> float | None:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quiet(trainer):
    """Our CurveRecorder writes the progress lines; HF's printer and progress bars (and the
    dataset/weight-loading bars) would fill the task log with duplicates."""
    import datasets
    from transformers import PrinterCallback, ProgressCallback
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    return trainer
