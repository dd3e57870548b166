"""Train the bimanual diffusion model. Read top to bottom; ``train_iter`` is a generator yielding
progress (the GUI training panel and the CLI share it), ``main`` is the command line.

    python -m engine.training.train_diffusion --data DIR --out runs/diffusion [--steps N]
        [--from MODEL_FOLDER] [--val-every N] [--progress jsonl]
    torchrun --nproc_per_node=N -m engine.training.train_diffusion ...   (data-parallel; docs/training.md)

Losses (HandX §5.1 + the kinematic terms it lacks): x0 parameters in normalised space, and through
forward kinematics of the default hand the 21 keypoints' positions, velocities and accelerations.
Per-branch condition dropout (whole / left / right independently, and all at once) trains the null
path that classifier-free guidance needs. EMA weights are what ships. Resumable: the run folder
holds ``train_state/`` (weights, EMA, optimizer, step, RNG states; safetensors + JSON) and
``model/`` (EMA weights + config, what the pipeline loads); starting over (``--no-resume``) first
moves both to ``previous/<time>/``, so a later resume never meets the old run. Fine-tuning
(``--from``) starts from a saved model's weights and normalisation stats and keeps its config. A
non-finite loss or gradient stops the run before the weights change; SIGTERM checkpoints and exits
(how a run is paused).
"""
from __future__ import annotations

import argparse
import json
import hashlib
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.diffusion.checkpoint import (CheckpointError, load_model, load_tensors, save_model,  # noqa: E402
                                         save_tensors, write_folder_atomically)
from engine.diffusion.denoiser import BRANCHES, Denoiser, DenoiserConfig  # noqa: E402
from engine.diffusion.ema import EMA  # noqa: E402
from engine.diffusion.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS  # noqa: E402
from engine.diffusion.hand_texts import mirror_text  # noqa: E402
from engine.diffusion.representation import (compute_stats, keypoints_from_rep, mirror_keypoints,  # noqa: E402
                                             mirror_rep, denormalize, normalize, params_to_tensor)
from engine.diffusion.schedulers import DDIMScheduler, SchedulerConfig  # noqa: E402
from engine.evaluation.metrics import TIPS, thumb_gaps  # noqa: E402
from engine.training import distributed  # noqa: E402

# Default config, batch 64, with the FK losses, on the 2-core CPU: idle machine 2 threads ~130
# samples/s vs 1 thread ~75; while other processes run (the usual case here) 1 thread 56-70 vs
# 2 threads 23-37 (OpenMP workers spin on the busy core). 1 is the robust default; --threads 2
# on an idle machine.
TRAIN_THREADS = 1
VAL_SEED = 0x7A1  # validation noise: one fixed draw, so val losses compare across steps and runs
DISK_MARGIN = 3  # free space needed before a run = estimated checkpoint size x this


