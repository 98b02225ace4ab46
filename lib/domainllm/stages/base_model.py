"""Stage `base_model`: name the base model, or build the tiny demo one."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from domainllm.artifacts.fs import folder_fingerprint, join, url_to_fs
from domainllm.data.docs import iter_docs
from domainllm.data.mix.mixer import is_heldout
from domainllm.data.records import InputError
from domainllm.plots import subplots, to_png
from domainllm.spec import Spec
from domainllm.spec.base_model import DemoBaseModel
from domainllm.stages.base import StageContext, StageResult

log = logging.getLogger(__name__)

MODEL_DIR = "model"


class BaseModelStage:
    name: ClassVar[str] = "base_model"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("ingest",)

    def required(self, spec: Spec) -> tuple[str, ...]:
        return ("ingest",) if spec.base_model.demo is not None else ()

    def config(self, spec: Spec) -> dict[str, Any]:
        mix = spec.data.mix
        return {**spec.base_model.model_dump(mode="json"), "heldout": {"seed": mix.seed, "fraction": mix.heldout_fraction}}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        if spec.base_model.path is None:
            return {}
        fs, root = url_to_fs(spec.base_model.path)
        if not fs.exists(join(root, "config.json")):
            raise InputError(
                f"base_model.path {spec.base_model.path} is not a Hugging Face model folder "
                "(no config.json); point it at a folder written by save_pretrained"
            )
        return {"base_model": folder_fingerprint(spec.base_model.path)}

    def run(self, ctx: StageContext) -> StageResult:
        bm = ctx.spec.base_model
        if bm.demo is None:
            return StageResult(info={"model_path": bm.path, "built": False})
        return self._build_demo(ctx, bm.demo)

    def _build_demo(self, ctx: StageContext, cfg: DemoBaseModel) -> StageResult:
        from domainllm.demo.tiny_llama import build_model, pack, pretrain
        from domainllm.demo.tokenizer import train_tokenizer

        ingest_dir = ctx.upstream_dir("ingest")
        fs = ctx.layout.fs
        tok_sources = cfg.tokenizer_sources or cfg.corpus_sources

        tokenizer = train_tokenizer(
            _capped(iter_docs(fs, ingest_dir, sources=tok_sources), cfg.max_train_chars),
            cfg.vocab_size,
            model_max_length=max(2048, cfg.seq_len),  # the model's context, as in build_model
        )
        # the documents the mix holds out for measuring forgetting are not pretrained on either
        docs = (d for d in iter_docs(fs, ingest_dir, sources=cfg.corpus_sources) if not is_heldout(d["id"], ctx.spec.data.mix))
        corpus = list(_capped(docs, cfg.max_train_chars))
        if not corpus:
            raise InputError(
                f"base_model.demo.corpus_sources {list(cfg.corpus_sources)} gave no documents in the ingest output"
            )
        # Whole documents are longer than the context; they are packed into blocks below.
        ids = tokenizer(corpus, add_special_tokens=False, verbose=False)["input_ids"]
        blocks = pack(ids, tokenizer.eos_token_id, cfg.seq_len)
        log.info("base_model: %d documents -> %d blocks of %d tokens", len(corpus), len(blocks), cfg.seq_len)

        model = build_model(cfg, tokenizer)
        result = pretrain(model, blocks, cfg)
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        with ctx.out.local_dir(MODEL_DIR) as model_dir:
            model.save_pretrained(model_dir, safe_serialization=True)
            tokenizer.save_pretrained(model_dir)
        with ctx.out.fs.open(ctx.out.file("loss.png"), "wb") as fh:
            fh.write(_loss_plot(result.losses))

        return StageResult(
            counts={"documents": len(corpus), "blocks": len(blocks), "train_tokens": result.train_tokens,
                    "params": result.params, "vocab_size": len(tokenizer)},  # fmt: skip
            metrics={
                "loss_first": result.losses[0][1],
                "loss_last": result.losses[-1][1],
                "heldout_loss_before": result.eval_loss_before,
                "heldout_loss_after": result.eval_loss_after,
                "tokens_per_s": result.tokens_per_s,
            },
            info={"model_path": ctx.layout.url(join(ctx.layout.stage_dir(self.name), MODEL_DIR)), "built": True},
            reports=["loss.png"],
            curves={"train_loss": result.losses},
        )


def _capped(rows, max_chars: int):
    total = 0
    for row in rows:
        if total >= max_chars:
            return
        text = row["text"][: max_chars - total]
        total += len(text)
        yield text


def _loss_plot(losses: list[tuple[int, float]]) -> bytes:
    fig, ax = subplots(figsize=(6, 3.5))
    ax.plot([s for s, _ in losses], [v for _, v in losses])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("demo base model pretraining")
    return to_png(fig)
