"""Training and fine-tuning loop for the music transformer (CPU-friendly, seeded)."""

from __future__ import annotations

import json
import math
import os
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
    fit_to_time: bool = True   # shorten the cosine schedule to what fits in time_limit_s
    save_every: int = 0        # steps between saves of the full training state (0 = only at the end)
    until: int = 0             # stop (saving the state) once this many steps are done (0 = run to the end)
    reschedule: bool = False   # on resume, take ``steps`` from here (a shorter or longer cosine), not the state


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


STATE_DIR_NAME = "state"


def _flat_optimizer(opt) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state as named tensors plus a JSON-able rest (no pickles)."""
    sd = opt.state_dict()
    tensors, rest = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{idx}.{k}"] = v.detach().to("cpu").contiguous()
            else:
                rest[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": rest}


def _unflat_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith("opt."):
            _, idx, k = name.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    for name, v in meta["scalars"].items():
        idx, k = name.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_state(state_dir: str | Path, *, model, opt, sampler: WindowSampler, tc: "TrainConfig", info: dict) -> Path:
    """Write the full training state into ``state_dir/state`` atomically.

    Parameters
    ----------
    info : dict
        JSON-able progress: the next step, best validation loss, tokens seen,
        elapsed seconds, history rows.

    The state is written into ``state.new`` and swapped in with renames, so a
    kill at any moment leaves either the previous state or the new one.
    """
    import shutil

    from safetensors.torch import save_file

    root = Path(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    final, new, old = root / STATE_DIR_NAME, root / f"{STATE_DIR_NAME}.new", root / f"{STATE_DIR_NAME}.old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    tensors = {f"model.{k}": v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
               if k != "head.weight"}  # tied to tok.weight
    opt_tensors, opt_meta = _flat_optimizer(opt)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.device(tc.device).type == "cuda":
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = st
    save_file(tensors, str(new / "tensors.safetensors"))
    meta = {"model": model.cfg.to_dict(), "train": asdict(tc), "optimizer": opt_meta,
            "sampler_rng": sampler.rng.bit_generator.state, **info}
    (new / "state.json").write_text(json.dumps(meta, default=str) + "\n")
    for f in new.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(state_dir: str | Path) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """``(meta, tensors)`` of the state saved in ``state_dir``, or None when there is none."""
    from safetensors.torch import load_file

    root = Path(state_dir)
    for folder in (root / STATE_DIR_NAME, root / f"{STATE_DIR_NAME}.old"):  # .old: killed mid-swap
        if (folder / "state.json").is_file() and (folder / "tensors.safetensors").is_file():
            return json.loads((folder / "state.json").read_text()), load_file(str(folder / "tensors.safetensors"))
    return None


class _StopSignal:
    """SIGTERM/SIGINT set a flag the loop checks after each step (the state is saved, then it stops).

    Only a resumable run (``active``) catches them; any other run is interrupted as usual
    (KeyboardInterrupt), so a cut fine-tune is never mistaken for a finished one.
    """

    def __init__(self, active: bool = True):
        self.got: int | None = None
        self._old: dict = {}
        self.active = active

    def __enter__(self):
        import signal
        import threading

        if self.active and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.got = signum

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


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
    state_dir: str | Path | None = None,
    resume: bool = False,
    layout=None,
) -> dict:
    """Train (or fine-tune ``init``) and save the best checkpoint by validation loss.

    ``export`` turns the model being trained into the one saved (adapters
    merge into their base weights there).  With ``state_dir`` the full
    training state (weights, optimizer, schedule step, RNG states, the
    sampler's position, history) is saved there every ``save_every`` steps,
    at the end, at the time limit and on SIGTERM/SIGINT; ``resume`` goes on
    from it, step for step as if never stopped.  Returns a summary dict
    (steps, best validation loss, tokens/s, elapsed, ``stopped`` when cut
    short).  ``layout`` (a :class:`.layout.Layout`, tokenizer version 3) lays
    out the training windows with controls and infilling; validation windows
    are then plain, with every control.
    """
    from musegen.engines.symbolic.checkpoint import save_checkpoint
    from musegen.errors import ParameterError

    tc = replace(train_cfg) if train_cfg is not None else TrainConfig()
    saved = load_state(state_dir) if (resume and state_dir is not None) else None
    if resume and state_dir is not None and saved is None:
        raise ParameterError(f"--resume: no training state in {str(state_dir)!r}")
    if saved is not None:
        meta_s, tensors_s = saved
        if init is not None:
            raise ParameterError("resume continues a saved run; it cannot also start from another model")
        want = ModelConfig.from_dict(meta_s["model"], where=f"{state_dir}/state/state.json")
        if model_cfg is not None and model_cfg != want:
            diff = [k for k in want.to_dict() if want.to_dict()[k] != model_cfg.to_dict()[k]]
            raise ParameterError(f"the saved run in {str(state_dir)!r} has model.{diff[0]} "
                                 f"{want.to_dict()[diff[0]]}, not {model_cfg.to_dict()[diff[0]]}")
        model_cfg = want
        # the schedule (steps, possibly fitted to a first time limit) is the saved run's; the rest
        # (time limit, until, device, threads, save_every) belongs to this invocation
        tc = replace(tc, steps=tc.steps if tc.reschedule else int(meta_s["train"]["steps"]), lr=meta_s["train"]["lr"],
                     min_lr=meta_s["train"]["min_lr"], warmup=meta_s["train"]["warmup"],
                     batch=meta_s["train"]["batch"], seed=meta_s["train"]["seed"])
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    vocab_size = layout.vocab_size if layout is not None else len(tokenizer)
    model = init if init is not None else MusicTransformer(model_cfg or ModelConfig(vocab_size=vocab_size))
    if saved is not None:
        got = model.load_state_dict({k[len("model."):]: v for k, v in tensors_s.items() if k.startswith("model.")},
                                    strict=False)
        if [k for k in got.missing_keys if k != "head.weight"] or got.unexpected_keys:
            raise ParameterError(f"the saved run in {str(state_dir)!r} does not fit its model config "
                                 f"(missing {got.missing_keys[:3]}, unexpected {got.unexpected_keys[:3]})")
    cfg = model.cfg
    model.to(tc.device)
    device_type = torch.device(tc.device).type
    pad_id = tokenizer.vocab["PAD_None"]
    # whether the model sees drum parts: the engine lets it continue a sketch's drums only then
    drum_id = tokenizer.vocab.get("Program_-1")
    learned_drums = drum_id is not None and bool((train_corpus.ids == drum_id).any())
    tr = WindowSampler(tokenizer, train_corpus, cfg.context, seed=tc.seed, layout=layout)
    va = WindowSampler(tokenizer, valid_corpus, cfg.context, seed=tc.seed + 1, transpose=False,
                       layout=layout.plain() if layout is not None else None) \
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
    history: list[dict] = []
    first_step, elapsed_before = 0, 0.0
    if saved is not None:
        opt.load_state_dict(_unflat_optimizer(tensors_s, meta_s["optimizer"]))
        tr.rng.bit_generator.state = meta_s["sampler_rng"]
        torch.set_rng_state(tensors_s["rng.torch"])
        cuda_states = [tensors_s[k] for k in sorted(tensors_s) if k.startswith("rng.cuda.")]
        if cuda_states and device_type == "cuda":
            torch.cuda.set_rng_state_all(cuda_states)
        first_step, tokens = int(meta_s["next_step"]), int(meta_s["tokens"])
        best = float(meta_s["best"]) if meta_s["best"] is not None else float("inf")
        bad_evals, history, elapsed_before = int(meta_s["bad_evals"]), list(meta_s["history"]), \
            float(meta_s["elapsed_s"])
    model.train()
    step = first_step
    stopped = None

    def snapshot(next_step: int) -> None:
        if state_dir is None:
            return
        save_state(state_dir, model=model, opt=opt, sampler=tr, tc=tc, info={
            "next_step": next_step, "tokens": tokens, "best": best if math.isfinite(best) else None,
            "bad_evals": bad_evals, "history": history,
            "elapsed_s": elapsed_before + time.time() - t0})

    with open(log_path, "a") as logf, _StopSignal(active=state_dir is not None) as sig:
        def emit(row: dict) -> None:
            logf.write(json.dumps(row) + "\n")
            logf.flush()
            history.append(row)
            if log is not None:
                log(row)

        for step in range(first_step, tc.steps):
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
            if step == 60 and tc.time_limit_s and tc.fit_to_time and first_step == 0:
                # fit the cosine schedule to the time budget, measured on steps 11-60
                per_step = (time.time() - t10) / 50
                tc.steps = max(step + 2, min(tc.steps, int((tc.time_limit_s - (time.time() - t0)) / per_step) + step))
            out_of_time = bool(tc.time_limit_s and time.time() - t0 > tc.time_limit_s)
            cut = out_of_time or sig.got is not None or (tc.until and step + 1 >= tc.until)
            last = step == tc.steps - 1 or (out_of_time and tc.fit_to_time)
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
                        "train_tokens": tokens, "drums": learned_drums,
                        **({"extra_tokens": list(layout.extra)} if layout is not None else {})})
                else:
                    bad_evals += 1
                    if tc.patience and bad_evals >= tc.patience:
                        emit({"step": step, "stopped": "validation loss stopped improving"})
                        snapshot(tc.steps)
                        break
            if last:
                snapshot(step + 1)
                break
            if tc.save_every and (step + 1) % tc.save_every == 0:
                snapshot(step + 1)
            if cut:
                stopped = ("signal" if sig.got is not None else "time limit" if out_of_time else "until")
                emit({"step": step, "stopped": stopped, "resume_from": step + 1})
                snapshot(step + 1)
                break
    elapsed = time.time() - t0
    summary = {"steps": step + 1, "best_valid_loss": best, "tokens": tokens,
               "tokens_per_s": tokens / max(elapsed, 1e-9), "elapsed_s": elapsed, "history": history}
    if stopped:
        summary["stopped"] = stopped
    if sig.got is not None:
        summary["signal"] = sig.got  # which one, so a caller that is not resumable can pass it on
    return summary
