"""Train CLUTCH, stage by stage. Read top to bottom; ``train_iter`` is a generator yielding progress
(the GUI and the CLI share it), ``main`` is the command line.

    python -m engine.training.train_clutch --data CORPUS --out runs/clutch --stage shift
    python -m engine.training.train_clutch --data CORPUS --out runs/clutch --stage pretrain
    python -m engine.training.train_clutch --data CORPUS --out runs/clutch --stage refine
    python -m engine.training.train_clutch --data CORPUS --out runs/clutch --stage instruct

Stages (CLUTCH §4): ``shift`` trains the tokenizer (or, with ``--tokenizer pd|standard``, a Table 4
baseline); ``pretrain`` trains the T5 with cross-entropy on plain text->motion / motion->text pairs
and masked motion / masked text reconstruction; ``refine`` adds the Gumbel-Softmax reconstruction
loss through the frozen SHIFT decoders (L = alpha L_LM + lambda L_rec, masked samples alpha = 0);
``instruct`` fine-tunes on the multi-task instruction templates. Each LM stage starts from the
previous stage's model (``instruct`` from ``refine`` if present, else ``pretrain``; ``--init``
overrides, e.g. for the PT + IFT ablation). Run folder:

    OUT/<stage>/model/        what the pipeline loads (safetensors + JSON config; LM + vocabulary)
    OUT/<stage>/train_state/  weights, optimizer, step, RNG states: the run resumes from here
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from engine.clutch.baselines import tokenizer_config  # noqa: E402
from engine.clutch.instructions import TASKS, make_instruction, template_texts  # noqa: E402
from engine.clutch.language_model import LMConfig, MotionLM, load_lm, save_lm  # noqa: E402
from engine.clutch.refine import RefineConfig, freeze, keypoints_from_rep, refine_losses  # noqa: E402
from engine.clutch.shift import ShiftConfig, ShiftTokenizer, load_shift, save_shift  # noqa: E402
from engine.clutch.vocab import MotionVocab, build_vocab  # noqa: E402
from engine.diffusion.checkpoint import (CheckpointError, load_tensors, save_tensors,  # noqa: E402
                                         write_folder_atomically)
from engine.diffusion.representation import params_to_tensor  # noqa: E402

STAGES = ("shift", "pretrain", "refine", "instruct")
LM_STAGES = STAGES[1:]
# 1 thread: on the shared 2-core machine 2 threads were 5-25x slower whenever another process held
# a core (OpenMP spin); --threads 2 on an idle machine.
TRAIN_THREADS = 1


@dataclass(frozen=True)
class StageConfig:
    steps: int = 2000
    batch: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500
    device: str = "auto"
    threads: int = TRAIN_THREADS
    vocab_margin: int = 200  # pretrain only: unused frequent words kept in the text vocabulary

    @classmethod
    def from_dict(cls, d: dict) -> "StageConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"stage config has unknown fields {unknown}")
        return cls(**d)


DEFAULTS = {
    "shift": StageConfig(steps=6000, batch=64, lr=2e-4, warmup=200, weight_decay=0.0),
    "pretrain": StageConfig(steps=4000, batch=32, lr=5e-4, warmup=200),
    "refine": StageConfig(steps=1000, batch=32, lr=1e-4, warmup=50),
    "instruct": StageConfig(steps=2000, batch=32, lr=2e-4, warmup=100),
}


# --- data ------------------------------------------------------------------------------------
class ClipData:
    """One corpus split as tensors: motion x (N, T, 2, 99) raw, betas (N, 2, 10), captions per clip
    (the non-empty whole-motion texts of all levels)."""

    def __init__(self, x: torch.Tensor, betas: torch.Tensor, captions: list[list[str]]):
        if x.dim() != 4 or x.shape[2:] != (2, 99):
            raise ValueError(f"x must be (N, T, 2, 99); got {tuple(x.shape)}")
        if len(captions) != x.shape[0] or betas.shape != (x.shape[0], 2, 10):
            raise ValueError("captions and betas need one entry per clip")
        self.x, self.betas, self.captions = x, betas, captions
        self.codes: dict[str, torch.Tensor] | None = None  # {stream: (N, steps)}, see encode_with

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def frames(self) -> int:
        return self.x.shape[1]

    @torch.no_grad()
    def encode_with(self, shift: ShiftTokenizer, chunk: int = 256) -> None:
        parts = [shift.encode(self.x[i:i + chunk]) for i in range(0, len(self), chunk)]
        self.codes = {s: torch.cat([p[s] for p in parts]) for s in shift.streams}

    def clip_codes(self, i: int) -> dict[str, torch.Tensor]:
        return {s: c[i] for s, c in self.codes.items()}


def load_split(data_dir: str | Path, split: str = "train") -> ClipData:
    """A corpus folder (engine.data.corpus layout) -> ClipData of one split."""
    from engine.data.corpus import Corpus
    corpus = Corpus(data_dir)
    a = corpus.arrays(split, keys=("transl", "global_orient", "hand_pose", "betas"))
    if a["transl"].shape[0] == 0:
        raise ValueError(f"{data_dir}: the {split!r} split is empty")
    x = params_to_tensor(*(torch.from_numpy(a[k]) for k in ("global_orient", "hand_pose", "transl")))
    captions = [[t["text"].strip() for t in levels if t.get("text", "").strip()] for levels in corpus.texts(split)]
    empty = [i for i, c in enumerate(captions) if not c]
    if empty:
        raise ValueError(f"{data_dir}: clip {empty[0]} of split {split!r} has no caption text")
    return ClipData(x, torch.from_numpy(a["betas"]), captions)


# --- optimisation helpers ---------------------------------------------------------------------
def lr_at(step: int, cfg: StageConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def make_optimizer(model: torch.nn.Module, cfg: StageConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))


def save_train_state(folder: Path, model, opt, step: int, gen: torch.Generator, extra: dict,
                     vocab: MotionVocab | None = None) -> Path:
    """Everything needed to continue: weights, optimizer, step, RNG states (+ the vocabulary)."""
    from engine.clutch.language_model import _dedupe
    state, aliases = _dedupe(model.state_dict())
    opt_state = opt.state_dict()
    opt_tensors, opt_meta = {}, {"param_groups": opt_state["param_groups"], "state": {}}
    for pid, st in opt_state["state"].items():
        opt_meta["state"][str(pid)] = {k: v for k, v in st.items() if not torch.is_tensor(v)}
        opt_tensors.update({f"{pid}.{k}": v for k, v in st.items() if torch.is_tensor(v)})

    def write(tmp: Path):
        save_tensors(tmp / "model.safetensors", state)
        save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        save_tensors(tmp / "rng.safetensors", {"data": gen.get_state(), "torch": torch.get_rng_state()})
        if vocab is not None:
            vocab.save(tmp)
        (tmp / "state.json").write_text(json.dumps({"step": step, "aliases": aliases, "optimizer": opt_meta,
                                                    **extra}, indent=1))
    return write_folder_atomically(folder, write)


def load_train_state(folder: Path, model, opt, gen: torch.Generator) -> int:
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder / 'state.json'}: cannot read training state ({e})") from None
    weights = load_tensors(folder / "model.safetensors")
    for k, src in state.get("aliases", {}).items():
        weights[k] = weights[src]
    model.load_state_dict(weights)
    tensors = load_tensors(folder / "optimizer.safetensors")
    opt_state = {"param_groups": state["optimizer"]["param_groups"], "state": {}}
    for pid, extra in state["optimizer"]["state"].items():
        st = dict(extra)
        st.update({k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == pid})
        opt_state["state"][int(pid)] = st
    opt.load_state_dict(opt_state)
    rng = load_tensors(folder / "rng.safetensors")
    gen.set_state(rng["data"])
    torch.set_rng_state(rng["torch"])
    return int(state["step"])


def _device_and_threads(cfg: StageConfig):
    from engine.api import resolve_device
    device = resolve_device(cfg.device)
    return device, (cfg.threads if device.type == "cpu" else None)


# --- stage 1: SHIFT --------------------------------------------------------------------------
def shift_iter(data: ClipData, out_dir: str | Path, shift_cfg: ShiftConfig = ShiftConfig(),
               cfg: StageConfig = DEFAULTS["shift"], resume: bool = True, meta: dict | None = None) -> Iterator[dict]:
    """Train a tokenizer; yield {"stage", "step", "of", "loss", "stats" (usage / perplexity / resets
    per codebook), "lr", "samples_per_s"} per step (+ "checkpoint")."""
    from engine.threads import torch_threads
    out_dir = Path(out_dir)
    device, threads = _device_and_threads(cfg)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = ShiftTokenizer(shift_cfg)
    model.set_stats(data.x)
    model.to(device).train()
    x_all = data.x.to(device)
    opt = make_optimizer(model, cfg)
    step, state_dir = 0, out_dir / "train_state"
    if resume and (state_dir / "state.json").is_file():
        step = load_train_state(state_dir, model, opt, gen)

    def checkpoint() -> Path:
        save_train_state(state_dir, model, opt, step, gen, {"shift_config": shift_cfg.to_dict(),
                                                             "train_config": asdict(cfg)})
        info = {"stage": "shift", "steps": step, "train_config": asdict(cfg), "train_clips": len(data)}
        return save_shift(out_dir / "model", model, {**info, **(meta or {})})

    with torch_threads(threads):
        t0, seen = time.perf_counter(), 0
        while step < cfg.steps:
            idx = torch.randint(0, len(data), (cfg.batch,), generator=gen).to(device)
            out = model(x_all[idx])
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            out["losses"]["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            seen += cfg.batch
            item = {"stage": "shift", "step": step, "of": cfg.steps,
                    "loss": {k: float(v.detach()) for k, v in out["losses"].items()}, "stats": out["stats"],
                    "lr": lr_at(step - 1, cfg), "samples_per_s": seen / (time.perf_counter() - t0)}
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                item["checkpoint"] = str(checkpoint())
            yield item


# --- LM samples -------------------------------------------------------------------------------
def mask_ids(ids: list[int], keep, mask_id: int, ratio: float, rng: random.Random) -> list[int]:
    """``ratio`` of the positions whose id is not kept (``keep(id)`` False) -> ``mask_id``."""
    out = list(ids)
    cand = [i for i, t in enumerate(ids) if not keep(t)]
    for i in rng.sample(cand, max(1, int(round(ratio * len(cand))))) if cand else []:
        out[i] = mask_id
    return out


def pretrain_sample(vocab: MotionVocab, caption: str, codes: dict, rng: random.Random) -> tuple[list[int], list[int]]:
    """Plain pairs (no instruction): t2m, m2t, masked motion, masked text."""
    r = rng.random()
    motion = vocab.motion_ids(codes)
    if r < 0.35:
        return vocab.encode_text(caption), motion
    if r < 0.70:
        return motion, vocab.encode_text(caption, eos=True)
    if r < 0.85:
        return mask_ids(motion, lambda t: not vocab.is_motion(t), vocab.motion_mask_id, 0.3, rng), motion
    text = vocab.encode_text(caption)
    return mask_ids(text, lambda t: False, vocab.mask_id, 0.15, rng), text + [vocab.eos_id]


def collate(samples: list[tuple[list[int], list[int]]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """-> input_ids (B, L), attention_mask (B, L), labels (B, M) padded with -100."""
    L = max(len(s[0]) for s in samples)
    M = max(len(s[1]) for s in samples)
    inp = torch.full((len(samples), L), pad_id, dtype=torch.long)
    lab = torch.full((len(samples), M), -100, dtype=torch.long)
    for i, (a, b) in enumerate(samples):
        inp[i, :len(a)] = torch.tensor(a)
        lab[i, :len(b)] = torch.tensor(b)
    return {"input_ids": inp.to(device), "attention_mask": (inp != pad_id).to(device), "labels": lab.to(device)}


def build_clutch_vocab(data: ClipData, codebook_size: int, margin: int) -> MotionVocab:
    texts = [c for cs in data.captions for c in cs] + template_texts()
    return MotionVocab(build_vocab(texts, margin), codebook_size)


# --- stages 2-4: the language model ------------------------------------------------------------
def lm_iter(stage: str, data: ClipData, out_dir: str | Path, cfg: StageConfig | None = None,
            lm_cfg: LMConfig = LMConfig(), refine_cfg: RefineConfig = RefineConfig(), init: str | Path | None = None,
            init_t5: str | Path | None = None, resume: bool = True, meta: dict | None = None,
            hands=None) -> Iterator[dict]:
    """Train one LM stage in ``out_dir/<stage>``; yield {"stage", "step", "of", "loss", "lr",
    "samples_per_s"} per step (+ "checkpoint"). ``out_dir/shift/model`` must exist."""
    from engine.threads import torch_threads
    if stage not in LM_STAGES:
        raise ValueError(f"stage must be one of {LM_STAGES}; got {stage!r}")
    cfg = cfg or DEFAULTS[stage]
    out_dir = Path(out_dir)
    stage_dir, state_dir = out_dir / stage, out_dir / stage / "train_state"
    device, threads = _device_and_threads(cfg)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)

    shift, _ = load_shift(out_dir / "shift" / "model", device)
    freeze(shift)
    if shift.config.layout != "shift":
        raise ValueError(f"the LM needs a SHIFT tokenizer; {out_dir / 'shift' / 'model'} is a {shift.config.layout!r} one")
    with torch_threads(threads):
        data.encode_with(shift.cpu())
    shift.to(device)

    if stage == "pretrain":
        if init is not None:
            lm, _ = load_lm(init)
        else:
            vocab = (MotionVocab.load(state_dir) if resume and (state_dir / "state.json").is_file()
                     else build_clutch_vocab(data, shift.config.codebook_size, cfg.vocab_margin))
            lm = (MotionLM.from_pretrained_t5(init_t5, vocab, max_input_tokens=lm_cfg.max_input_tokens,
                                              max_text_tokens=lm_cfg.max_text_tokens,
                                              max_motion_steps=lm_cfg.max_motion_steps)
                  if init_t5 else MotionLM(lm_cfg, vocab))
    else:
        if init is None:
            prev = "pretrain" if stage == "refine" else ("refine" if (out_dir / "refine" / "model").is_dir() else "pretrain")
            init = out_dir / prev / "model"
        lm, _ = load_lm(init)
    vocab = lm.vocab
    if vocab.codebook_size != shift.config.codebook_size:
        raise ValueError(f"LM motion vocabulary has {vocab.codebook_size} codes per stream; SHIFT has "
                         f"{shift.config.codebook_size}")
    lm.to(device).train()
    opt = make_optimizer(lm, cfg)
    step = 0
    if resume and (state_dir / "state.json").is_file():
        step = load_train_state(state_dir, lm, opt, gen)
        rng = random.Random(f"{cfg.seed}:{step}")
    if stage == "refine" and hands is None:
        from engine.hands import load_hands
        hands = load_hands("default", device=device)

    def checkpoint() -> Path:
        save_train_state(state_dir, lm, opt, step, gen, {"stage": stage, "lm_config": lm.config.to_dict(),
                                                         "train_config": asdict(cfg)}, vocab)
        info = {"stage": stage, "prompt_style": "instruct" if stage == "instruct" else "plain", "steps": step,
                "train_config": asdict(cfg), "train_clips": len(data), "init": str(init) if init else None,
                "frames": data.frames}
        if stage == "refine":
            info["refine_config"] = asdict(refine_cfg)
        return save_lm(stage_dir / "model", lm, {**info, **(meta or {})})

    with torch_threads(threads):
        t0, seen = time.perf_counter(), 0
        while step < cfg.steps:
            idx = torch.randint(0, len(data), (cfg.batch,), generator=gen).tolist()
            caps = [rng.choice(data.captions[i]) for i in idx]
            if stage == "pretrain":
                samples = [pretrain_sample(vocab, c, data.clip_codes(i), rng) for i, c in zip(idx, caps)]
                b = collate(samples, vocab.pad_id, device)
                loss = {"lm": lm(**b).loss}
                loss["total"] = loss["lm"]
            elif stage == "instruct":
                samples = []
                for i, c in zip(idx, caps):
                    ins = make_instruction(vocab, rng.choice(TASKS), c, data.clip_codes(i), rng.randrange(1 << 30))
                    samples.append((ins.input_ids, ins.target_ids))
                b = collate(samples, vocab.pad_id, device)
                loss = {"lm": lm(**b).loss}
                loss["total"] = loss["lm"]
            else:  # refine: plain t2m; a share as masked prediction with alpha = 0
                samples, alpha = [], []
                for i, c in zip(idx, caps):
                    motion = vocab.motion_ids(data.clip_codes(i))
                    if rng.random() < refine_cfg.p_masked:
                        masked = mask_ids(motion, lambda t: not vocab.is_motion(t), vocab.motion_mask_id,
                                          refine_cfg.mask_ratio, rng)
                        samples.append((vocab.encode_text(c) + masked, motion))
                        alpha.append(0.0)
                    else:
                        samples.append((vocab.encode_text(c), motion))
                        alpha.append(refine_cfg.alpha)
                b = collate(samples, vocab.pad_id, device)
                ti = torch.tensor(idx)
                x_gt, betas = data.x[ti].to(device), data.betas[ti].to(device)
                with torch.no_grad():
                    j_gt = keypoints_from_rep(hands, x_gt, betas)
                loss = refine_losses(lm, shift, hands, b["input_ids"], b["attention_mask"], b["labels"], x_gt,
                                     betas, j_gt, torch.tensor(alpha, device=device), refine_cfg)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            loss["total"].backward()
            torch.nn.utils.clip_grad_norm_(lm.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            seen += cfg.batch
            item = {"stage": stage, "step": step, "of": cfg.steps,
                    "loss": {k: float(v.detach()) for k, v in loss.items()},
                    "lr": lr_at(step - 1, cfg), "samples_per_s": seen / (time.perf_counter() - t0)}
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                item["checkpoint"] = str(checkpoint())
            yield item


def train_iter(stage: str, data: ClipData, out_dir: str | Path, cfg: StageConfig | None = None,
               shift_cfg: ShiftConfig = ShiftConfig(), lm_cfg: LMConfig = LMConfig(),
               refine_cfg: RefineConfig = RefineConfig(), tokenizer: str = "shift", **kwargs) -> Iterator[dict]:
    """One stage's progress generator. ``tokenizer`` (shift stage): 'shift', 'pd' or 'standard';
    baselines go to ``out_dir/shift_<kind>`` so they never replace the SHIFT the LM uses."""
    if stage == "shift":
        sub = "shift" if tokenizer == "shift" else f"shift_{tokenizer}"
        return shift_iter(data, Path(out_dir) / sub, tokenizer_config(tokenizer, shift_cfg),
                          cfg or DEFAULTS["shift"], **kwargs)
    return lm_iter(stage, data, out_dir, cfg, lm_cfg, refine_cfg, **kwargs)


# --- command line -----------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder (meta.json, index.jsonl, shards/)")
    p.add_argument("--out", required=True, help="run folder; each stage writes OUT/<stage>/{model,train_state}")
    p.add_argument("--stage", required=True, choices=STAGES + ("all",))
    p.add_argument("--tokenizer", default="shift", choices=("shift", "pd", "standard"),
                   help="shift stage: train SHIFT or a Table 4 baseline (written to OUT/shift_<kind>)")
    p.add_argument("--config", help="JSON {'shift': {...ShiftConfig}, 'lm': {...LMConfig}, 'refine': {...}, "
                                    "'<stage>': {...StageConfig}}")
    p.add_argument("--init", help="LM stages: start from this LM model folder instead of the previous stage's")
    p.add_argument("--init-t5", help="pretrain: start from a local (Flan-)T5 folder (no download)")
    for k in ("steps", "batch", "seed", "threads"):
        p.add_argument(f"--{k}", type=int, help=f"override the stage's {k}")
    p.add_argument("--lr", type=float, help="override the stage's learning rate")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--no-resume", action="store_true", help="start the stage over")


def run(args: argparse.Namespace) -> int:
    d = json.loads(Path(args.config).read_text()) if args.config else {}
    shift_cfg = ShiftConfig.from_dict(d.get("shift", {}))
    lm_cfg = LMConfig.from_dict(d.get("lm", {}))
    refine_cfg = RefineConfig(**d.get("refine", {}))
    data = load_split(args.data, "train")
    stages = STAGES if args.stage == "all" else (args.stage,)
    for stage in stages:
        cfg = replace(DEFAULTS[stage], **d.get(stage, {}))
        cfg = replace(cfg, **{k: getattr(args, k) for k in ("steps", "batch", "seed", "threads", "lr", "device")
                              if getattr(args, k) is not None})
        kwargs = {"resume": not args.no_resume, "meta": {"data": str(args.data), "command": "hand-studio train clutch"}}
        if stage != "shift":
            kwargs.update(init=args.init, init_t5=args.init_t5 if stage == "pretrain" else None)
        print(f"[{stage}] {len(data)} clips of {data.frames} frames; {cfg}", flush=True)
        t0 = time.time()
        for item in train_iter(stage, data, args.out, cfg, shift_cfg, lm_cfg, refine_cfg, args.tokenizer, **kwargs):
            if item["step"] % cfg.log_every == 0 or "checkpoint" in item:
                txt = " ".join(f"{k} {v:.4f}" for k, v in item["loss"].items())
                if "stats" in item:
                    txt += " " + " ".join(f"{k} {v:.2f}" for k, v in item["stats"].items() if not k.startswith("reset"))
                print(f"[{stage}] step {item['step']}/{item['of']} {txt} lr {item['lr']:.2e} "
                      f"{item['samples_per_s']:.1f} samples/s {time.time() - t0:.0f}s"
                      + (f" -> {item['checkpoint']}" if "checkpoint" in item else ""), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="train_clutch", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