class TrainingError(ValueError):
    """A run cannot start or go on: diverged, too little disk space, an incompatible checkpoint."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20_000
    batch: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 500
    min_lr_ratio: float = 0.1
    ema_decay: float = 0.999
    p_drop_all: float = 0.10  # all three prompts dropped (the unconditional path)
    p_drop_branch: float = 0.15  # each of whole / left / right dropped independently
    p_mirror: float = 0.0  # chance a window is swapped for its mirror image (hands, x, "left"/"right" in the texts)
    w_param: float = 1.0
    w_joints: float = 1.0  # keypoint positions, in units of 2 cm
    w_vel: float = 1.0  # keypoint velocity, in units of 5 mm / frame
    w_acc: float = 0.5  # keypoint acceleration, in units of 3 mm / frame^2
    w_tips: float = 0.0  # fingertip-to-fingertip vectors of each hand, weighted to the pairs that touch (pinches)
    contact_oversample: float = 1.0  # windows with a thumb-fingertip contact drawn up to K x as often (see contact_weights)
    grad_clip: float = 1.0
    # the skip path's learning rate over the rest's. 1: the path starts fitted (below). Started at zero
    # it needs entries near 1 that Adam's ~lr-per-step moves take ~10^4 steps to reach (v4 + a zero path
    # at lr 1.5e-4: largest entry 0.038 after 300 steps; at 10x, 0.2 after 275 and no livelier takes)
    skip_lr_mult: float = 1.0
    # --add-skip: the new path is first fitted in closed form (engine.training.skip_fit) on this many
    # training windows, its gains weighting frame-to-frame differences this much over values (0 windows:
    # start the path at zero, the base's output unchanged)
    skip_fit_windows: int = 384
    skip_fit_velocity: float = 30.0
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000
    device: str = "auto"
    threads: int = TRAIN_THREADS
    val_every: int = 0  # validation loss every N steps (0 = never; needs a val dataset)
    val_windows: int = 64  # the fixed val subset: the first N windows of the val split
    data_shards: int = 1  # the global batch = one draw per shard, each from its own generator

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"train config has unknown fields {unknown}")
        return cls(**d)


# --- data ------------------------------------------------------------------------------------
class DiffusionDataset:
    """Training windows as arrays + captions. The representation and the text token table are
    computed once here; a batch is an index lookup.

    transl (N, T, 2, 3), global_orient (N, T, 2, 3), hand_pose (N, T, 2, 45), betas (N, 2, 10),
    texts: N entries, each a dict (or Prompt) with keys text / left / right (any may be empty), or
    a list of such candidates (e.g. captions at several levels) of which each batch draws one.
    """

    def __init__(self, transl, global_orient, hand_pose, betas, texts, text_encoder=None, mirror: bool = False):
        tr, go, hp = (torch.as_tensor(np.asarray(a, np.float32)) for a in (transl, global_orient, hand_pose))
        N = tr.shape[0]
        for name, a, last in (("transl", tr, 3), ("global_orient", go, 3), ("hand_pose", hp, 45)):
            if a.dim() != 4 or a.shape[0] != N or a.shape[2:] != (2, last) or a.shape[1] != tr.shape[1]:
                raise ValueError(f"{name} must have shape (N, T, 2, {last}) with one N and T; got {tuple(a.shape)}")
            if not torch.isfinite(a).all():
                raise ValueError(f"{name} must be finite")
        self.betas = torch.as_tensor(np.asarray(betas, np.float32))
        if self.betas.shape != (N, 2, 10):
            raise ValueError(f"betas must have shape ({N}, 2, 10); got {tuple(self.betas.shape)}")
        if len(texts) != N:
            raise ValueError(f"texts must have one entry per window ({N}); got {len(texts)}")
        self.x = params_to_tensor(go, hp, tr)  # (N, T, 2, 99)
        cands = [list(t) if isinstance(t, (list, tuple)) else [t] for t in texts]
        if any(not c for c in cands):
            raise ValueError("every window needs at least one caption candidate")
        rows = [[[_field(t, b) for b in BRANCHES] for t in c] for c in cands]  # N x K_i x 3
        # the mirror image's captions: "left" <-> "right" in every text, the left/right branches swapped
        mrows = [[[mirror_text(w), mirror_text(r), mirror_text(l)] for w, l, r in c] for c in rows] if mirror else []
        if text_encoder is None:
            from engine.diffusion.text_encoder import shared_text_encoder
            text_encoder = shared_text_encoder()
        vocab = sorted({s for r in rows + mrows for c in r for s in c if s})
        index = {s: i + 1 for i, s in enumerate(vocab)}  # 0 = empty text
        K = max(len(r) for r in rows)
        self.num_candidates = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (N,)
        self.text_index = torch.tensor([[[index.get(s, 0) for s in r[min(k, len(r) - 1)]] for k in range(K)]
                                        for r in rows], dtype=torch.long)  # (N, K, 3)
        self.text_index_mirror = (torch.tensor([[[index.get(s, 0) for s in r[min(k, len(r) - 1)]] for k in range(K)]
                                                for r in mrows], dtype=torch.long) if mirror else None)
        states, mask = [], []
        for i in range(0, len(vocab), 256):
            st, m = text_encoder.encode(vocab[i:i + 256])
            states += list(st)
            mask += list(m)
        L = max([1] + [int(m.sum()) for m in mask])
        self.tokens = torch.zeros(len(vocab) + 1, L, states[0].shape[-1] if states else 384)  # (U+1, L, 384)
        self.token_mask = torch.zeros(len(vocab) + 1, L, dtype=torch.bool)
        for i, (st, m) in enumerate(zip(states, mask)):
            n = int(m.sum())
            self.tokens[i + 1, :n], self.token_mask[i + 1, :n] = st[:n], True
        self.texts = rows
        self.keypoints: torch.Tensor | None = None  # (N, T, 2, 21, 3), see compute_keypoints
        self.weights: torch.Tensor | None = None  # (N,) CPU sampling weights; None = uniform (set_contact_oversample)
        self.contact_counts: dict[str, int] | None = None  # windows with a thumb contact per finger, once counted

    @torch.no_grad()
    def compute_keypoints(self, hands, chunk: int = 64) -> None:
        """Ground-truth keypoints for the kinematic losses, once, with the hands training uses."""
        dev = hands.device
        self.keypoints = torch.cat([keypoints_from_rep(hands, self.x[i:i + chunk].to(dev), self.betas[i:i + chunk].to(dev))
                                    for i in range(0, len(self), chunk)]).to(self.x.device)

    def set_contact_oversample(self, k: float) -> dict[str, int]:
        """Draw windows by ``contact_weights`` of their ground-truth keypoints (k = 1: uniformly).
        -> windows with a thumb contact per finger (index, middle, ring, little)."""
        if self.keypoints is None:
            raise ValueError("compute_keypoints first: contact oversampling reads the ground-truth keypoints")
        contact = thumb_contacts(self.keypoints)
        self.weights = None if k == 1.0 or not contact.any() else contact_weights(contact, k)
        self.contact_counts = dict(zip(("index", "middle", "ring", "little"), contact.sum(0).tolist()))
        return self.contact_counts

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def frames(self) -> int:
        return self.x.shape[1]

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        return compute_stats(self.x)

    def to(self, device) -> "DiffusionDataset":
        for k in ("x", "betas", "text_index", "text_index_mirror", "num_candidates", "tokens", "token_mask",
                  "keypoints"):
            if getattr(self, k) is not None:
                setattr(self, k, getattr(self, k).to(device))
        return self

    def batch(self, idx: torch.Tensor, gen: torch.Generator | None = None,
              p_mirror: float = 0.0) -> dict[str, torch.Tensor]:
        """Windows ``idx`` with one caption candidate each (drawn with ``gen``; the first without);
        with ``p_mirror`` > 0 (needs ``mirror=True`` at construction) each window is replaced by its
        mirror image with that chance, captions included."""
        if p_mirror > 0 and self.text_index_mirror is None:
            raise ValueError("p_mirror > 0 needs a dataset built with mirror=True (its mirrored captions)")
        k = torch.zeros(len(idx), dtype=torch.long)
        if gen is not None:
            k = (torch.rand(len(idx), generator=gen) * self.num_candidates[idx].cpu()).long()
        k = k.to(idx.device)
        out = {"x": self.x[idx], "betas": self.betas[idx], "keypoints": self.keypoints[idx]}
        ti = self.text_index[idx, k]  # (B, 3)
        if p_mirror > 0 and gen is not None:
            m = (torch.rand(len(idx), generator=gen) < p_mirror).to(idx.device)
            ti = torch.where(m[:, None], self.text_index_mirror[idx, k], ti)
            sel = lambda a, b: torch.where(m.view(-1, *[1] * (a.dim() - 1)), b, a)  # noqa: E731
            out = {"x": sel(out["x"], mirror_rep(out["x"])), "betas": sel(out["betas"], out["betas"].flip(1)),
                   "keypoints": sel(out["keypoints"], mirror_keypoints(out["keypoints"]))}
        out.update({"tokens": self.tokens[ti], "token_mask": self.token_mask[ti]})
        return out


def _field(t, key: str) -> str:
    v = t.get(key, "") if isinstance(t, dict) else getattr(t, key, "")
    if not isinstance(v, str):
        raise ValueError(f"text field {key!r} must be a string; got {type(v).__name__}")
    return v.strip()


def dataset_from_clips(clips, prompts=None, text_encoder=None, mirror: bool = False) -> DiffusionDataset:
    """Clips of one length (+ a Prompt each; default each clip's own prompt) -> DiffusionDataset
    (``mirror``: also the mirrored captions, for ``TrainConfig.p_mirror``)."""
    if not clips:
        raise ValueError("dataset_from_clips needs at least one clip")
    T = clips[0].num_frames
    bad = [i for i, c in enumerate(clips) if c.num_frames != T]
    if bad:
        raise ValueError(f"all clips must have {T} frames; clip {bad[0]} has {clips[bad[0]].num_frames}")
    prompts = prompts or [c.prompt for c in clips]
    stack = lambda k: np.stack([getattr(c, k) for c in clips])  # noqa: E731
    return DiffusionDataset(stack("transl"), stack("global_orient"), stack("hand_pose"), stack("betas"),
                            list(prompts), text_encoder, mirror=mirror)


# --- losses ----------------------------------------------------------------------------------
TIP_PAIRS = tuple((a, b) for i, a in enumerate(TIPS) for b in TIPS[i + 1:])  # the 10 pairs of one hand


def thumb_contacts(keypoints: torch.Tensor, thr: float = 0.02) -> torch.Tensor:
    """(N, T, 2, 21, 3) metres -> (N, 4) bool: the thumb tip within ``thr`` of the index / middle /
    ring / little tip of either hand at some frame (HandX's intra-hand contact label)."""
    gap = thumb_gaps(keypoints.detach().cpu().numpy())  # (N, T, 2, 4)
    return torch.from_numpy((gap < thr).any(axis=(1, 2)))


def contact_weights(contact: torch.Tensor, k: float) -> torch.Tensor:
    """Sampling weights (N,) from thumb-contact labels (N, 4): 1 + (k - 1) * sum over the window's
    contacted fingers of mean_f(n_f) / n_f, n_f = windows contacting finger f. Each finger's contact
    windows get the same extra share, so rare pinches (ring, little) gain most; k = 1 is uniform."""
    if not k >= 1.0:
        raise ValueError(f"contact oversampling must be >= 1; got {k}")
    n = contact.sum(0).double()
    present = n > 0
    if not present.any():
        return torch.ones(contact.shape[0], dtype=torch.double)
    share = torch.where(present, n[present].mean() / n.clamp(min=1), torch.zeros_like(n))
    return 1.0 + (k - 1.0) * (contact.double() * share).sum(1)


def tip_pair_loss(j_pr: torch.Tensor, j_gt: torch.Tensor, unit: float = 0.01, reach: float = 0.03) -> torch.Tensor:
    """Error of the vectors between the fingertips of each hand, in units of ``unit`` (1 cm), each pair
    weighted by exp(-its reference gap / ``reach``): 1 at touching, 0.5 at 2 cm, 0.07 at 8 cm.

    The position loss spends little on a pinch: a thumb tip 3 cm from the index tip is a small error
    against the whole hand's, but the difference between touching and not. Measured on diffusion v3
    (test split): at the reference's pinches the generated thumb-fingertip gap had a median of 38 mm.
    j_pr, j_gt (..., 21, 3) -> scalar."""
    a = torch.tensor([p[0] for p in TIP_PAIRS], device=j_gt.device)
    b = torch.tensor([p[1] for p in TIP_PAIRS], device=j_gt.device)
    v_gt = j_gt[..., a, :] - j_gt[..., b, :]
    v_pr = j_pr[..., a, :] - j_pr[..., b, :]
    w = torch.exp(-v_gt.norm(dim=-1) / reach)
    return (w * ((v_pr - v_gt) / unit).pow(2).sum(-1)).mean()


def losses(model: Denoiser, hands, x0_n: torch.Tensor, x0_pred_n: torch.Tensor, betas: torch.Tensor,
           j_gt: torch.Tensor, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """Parameter loss in normalised space + keypoint position / velocity / acceleration losses.
    j_gt (B, T, 2, 21, 3): ground-truth keypoints (precomputed by the dataset)."""
    out = {"param": (x0_pred_n - x0_n).pow(2).mean()}
    j_pr = keypoints_from_rep(hands, denormalize(x0_pred_n, model.x_mean, model.x_std), betas)
    out["joints"] = ((j_pr - j_gt) / 0.02).pow(2).sum(-1).mean()
    v_gt, v_pr = j_gt.diff(dim=1), j_pr.diff(dim=1)
    out["vel"] = ((v_pr - v_gt) / 0.005).pow(2).sum(-1).mean()
    out["acc"] = ((v_pr.diff(dim=1) - v_gt.diff(dim=1)) / 0.003).pow(2).sum(-1).mean()
    out["tips"] = tip_pair_loss(j_pr, j_gt)
    out["total"] = (cfg.w_param * out["param"] + cfg.w_joints * out["joints"]
                    + cfg.w_vel * out["vel"] + cfg.w_acc * out["acc"] + cfg.w_tips * out["tips"])
    return out


def drop_conditions(token_mask: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, 3, L) -> same with whole branches masked out (masked = the learned null path)."""
    B = token_mask.shape[0]
    drop = torch.rand(B, 3, generator=gen) < cfg.p_drop_branch
    drop |= (torch.rand(B, 1, generator=gen) < cfg.p_drop_all)
    return token_mask & ~drop.to(token_mask.device)[..., None]


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


# --- checkpoints -----------------------------------------------------------------------------
def _rng_tensors(gen, torch_states: dict[int, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Data generators (one per shard: ``data``, ``data.1``, ...) and torch RNG states per rank."""
    gens = gen if isinstance(gen, dict) else {0: gen}
    out = {("data" if s == 0 else f"data.{s}"): (g.get_state() if isinstance(g, torch.Generator) else g)
           for s, g in sorted(gens.items())}
    for r, st in sorted((torch_states or {0: torch.get_rng_state()}).items()):
        out["torch" if r == 0 else f"torch.{r}"] = st
    return out


def save_train_state(folder: Path, model, ema: EMA, opt, step: int, gen, model_cfg: DenoiserConfig,
                     cfg: TrainConfig, torch_states: dict[int, torch.Tensor] | None = None) -> Path:
    """Everything needed to continue bit for bit: weights, EMA, optimizer, step, RNG states.
    ``gen``: the data generator, or {shard: generator or its state} (data-parallel runs)."""
    opt_state = opt.state_dict()
    opt_tensors, opt_meta = {}, {"param_groups": opt_state["param_groups"], "state": {}}
    for pid, st in opt_state["state"].items():
        opt_meta["state"][str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                opt_tensors[f"{pid}.{k}"] = v
            else:
                opt_meta["state"][str(pid)][k] = v
    rng = _rng_tensors(gen, torch_states)

    def write(tmp: Path):
        save_tensors(tmp / "model.safetensors", model.state_dict())
        save_tensors(tmp / "ema.safetensors", ema.state_dict())
        save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        save_tensors(tmp / "rng.safetensors", rng)
        (tmp / "state.json").write_text(json.dumps({
            "step": step, "ema_updates": ema.num_updates, "model_config": model_cfg.to_dict(),
            "train_config": asdict(cfg), "optimizer": opt_meta}, indent=1))
    return write_folder_atomically(folder, write)


def recover_interrupted_swap(folder: Path) -> None:
    """``write_folder_atomically`` moves the old folder aside, then renames the new one in; a kill
    between the two renames leaves only ``.NAME.old<pid>``. Put that (complete) copy back."""
    if folder.exists():
        return
    olds = sorted(folder.parent.glob(f".{folder.name}.old*"), key=lambda p: p.stat().st_mtime)
    olds = [p for p in olds if (p / "state.json").is_file() or (p / "config.json").is_file()]
    if olds:
        os.replace(olds[-1], folder)


PREVIOUS = "previous"  # RUN/previous/<time>/: what a start-over moved out of the run folder
RUN_ENTRIES = ("train_state", "model")  # a run folder's own entries, the resumable state first


def set_aside_run(folder: str | Path, names: tuple[str, ...] = RUN_ENTRIES) -> Path | None:
    """Start over in ``folder``: move the old run's ``names`` (and their half-written or half-swapped
    copies ``.NAME.*``) into ``folder/previous/<time>/``, so nothing of it can be resumed or shipped
    as the new run's result, and nothing is deleted. -> that folder, or None when there was nothing.
    The state moves first; a kill part-way leaves ``previous/.partial-*``, which the next run in
    ``folder`` completes (``finish_set_aside``) before it reads anything."""
    folder = Path(folder)
    if not _run_entries(folder, names):
        return None
    (folder / PREVIOUS).mkdir(exist_ok=True)
    return _complete_set_aside(folder, Path(tempfile.mkdtemp(prefix=".partial-", dir=folder / PREVIOUS)), names)


def finish_set_aside(folder: str | Path, names: tuple[str, ...] = RUN_ENTRIES) -> Path | None:
    """Complete a ``set_aside_run`` that was killed part-way (its start-over stands, whatever the
    next run asks); -> where the old run went, or None when none was pending."""
    parent, done = Path(folder) / PREVIOUS, None
    for partial in sorted(parent.glob(".partial-*")) if parent.is_dir() else ():
        done = _complete_set_aside(Path(folder), partial, names)
    return done


def _run_entries(folder: Path, names: tuple[str, ...]) -> list[Path]:
    out = []
    for name in names:
        out += [folder / name] if (folder / name).exists() or (folder / name).is_symlink() else []
        out += sorted(folder.glob(f".{name}.*"))
    return out


def _complete_set_aside(folder: Path, partial: Path, names: tuple[str, ...]) -> Path:
    for entry in _run_entries(folder, names):
        if (partial / entry.name).exists():
            raise TrainingError(f"{entry} and {partial / entry.name} both exist (an interrupted start-over); "
                                f"move one of them out of {folder}")
        os.replace(entry, partial / entry.name)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    final, k = partial.parent / stamp, 2
    while final.exists():
        final, k = partial.parent / f"{stamp}-{k}", k + 1
    os.replace(partial, final)
    _follow_registered({folder / name: final / name for name in names})
    return final


def _follow_registered(moves: dict) -> list[str]:
    """Registered models (engine.registry) inside what a start-over moved follow it to previous/:
    "Use this model" on a run's model, then starting that run over, keeps the chosen weights. A
    registry that cannot be read is left alone, with a warning (it does not stop the training)."""
    from engine.registry import Registry, RegistryError
    try:
        names = Registry().relocate(moves)
    except (RegistryError, OSError) as e:
        print(f"warning: registered models were not checked after moving the old run: {e}", file=sys.stderr)
        return []
    if names:
        print(f"registered model(s) {', '.join(sorted(names))} now point to the moved run", file=sys.stderr)
    return names


def saved_step(state_dir: str | Path) -> int | None:
    """The step a ``save_train_state`` folder holds, or None when it holds none."""
    try:
        return int(json.loads((Path(state_dir) / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_train_state(folder: Path, model, ema: EMA, opt, gen, rank: int = 0) -> int:
    """Restore a ``save_train_state`` folder into fresh objects; returns the step to continue from.
    ``gen``: the data generator, or {shard: generator} for the shards this process draws."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder / 'state.json'}: cannot read training state ({e})") from None
    saved_cfg = DenoiserConfig.from_dict(state.get("model_config", model.config.to_dict()))
    if saved_cfg != model.config:
        hint = " (resume a run started with --add-skip with --add-skip)" if saved_cfg.skip != model.config.skip else ""
        raise TrainingError(f"{folder}: the run was trained with another model config "
                            f"({config_diff(saved_cfg, model.config)}){hint}")
    model.load_state_dict(load_tensors(folder / "model.safetensors"))
    ema.load_state_dict(load_tensors(folder / "ema.safetensors"), state["ema_updates"])
    tensors = load_tensors(folder / "optimizer.safetensors")
    opt_state = {"param_groups": state["optimizer"]["param_groups"], "state": {}}
    for pid, extra in state["optimizer"]["state"].items():
        st = dict(extra)
        st.update({k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == pid})
        opt_state["state"][int(pid)] = st
    opt.load_state_dict(opt_state)
    rng = load_tensors(folder / "rng.safetensors")
    gens = gen if isinstance(gen, dict) else {0: gen}
    saved = sum(1 for k in rng if k.split(".")[0] == "data")
    if saved != state["train_config"].get("data_shards", 1) or max(gens) >= saved:
        raise TrainingError(f"{folder}: written with {saved} data shard(s); resume with --data-shards {saved} "
                            f"(any process count that divides it)")
    for s, g in gens.items():
        g.set_state(rng["data" if s == 0 else f"data.{s}"])
    torch.set_rng_state(rng.get(f"torch.{rank}", rng["torch"]) if rank else rng["torch"])
    return int(state["step"])


def config_diff(a, b) -> str:
    """The fields where two config dataclasses differ, for error messages."""
    return ", ".join(f"{k} {getattr(a, k)!r} vs {getattr(b, k)!r}" for k in a.__dataclass_fields__
                     if getattr(a, k) != getattr(b, k))


def state_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def check_disk_space(out_dir: Path, model: torch.nn.Module) -> None:
    """Fail before training when the run folder's disk cannot hold DISK_MARGIN x a checkpoint
    (train_state: weights, EMA, two Adam moments; model/: EMA weights -> about 5 x the weights).
    Atomic writes briefly hold the old and the new copy side by side."""
    need = DISK_MARGIN * 5 * state_bytes(model)
    probe = Path(out_dir).absolute()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise TrainingError(f"not enough disk space for checkpoints in {out_dir}: {free / 2**20:.1f} MiB free on "
                            f"{probe}, need {need / 2**20:.1f} MiB ({DISK_MARGIN} x the checkpoint size)")


class ValidationSet:
    """A small fixed subset of the val split with fixed timesteps (evenly spread over the schedule)
    and noise (seed VAL_SEED), first caption of each window, no condition dropout: the same
    numbers every time, so the loss is comparable across steps, runs and base vs fine-tuned."""

    def __init__(self, dataset: DiffusionDataset, windows: int, scheduler: DDIMScheduler):
        n = min(windows, len(dataset))
        if n == 0:
            raise TrainingError("the validation set is empty (no windows in the val split)")
        self.batch = dataset.batch(torch.arange(n, device=dataset.x.device))
        num = scheduler.config.num_train_timesteps
        self.t = ((torch.arange(n) + 0.5) * num / n).long().clamp(max=num - 1).to(dataset.x.device)  # (n,)
        self.noise = torch.randn(self.batch["x"].shape, generator=torch.Generator().manual_seed(VAL_SEED)
                                 ).to(dataset.x.device)  # (n, T, 2, 99)
        self.scheduler = scheduler

    @torch.no_grad()
    def evaluate(self, model: Denoiser, hands, cfg: TrainConfig, chunk: int = 64) -> dict[str, float]:
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        n = len(self.t)
        for i in range(0, n, chunk):
            sl = slice(i, i + chunk)
            x0 = normalize(self.batch["x"][sl], model.x_mean, model.x_std)
            x_t = self.scheduler.add_noise(x0, self.noise[sl], self.t[sl])
            memory, memory_mask = model.encode_condition(self.batch["tokens"][sl], self.batch["token_mask"][sl])
            out = losses(model, hands, x0, model(x_t, self.t[sl], memory, memory_mask), self.batch["betas"][sl],
                         self.batch["keypoints"][sl], cfg)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(x0)
        model.train(was_training)
        return {k: v / n for k, v in sums.items()}


class _TrainStep(torch.nn.Module):
    """Condition encoding + denoising as one forward, so DDP sees every parameter in one call."""

    def __init__(self, model: Denoiser):
        super().__init__()
        self.model = model

    def forward(self, x_t, t, tokens, token_mask):
        memory, memory_mask = self.model.encode_condition(tokens, token_mask)
        return self.model(x_t, t, memory, memory_mask)


def _draw(dataset: DiffusionDataset, gens: dict[int, torch.Generator], per_shard: int, cfg: TrainConfig,
          scheduler: DDIMScheduler, device) -> dict[str, torch.Tensor]:
    """This process's part of the global batch: per shard (in order) windows, captions, timesteps,
    noise and dropout masks from that shard's generator; concatenated over the shards."""
    parts = []
    for _, gen in sorted(gens.items()):
        if dataset.weights is None:
            idx = torch.randint(0, len(dataset), (per_shard,), generator=gen).to(device)
        else:
            idx = torch.multinomial(dataset.weights, per_shard, replacement=True, generator=gen).to(device)
        b = dataset.batch(idx, gen, cfg.p_mirror)
        b["t"] = scheduler.sample_timesteps(per_shard, gen, device)
        b["noise"] = torch.randn(b["x"].shape, generator=gen).to(device)
        b["token_mask"] = drop_conditions(b["token_mask"], cfg, gen)
        parts.append(b)
    return parts[0] if len(parts) == 1 else {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def weights_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --- the loop --------------------------------------------------------------------------------
def train_iter(dataset: DiffusionDataset, out_dir: str | Path, model_cfg: DenoiserConfig | None = None,
               cfg: TrainConfig = TrainConfig(), resume: bool = True, hands=None,
               meta: dict | None = None, *, init_from: str | Path | None = None,
               val_dataset: DiffusionDataset | None = None, stop=None) -> Iterator[dict]:
    """Train; yield ``{"step", "of", "loss": {name: float}, "lr", "samples_per_s", "eta_s", "device"}``
    each step, plus ``"checkpoint"`` when one was written, ``"val"`` ({name: float}) every
    ``cfg.val_every`` steps (a fresh run also yields ``{"step": 0, "of", "val"}`` first: the start
    point), and ``"paused": True`` on the last item when ``stop()`` turned true (checkpointed).
    Close the generator to stop without saving; resume later from the last checkpoint.

    ``resume`` False starts over: an old run in ``out_dir`` (train_state/, model/) is first moved to
    ``out_dir/previous/<time>/`` (``set_aside_run``), named by ``"previous_run"`` in the first item.

    ``init_from``: a model folder (``save_model``) to fine-tune: its weights and normalisation
    stats, its config (``model_cfg`` must be None, equal, or the same plus ``skip=True`` to add the
    skip path to a checkpoint without one: fitted in closed form first, ``cfg.skip_fit_windows``).
    ``model_cfg`` None = DenoiserConfig().
    Under torchrun (``distributed.init_from_env``) every process runs this; rank 0 writes."""
    from engine.api import resolve_device
    from engine.hands import load_hands
    from engine.threads import torch_threads

    ctx = distributed.context()
    out_dir = Path(out_dir)
    device = ctx.device if ctx.enabled else resolve_device(cfg.device)
    base, adds_skip = None, False
    if init_from is not None:
        base, _ = load_model(init_from)
        adds_skip = model_cfg is not None and model_cfg == replace(base.config, skip=True) and not base.config.skip
        if model_cfg is not None and model_cfg != base.config and not adds_skip:
            raise TrainingError(f"{init_from}: fine-tuning keeps the checkpoint's model config (it may only add the "
                                f"skip path), but a different one was given ({config_diff(base.config, model_cfg)})")
        model_cfg = model_cfg if adds_skip else base.config
    model_cfg = model_cfg if model_cfg is not None else DenoiserConfig()
    whose = f"{init_from}: the checkpoint" if init_from is not None else "the model config"
    for name, d in (("training", dataset), ("validation", val_dataset)):
        if d is None:
            continue
        if d.frames != model_cfg.frames:
            raise TrainingError(f"{name} windows have {d.frames} frames; {whose} expects {model_cfg.frames}")
        if d.tokens.shape[1] > model_cfg.max_text_tokens:
            raise TrainingError(f"{name} captions have up to {d.tokens.shape[1]} tokens; {whose} takes "
                                f"{model_cfg.max_text_tokens}")
    shards = cfg.data_shards
    if shards < 1 or shards % ctx.world_size or cfg.batch % shards:
        raise TrainingError(f"data_shards ({shards}) must divide the batch ({cfg.batch}) and be a multiple of "
                            f"the process count ({ctx.world_size})")
    per_proc = shards // ctx.world_size
    mine = range(ctx.rank * per_proc, (ctx.rank + 1) * per_proc)
    gens = {s: torch.Generator().manual_seed(distributed.shard_seed(cfg.seed, s)) for s in mine}
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    state_dir = out_dir / "train_state"
    scheduler = DDIMScheduler(SchedulerConfig())
    model = Denoiser(model_cfg)
    if base is not None:  # weights and x_mean / x_std; an added skip path is fitted below
        missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
        if unexpected or any(not k.startswith(("skip_out.", "skip_gate.")) for k in missing):
            raise TrainingError(f"{init_from}: the weights do not match the model config "
                                f"(missing {missing}, unexpected {unexpected})")
    else:
        mean, std = dataset.stats()
        model.x_mean.copy_(mean)
        model.x_std.copy_(std)
    if ctx.rank:
        torch.manual_seed(distributed.shard_seed(cfg.seed, 10_000 + ctx.rank))  # own dropout stream
    model.to(device).train()
    dataset.to(device)
    hands = hands if hands is not None else load_hands("default", device=device)
    with torch_threads(cfg.threads if device.type == "cpu" else None):
        dataset.compute_keypoints(hands)
        dataset.set_contact_oversample(cfg.contact_oversample)  # k = 1: uniform draws (and the counts)
        if val_dataset is not None and cfg.val_every and ctx.is_main:
            val_dataset.to(device).compute_keypoints(hands)
        if adds_skip and cfg.skip_fit_windows > 0 and not (resume and (state_dir / "state.json").is_file()):
            from engine.training.skip_fit import fit_skip
            fitted = fit_skip(base.to(device), dataset, scheduler, cfg.skip_fit_windows,
                              cfg.skip_fit_velocity, seed=cfg.seed)  # the same on every rank: same data, seed
            model.load_state_dict(fitted.state_dict())
    ema = EMA(model, cfg.ema_decay)
    decay, no_decay, skip = [], [], []
    for name, p in model.named_parameters():
        if name.startswith(("skip_out.", "skip_gate.")):
            skip.append(p)
        else:
            (decay if p.dim() >= 2 and name not in ("pos", "cls", "null", "branch") else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if skip:
        groups.append({"params": skip, "weight_decay": cfg.weight_decay, "lr_mult": cfg.skip_lr_mult})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))
    step = 0
    previous = None
    if ctx.is_main:
        check_disk_space(out_dir, model)
        finish_set_aside(out_dir)
        recover_interrupted_swap(state_dir)
        if not resume:
            previous = set_aside_run(out_dir)
    distributed.barrier()
    if resume and (state_dir / "state.json").is_file():
        step = load_train_state(state_dir, model, ema, opt, gens, rank=ctx.rank)
    net = _TrainStep(model)
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None,
                                      broadcast_buffers=False)
    val_set = val_model = None
    if val_dataset is not None and cfg.val_every and ctx.is_main:
        val_set, val_model = ValidationSet(val_dataset, cfg.val_windows, scheduler), Denoiser(model_cfg).to(device)

    def validate() -> dict[str, float]:
        ema.copy_to(val_model)  # the EMA weights: what ships
        return val_set.evaluate(val_model, hands, cfg)

    def checkpoint() -> dict:
        """Collective: every rank sends its RNG states; rank 0 writes. Also checks the replicas agree."""
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise TrainingError(f"step {step}: non-finite weights; no checkpoint written")
        gathered = distributed.all_gather_object(({s: g.get_state() for s, g in gens.items()},
                                                  torch.get_rng_state(), weights_digest(model)))
        digests = [d for _, _, d in gathered]
        if not ctx.is_main:
            return {}
        if len(set(digests)) != 1:
            raise TrainingError(f"step {step}: the ranks' weights differ ({digests})")
        all_gens = {s: st for g, _, _ in gathered for s, st in g.items()}
        save_train_state(state_dir, model, ema, opt, step, all_gens, model_cfg, cfg,
                         torch_states={r: ts for r, (_, ts, _) in enumerate(gathered)})
        shipped = Denoiser(model_cfg)
        ema.copy_to(shipped)
        info = {"steps": step, "train_config": asdict(cfg), "train_windows": len(dataset),
                "sampler_steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE}
        if init_from is not None:
            info["base_model"] = str(init_from)
        info.update(meta or {})
        out = {"checkpoint": str(save_model(out_dir / "model", shipped, info))}
        if ctx.enabled:
            out["rank_digests"] = digests
        return out

    first = {} if previous is None else {"previous_run": str(previous)}  # goes with the first item
    with torch_threads(cfg.threads if device.type == "cpu" else None):
        if val_set is not None and step == 0:
            yield {"step": 0, "of": cfg.steps, "val": validate(), **first}
            first = {}
        t0, seen = time.perf_counter(), 0
        per_shard = cfg.batch // shards
        names = ("param", "joints", "vel", "acc", "tips", "total")
        while step < cfg.steps:
            b = _draw(dataset, gens, per_shard, cfg, scheduler, device)
            x0 = normalize(b["x"], model.x_mean, model.x_std)  # (B_local, T, 2, 99)
            x_t = scheduler.add_noise(x0, b["noise"], b["t"])
            x0_pred = net(x_t, b["t"], b["tokens"], b["token_mask"])
            loss = losses(model, hands, x0, x0_pred, b["betas"], b["keypoints"], cfg)
            # one small collective per step: the mean loss terms and the pause flag of all ranks
            # (stacked on the device: one transfer per step, not one per term)
            stats = torch.cat([torch.stack([loss[k].detach() for k in names]).double().cpu(),
                               torch.tensor([float(bool(stop and stop()))], dtype=torch.float64)])
            stats = distributed.all_reduce_mean(stats)
            bad = [k for k, v in zip(names, stats[:-1].tolist()) if not math.isfinite(v)]
            if bad:
                raise TrainingError(f"step {step + 1}: loss {bad[0]} is {stats[names.index(bad[0])].item()} "
                                    f"(terms {dict(zip(names, stats[:-1].tolist()))}); stopped, weights unchanged "
                                    f"since the last checkpoint (step {step}); lower the learning rate")

            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg) * g.get("lr_mult", 1.0)
            opt.zero_grad(set_to_none=True)
            loss["total"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if not torch.isfinite(grad_norm):
                raise TrainingError(f"step {step + 1}: gradient norm is {grad_norm.item()} (loss total "
                                    f"{stats[names.index('total')].item():.4g}); stopped before the update; lower the learning rate")
            opt.step()
            ema.update(model)
            step += 1
            seen += cfg.batch
            rate = seen / (time.perf_counter() - t0)
            item = {"step": step, "of": cfg.steps, "loss": dict(zip(names, stats[:-1].tolist())),
                    "lr": lr_at(step - 1, cfg), "samples_per_s": rate,
                    "eta_s": (cfg.steps - step) * cfg.batch / rate, "device": str(device)}
            paused = bool(stats[-1] > 0) and step < cfg.steps
            if step % cfg.ckpt_every == 0 or step == cfg.steps or paused:
                item.update(checkpoint())
            if val_set is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                item["val"] = validate()
            if paused:
                item["paused"] = True
            if ctx.is_main:
                yield {**item, **first}
                first = {}
            if paused:
                return


def corpus_captions(entry: dict, max_tokens: int, count_tokens) -> list[dict]:
    """Caption candidates of one corpus clip: every level and the action text whose branches all
    fit the text encoder's window (levels 1-2 mostly do; longer ones are for captioning models)."""
    cands = [{k: t.get(k, "") for k in BRANCHES} for t in entry.get("texts", [])]
    if entry.get("action"):
        cands.append({"text": entry["action"], "left": "", "right": ""})
    fits = [c for c in cands if all(count_tokens(c[k]) <= max_tokens for k in BRANCHES if c[k])]
    return fits or [{"text": "", "left": "", "right": ""}]


def load_corpus(data_dir: str | Path, split: str = "train", max_tokens: int = 32,
                text_encoder=None, limit: int | None = None, mirror: bool = False,
                extra: list | tuple = ()) -> DiffusionDataset:
    """A corpus folder (docs/corpus.md) -> the windows of one split with their caption candidates.
    ``extra``: more corpus folders whose windows of the same split join them (e.g. a supplement built
    with ``data build --program concurrent``); every folder must have the same frames per clip."""
    from engine.data.corpus import Corpus
    if text_encoder is None:
        from engine.diffusion.text_encoder import shared_text_encoder
        text_encoder = shared_text_encoder()
    parts, entries = [], []
    for i, folder in enumerate([data_dir, *extra]):
        corpus = Corpus(folder)
        arrays = corpus.arrays(split)
        rows = [e for e in corpus.index if e["split"] == split]
        if limit is not None and i == 0:
            arrays = {k: v[:limit] for k, v in arrays.items()}
            rows = rows[:limit]
        if parts and arrays["transl"].shape[1:] != parts[0]["transl"].shape[1:]:
            raise TrainingError(f"{folder}: clips of {arrays['transl'].shape[1]} frames; {data_dir} has "
                                f"{parts[0]['transl'].shape[1]}: every corpus of one run needs the same length")
        parts.append(arrays)
        entries += rows
    arrays = {k: np.concatenate([a[k] for a in parts]) for k in parts[0]} if len(parts) > 1 else parts[0]
    lengths: dict[str, int] = {}

    def count(text: str) -> int:
        if text not in lengths:
            lengths[text] = len(text_encoder.tokenizer(text)["input_ids"])
        return lengths[text]

    texts = [corpus_captions(e, max_tokens, count) for e in entries]
    return DiffusionDataset(arrays["transl"], arrays["global_orient"], arrays["hand_pose"], arrays["betas"],
                            texts, text_encoder, mirror=mirror)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder (hand-studio data build; see docs/corpus.md)")
    p.add_argument("--limit", type=int, help="use only the first N training windows (quick runs)")
    p.add_argument("--extra-data", action="append", default=[], metavar="DIR",
                   help="another corpus whose train windows join --data's (repeatable; validation stays on "
                        "--data's val split), e.g. a `data build --program concurrent` supplement")
    p.add_argument("--out", required=True, help="run folder: train_state/ (resumable) and model/ (EMA weights)")
    p.add_argument("--config", help="JSON file with {'model': {...DenoiserConfig}, 'train': {...TrainConfig}}")
    p.add_argument("--from", dest="init_from", metavar="MODEL",
                   help="fine-tune: start from this model folder's weights and stats (its config is kept)")
    p.add_argument("--add-skip", action="store_true",
                   help="with --from: add the skip path (x_t patch -> x0) to a model without one, fitted in closed form "
                        "on the training windows before the first step (engine.training.skip_fit)")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--batch", type=int, help="override train.batch (the global batch under torchrun)")
    p.add_argument("--lr", type=float, help="override train.lr")
    p.add_argument("--warmup", type=int, help="override train.warmup")
    p.add_argument("--ckpt-every", type=int, help="override train.ckpt_every")
    p.add_argument("--log-every", type=int, help="override train.log_every (text progress)")
    p.add_argument("--val-every", type=int, help="validation loss on the val split every N steps")
    p.add_argument("--val-windows", type=int, help="size of the fixed validation subset (default 64)")
    p.add_argument("--data-shards", type=int, help="generators the global batch is drawn from (default: the "
                                                   "process count); fix it to resume with another process count")
    p.add_argument("--mirror", dest="p_mirror", type=float, metavar="P",
                   help="override train.p_mirror: chance a window is trained as its mirror image (hands swapped, "
                        "'left'/'right' swapped in its captions); teaches which hand a text names")
    p.add_argument("--w-tips", dest="w_tips", type=float, metavar="W",
                   help="override train.w_tips: weight of the fingertip-pair loss (pinches; 0 = off)")
    p.add_argument("--contact-oversample", dest="contact_oversample", type=float, metavar="K",
                   help="override train.contact_oversample: windows whose ground truth has a thumb-fingertip "
                        "contact are drawn up to K x as often, each finger's contacts gaining the same share "
                        "(rare ring / little pinches most; 1 = uniform)")
    p.add_argument("--device", help="override train.device (auto, cpu, cuda)")
    p.add_argument("--seed", type=int, help="override train.seed")
    p.add_argument("--threads", type=int, help="override train.threads (torch CPU threads)")
    r = p.add_mutually_exclusive_group()
    r.add_argument("--resume", action="store_true", help="continue the run in --out (an error if it has no state); "
                                                         "without either flag a state there is continued")
    r.add_argument("--no-resume", action="store_true", help="start over even if the run folder has a state; "
                                                            "its train_state/ and model/ move to OUT/previous/<time>/")
    p.add_argument("--progress", default="text", choices=("text", "jsonl"),
                   help="text lines (default) or one JSON object per line on stdout (for the app's runner)")


class _Progress:
    """Where a run reports: readable lines, or one JSON event per line (engine.training.runner)."""

    def __init__(self, mode: str, log_every: int, enabled: bool = True):
        self.jsonl, self.log_every, self.enabled, self.t0 = mode == "jsonl", log_every, enabled, time.time()

    def emit(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        if self.jsonl:
            print(json.dumps({"event": event, **fields}), flush=True)
            return
        if event == "step":
            if fields["step"] % self.log_every and "checkpoint" not in fields:
                return
            losses_txt = " ".join(f"{k} {v:.4f}" for k, v in fields["loss"].items())
            print(f"step {fields['step']}/{fields['of']} {losses_txt} lr {fields['lr']:.2e} "
                  f"{fields['samples_per_s']:.1f} samples/s {time.time() - self.t0:.0f}s eta {fields['eta_s']:.0f}s"
                  + (f" -> {fields['checkpoint']}" if "checkpoint" in fields else ""), flush=True)
        elif event == "val":
            print(f"val at step {fields['step']}: " + " ".join(f"{k} {v:.4f}" for k, v in fields["val"].items()),
                  flush=True)
        elif event == "start":
            print(f"{fields['windows']} windows of {fields['frames']} frames on {fields['device']} "
                  f"(x{fields['world_size']}); model {fields['model_config']}; train {fields['train_config']}"
                  + (f"; windows with a thumb contact {fields['contact_windows']}" if fields.get("contact_windows")
                     else ""), flush=True)
            if fields.get("previous_run"):
                print(f"started over: the previous run's train_state/ and model/ are in {fields['previous_run']}",
                      flush=True)
        elif event == "done":
            print(("paused at" if fields.get("paused") else "done at") + f" step {fields['step']}: {fields['model']}",
                  flush=True)
        elif event == "error":
            print(f"error: {fields['message']}", file=sys.stderr, flush=True)


def run_reporting(progress, body, cleanup=None) -> int:
    """Run ``body(stop)`` as a training command: SIGTERM asks for a checkpoint at the end of the
    current step (``stop()`` turns true), then exit 0; in jsonl mode every failure is one ``error``
    event and exit code 2 (bad input) or 1. Shared by the diffusion and CLUTCH trainers."""
    import threading
    stop_requested: list[int] = []
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.append(signum)) if on_main else None
    try:
        return body(lambda: bool(stop_requested))
    except Exception as e:  # noqa: BLE001 - a run reports every failure as one event, then exits
        if not progress.jsonl:
            raise
        progress.emit("error", message=str(e), type=type(e).__name__)
        return 2 if isinstance(e, (ValueError, FileNotFoundError)) else 1
    finally:
        if cleanup is not None:
            cleanup()
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    """The command line. SIGTERM asks for a checkpoint at the end of the current step, then exit 0."""
    progress = _Progress(getattr(args, "progress", "text"), TrainConfig.log_every)
    return run_reporting(progress, lambda stop: _run(args, progress, stop), cleanup=distributed.cleanup)


def _run(args: argparse.Namespace, progress: _Progress, stop) -> int:
    model_cfg, cfg = None, TrainConfig()
    if args.config:
        d = json.loads(Path(args.config).read_text())
        if "model" in d:
            model_cfg = DenoiserConfig.from_dict(d["model"])
        cfg = TrainConfig.from_dict(d.get("train", {}))
    names = ("steps", "batch", "lr", "warmup", "ckpt_every", "log_every", "val_every", "val_windows", "data_shards",
             "device", "seed", "threads", "p_mirror", "w_tips", "contact_oversample")
    cfg = replace(cfg, **{k: getattr(args, k) for k in names if getattr(args, k, None) is not None})
    ctx = distributed.init_from_env(cfg.device)
    if getattr(args, "data_shards", None) is None and ctx.world_size > 1:
        cfg = replace(cfg, data_shards=ctx.world_size)
    progress.enabled, progress.log_every = ctx.is_main, cfg.log_every
    if getattr(args, "resume", False) and not (Path(args.out) / "train_state" / "state.json").is_file():
        raise TrainingError(f"--resume: {Path(args.out) / 'train_state'} holds no training state")
    shown_cfg = (model_cfg or DenoiserConfig()).to_dict()
    if getattr(args, "add_skip", False) and not args.init_from:
        raise TrainingError("--add-skip adds the skip path to a model given with --from; a new model takes it "
                            "from its --config ({\"model\": {\"skip\": true}})")
    if args.init_from:
        from engine.diffusion.checkpoint import read_config
        base_cfg = DenoiserConfig.from_dict(read_config(args.init_from)["denoiser"])
        if getattr(args, "add_skip", False):
            if base_cfg.skip:
                raise TrainingError(f"--add-skip: {args.init_from} already has the skip path")
            model_cfg = replace(base_cfg, skip=True)
        shown_cfg = (model_cfg or base_cfg).to_dict()
    max_tokens = shown_cfg.get("max_text_tokens", DenoiserConfig.max_text_tokens)
    if not 0.0 <= cfg.p_mirror <= 1.0:
        raise TrainingError(f"--mirror must be a probability in 0..1; got {cfg.p_mirror}")
    if not cfg.w_tips >= 0.0:
        raise TrainingError(f"--w-tips must be a weight >= 0; got {cfg.w_tips}")
    if not cfg.contact_oversample >= 1.0:
        raise TrainingError(f"--contact-oversample must be a factor >= 1; got {cfg.contact_oversample}")
    from engine.api import resolve_device
    device = ctx.device if ctx.enabled else resolve_device(cfg.device)
    if device.type == "cuda":  # caption encoding: 320 s on one CPU thread for the corpus, seconds on a GPU
        from engine.diffusion.text_encoder import shared_text_encoder
        shared_text_encoder().to(device)
    dataset = load_corpus(args.data, max_tokens=max_tokens, limit=args.limit, mirror=cfg.p_mirror > 0,
                          extra=args.extra_data)
    val = load_corpus(args.data, "val", max_tokens=max_tokens) if cfg.val_every else None
    meta = {"data": str(args.data), "command": "hand-studio train diffusion"}
    if args.extra_data:
        meta["extra_data"] = [str(d) for d in args.extra_data]
    it = train_iter(dataset, args.out, model_cfg, cfg, resume=not args.no_resume, meta=meta,
                    init_from=args.init_from, val_dataset=val, stop=stop)

    def emit_start(item: dict) -> None:
        # after train_iter's start-over (if any): the runner's resume() relies on that order
        progress.emit("start", device=item.get("device", str(device)), world_size=ctx.world_size,
                      windows=len(dataset), frames=dataset.frames, model_config=shown_cfg,
                      train_config=asdict(cfg), base_model=args.init_from, out=str(args.out),
                      contact_windows=dataset.contact_counts, previous_run=item.get("previous_run"))
    started, last = False, None
    for item in it:
        if not started:
            started = True
            emit_start(item)
        if "loss" in item:
            progress.emit("step", **{k: v for k, v in item.items() if k not in ("val", "paused", "previous_run")})
        if "checkpoint" in item:
            progress.emit("checkpoint", step=item["step"], path=item["checkpoint"],
                          train_state=str(Path(args.out) / "train_state"))
        if "val" in item:
            progress.emit("val", step=item["step"], of=item["of"], val=item["val"])
        last = item
    if last is None:  # continued a state that already has its steps: nothing to train
        emit_start({})
        last = {"step": saved_step(Path(args.out) / "train_state") or 0}
    progress.emit("done", step=last["step"], of=cfg.steps, paused=bool(last.get("paused")),
                  model=str(Path(args.out) / "model"))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="train_diffusion", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"train_diffusion: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
