"""Training and fine-tuning loop for the music transformer (CPU-friendly, seeded)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from musegen.engines.symbolic.data import TokenCorpus, WindowSampler
from musegen.engines.symbolic.model import ModelConfig, MusicTransformer


@dataclass
class TrainConfig:
    steps: int = 3000
    batch: int = 16
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.05
    clip: float = 1.0
    eval_every: int = 200
    eval_batches: int = 8
    patience: int = 0          # evaluations without improvement before stopping (0 = never)
    time_limit_s: float = 0.0  # stop after this long (0 = no limit)
    seed: int = 0
    threads: int = 0           # torch threads (0 = leave as is)
    bf16: bool = False         # bfloat16 autocast (about 1.8x faster on CPUs with AMX/AVX512-BF16)
    device: str = "cpu"        # "cuda" on a GPU (the checkpoint is saved for the CPU either way)


def _lr(step: int, tc: TrainConfig) -> float:
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    t = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.min_lr + 0.5 * (tc.lr - tc.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def _split_batch(arr: np.ndarray, pad_id: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(arr[:, :-1].copy())
    y = torch.from_numpy(arr[:, 1:].copy())
    x[x < 0] = pad_id
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: MusicTransformer, sampler: WindowSampler, batches: int, batch: int, pad_id: int,
             device: str = "cpu") -> float:
    """Mean token cross-entropy (nats) on fixed-seed windows."""
    model.eval()
    rng_state = sampler.rng.bit_generator.state
    sampler.rng = np.random.default_rng(1234)
    total, count = 0.0, 0
    for _ in range(batches):
        x, y = _split_batch(sampler.batch(batch), pad_id, device)
        _, loss = model(x, y)
        n = int((y != -100).sum())
        total += float(loss) * n
        count += n
    sampler.rng.bit_generator.state = rng_state
    model.train()
    return total / max(1, count)


def train(
    tokenizer,
    train_corpus: TokenCorpus,
    valid_corpus: TokenCorpus | None,
    out_dir: str | Path,
    *,
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
    init: MusicTransformer | None = None,
    meta: dict | None = None,
    log: Callable[[dict], None] | None = None,
    export: Callable[[MusicTransformer], MusicTransformer] | None = None,
) -> dict:
    """Train (or fine-tune ``init``) and save the best checkpoint by validation loss.

    ``export`` turns the model being trained into the one saved (adapters
    merge into their base weights there).  Returns a summary dict (steps,
    best validation loss, tokens/s, elapsed).
    """
    from musegen.engines.symbolic.checkpoint import save_checkpoint

    tc = replace(train_cfg) if train_cfg is not None else TrainConfig()
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    model = init if init is not None else MusicTransformer(model_cfg or ModelConfig(vocab_size=len(tokenizer)))
    cfg = model.cfg
    model.to(tc.device)
    device_type = torch.device(tc.device).type
    pad_id = tokenizer.vocab["PAD_None"]
    # whether the model sees drum parts: the engine lets it continue a sketch's drums only then
    drum_id = tokenizer.vocab.get("Program_-1")
    learned_drums = drum_id is not None and bool((train_corpus.ids == drum_id).any())
    tr = WindowSampler(tokenizer, train_corpus, cfg.context, seed=tc.seed)
    va = WindowSampler(tokenizer, valid_corpus, cfg.context, seed=tc.seed + 1, transpose=False) \
        if valid_corpus is not None and len(valid_corpus) else None
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.dim() >= 2]
    no_decay = [p for n, p in trainable if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, betas=(0.9, 0.98))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.jsonl"
    best, bad_evals, tokens, t0 = float("inf"), 0, 0, time.time()
    history = []
    model.train()
    step = 0
    with open(log_path, "a") as logf:
        def emit(row: dict) -> None:
            logf.write(json.dumps(row) + "\n")
            logf.flush()
            history.append(row)
            if log is not None:
                log(row)

        for step in range(tc.steps):
            for g in opt.param_groups:
                g["lr"] = _lr(step, tc)
            x, y = _split_batch(tr.batch(tc.batch), pad_id, tc.device)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=tc.bf16):
                _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
            opt.step()
            tokens += int((y != -100).sum())
            if step == 10:
                t10 = time.time()  # past the first steps' warm-up (allocations, kernel choice)
            if step == 60 and tc.time_limit_s:
                # fit the cosine schedule to the time budget, measured on steps 11-60
                per_step = (time.time() - t10) / 50
                tc.steps = max(step + 2, min(tc.steps, int((tc.time_limit_s - (time.time() - t0)) / per_step) + step))
            last = step == tc.steps - 1 or (tc.time_limit_s and time.time() - t0 > tc.time_limit_s)
            if step % 20 == 0:
                emit({"step": step, "train_loss": round(loss.item(), 4), "lr": round(_lr(step, tc), 6),
                      "tokens_per_s": round(tokens / (time.time() - t0), 1), "elapsed_s": round(time.time() - t0, 1)})
            if (step and step % tc.eval_every == 0) or last:
                vl = evaluate(model, va, tc.eval_batches, tc.batch, pad_id, tc.device) if va is not None \
                    else loss.item()
                emit({"step": step, "valid_loss": round(vl, 4), "elapsed_s": round(time.time() - t0, 1)})
                if vl < best - 1e-4:
                    best, bad_evals = vl, 0
                    save_checkpoint(export(model) if export else model, tokenizer, out, {
                        **(meta or {}), "train": asdict(tc), "step": step, "valid_loss": vl,
                        "train_tokens": tokens, "drums": learned_drums})
                else:
                    bad_evals += 1
                    if tc.patience and bad_evals >= tc.patience:
                        emit({"step": step, "stopped": "validation loss stopped improving"})
                        break
            if last:
                break
    elapsed = time.time() - t0
    return {"steps": step + 1, "best_valid_loss": best, "tokens": tokens,
            "tokens_per_s": tokens / max(elapsed, 1e-9), "elapsed_s": elapsed, "history": history}
