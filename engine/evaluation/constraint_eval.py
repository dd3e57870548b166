"""`hand-studio eval diffusion --constraints`: every constraint kind through the real constraint
path (Constraints -> keep-mask -> the pipeline's masked denoising), scored on test clips.

Per test clip (ground truth GT, its test prompt, seed = seed + clip number):
    keyframes   every ``key_every``-th frame of GT, both hands
    inbetween   GT's first and last ``ends`` frames
    wrist_path  the right wrist follows GT's right wrist on all frames
    lock_left   the left hand is GT's, the right one is generated
    continue    GT's first ``context`` frames open the result
and the same prompts without constraints. Targets: kept channels exact (<= 1e-5 in the
representation), wrist within 5 mm of its path, the seam spike at most 2x the clip's median
acceleration (mean over clips). Physical plausibility (hand interpenetration, joint limits) is
reported for every kind, for the unconstrained generations and for GT.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from engine.diffusion.constraints import Constraints
from engine.diffusion.representation import CHANNELS, clip_to_tensor, tensor_to_clip
from engine.evaluation import metrics as M
from engine.evaluation import physical

KINDS = ("keyframes", "inbetween", "wrist_path", "lock_left", "continue")
TARGETS = {"locked_max": 1e-5, "wrist_max_mm": 5.0, "seam_ratio": 2.0}
UNCONSTRAINED, GROUND_TRUTH = "Unconstrained", "Ground truth"


def constraints_for(kind: str, gt, key_every: int = 15, ends: int = 10, context: int = 20) -> Constraints:
    """The Constraints of one evaluated kind, made from the ground-truth clip ``gt``."""
    if kind not in KINDS:
        raise ValueError(f"constraint kind must be one of {KINDS}; got {kind!r}")
    T = gt.num_frames
    if kind == "keyframes":
        return Constraints.keyframes(gt, frames=list(range(0, T, key_every)), hands=("left", "right"))
    if kind == "inbetween":
        return Constraints.inbetween(gt.slice(0, ends), gt.slice(T - ends, T))
    if kind == "wrist_path":
        return Constraints.wrist_path("right", gt.joints[:, 1, 0])
    if kind == "lock_left":
        return Constraints.lock_hand(gt, "left")
    return Constraints.continue_from(gt.slice(0, context), context)  # "continue"


def clip_constraint_metrics(gen, keep: np.ndarray, target: np.ndarray, rest_wrists: np.ndarray,
                            ref_joints: np.ndarray | None = None) -> dict:
    """One generated clip against the keep-mask it was made with.

    keep (T, 2, 99) bool, target (T, 2, 99) in the representation, rest_wrists (2, 3) metres (the
    J0 the pipeline used); ref_joints (T, 2, 21, 3): the source clip's keypoints where its frames
    are kept at the same frame numbers (default: FK of ``target``). -> ``locked`` (max error on
    kept channels), ``keyed`` (keypoint error, mm, on fully kept (frame, hand) pairs), ``wrist``
    (per hand, mm, where transl is kept), ``seam`` (spike ratio at the keep-mask's boundaries;
    NaN without any)."""
    x = clip_to_tensor(gen).numpy()  # (T, 2, 99)
    keep, target = np.asarray(keep, bool), np.asarray(target, np.float32)
    if ref_joints is None:  # kept values, else the generated ones (only kept pairs are compared)
        ref_joints = tensor_to_clip(torch.from_numpy(np.where(keep, target, x)), gen.betas).joints
    pinned = keep[..., CHANNELS["transl"]].all(-1)  # (T, 2)
    path = np.asarray(rest_wrists, np.float64)[None] + target[..., CHANNELS["transl"]]  # (T, 2, 3)
    return {"locked": M.locked_channel_error(x, target, keep),
            "keyed": M.keyed_joint_error_mm(gen.joints, ref_joints, keep.all(-1)),
            "wrist": M.wrist_path_error_mm(gen.joints[:, :, 0], path, pinned),
            "seam": M.seam_spike_ratio(gen.joints, M.keep_boundaries(keep)),
            "seam_w": M.seam_spike_ratio(gen.joints, M.keep_boundaries(keep), baseline="window")}


def _summarise(per_clip: list[dict]) -> dict:
    """Per-clip results of one kind -> one table row (see ``evaluate_constraints_iter``)."""
    row: dict = {"locked_max": max(r["locked"] for r in per_clip)}
    keyed = [r["keyed"] for r in per_clip if not np.isnan(r["keyed"]["mean_mm"])]
    if keyed:
        row["keyed_mean_mm"] = float(np.mean([k["mean_mm"] for k in keyed]))
        row["keyed_max_mm"] = float(max(k["max_mm"] for k in keyed))
    wrist = {}
    for hand in ("left", "right"):
        w = [r["wrist"][hand] for r in per_clip if hand in r["wrist"]]
        if w:
            frames = sum(x["frames"] for x in w)
            wrist[hand] = {"mean_mm": sum(x["mean_mm"] * x["frames"] for x in w) / frames,
                           "max_mm": max(x["max_mm"] for x in w), "frames": frames}
    if wrist:
        frames = sum(w["frames"] for w in wrist.values())
        row["wrist_mean_mm"] = sum(w["mean_mm"] * w["frames"] for w in wrist.values()) / frames
        row["wrist_max_mm"] = max(w["max_mm"] for w in wrist.values())
        row["wrist"] = wrist
    seams = [r["seam"] for r in per_clip if not np.isnan(r["seam"])]
    if seams:
        row["seam_ratio"], row["seam_ratio_max"] = float(np.mean(seams)), float(np.max(seams))
        gt = [r["seam_gt"] for r in per_clip if not np.isnan(r.get("seam_gt", np.nan))]
        if gt:
            row["seam_ratio_gt"] = float(np.mean(gt))
        row["seam_pass"] = float(np.mean(np.array(seams) <= TARGETS["seam_ratio"]))
        sw = [r["seam_w"] for r in per_clip if not np.isnan(r.get("seam_w", np.nan))]
        if sw:
            row["seam_w_ratio"], row["seam_w_ratio_max"] = float(np.mean(sw)), float(np.max(sw))
            gw = [r["seam_w_gt"] for r in per_clip if not np.isnan(r.get("seam_w_gt", np.nan))]
            if gw:
                row["seam_w_ratio_gt"] = float(np.mean(gw))
        vs = [r["seam_vs_gt"] for r in per_clip if not np.isnan(r.get("seam_vs_gt", np.nan))]
        if vs:  # the seam's peak over the data's own peak at the same frames, per clip
            row["seam_vs_gt"], row["seam_vs_gt_over_1_5"] = float(np.median(vs)), float(np.mean(np.array(vs) > 1.5))
    row["targets"] = {"locked": row["locked_max"] <= TARGETS["locked_max"]}
    if "wrist_max_mm" in row:
        row["targets"]["wrist"] = row["wrist_max_mm"] <= TARGETS["wrist_max_mm"]
    if "seam_ratio" in row:
        row["targets"]["seam"] = row["seam_ratio"] <= TARGETS["seam_ratio"]
    if "seam_w_ratio" in row:
        row["targets"]["seam_w"] = row["seam_w_ratio"] <= TARGETS["seam_ratio"]
    return row


def eval_clips(corpus, n: int, text_encoder, max_tokens: int = 32) -> tuple[list, list]:
    """The first ``n`` test clips with a usable prompt -> (ground-truth Clips, Prompts)."""
    from engine.evaluation.run import test_prompts, token_counter
    pos = [i for i, r in enumerate(corpus.index) if r["split"] == "test"]
    prompts = test_prompts([corpus.index[i] for i in pos], max_tokens, token_counter(text_encoder))
    keep = [k for k, p in enumerate(prompts) if p is not None][:n]
    if not keep:
        raise ValueError(f"{corpus.path}: the test split has no clip with a prompt of at most {max_tokens} tokens")
    return [corpus.clip(pos[k]) for k in keep], [prompts[k] for k in keep]


def evaluate_constraints_iter(corpus, pipeline, n: int = 32, steps: int | None = None, seed: int = 0,
                              kinds: tuple[str, ...] = KINDS, key_every: int = 15, ends: int = 10,
                              context: int = 20) -> Iterator[dict]:
    """corpus: a Corpus or its folder; pipeline: a loaded DiffusionPipeline. Yields
    ``{"stage": "constraints", "kind", "done", "of"}`` per generation, then ``{"done": True,
    "rows": {kind | "Unconstrained" | "Ground truth": row}, "table": markdown, "n", "steps"}``.

    A kind's row: ``locked_max`` (representation units), ``keyed_mean_mm`` / ``keyed_max_mm``,
    ``wrist_mean_mm`` / ``wrist_max_mm`` (+ ``wrist`` per hand), ``seam_ratio`` (mean over clips)
    / ``seam_ratio_max`` / ``seam_pass`` (share of clips <= 2) / ``seam_ratio_gt`` (the ground truth's
    own ratio at the same frames: what the data does there), ``seam_w_ratio`` / ``seam_w_ratio_max``
    / ``seam_w_ratio_gt`` (the same against the clip's median window peak:
    ``metrics.seam_spike_ratio(baseline="window")``), ``seam_vs_gt`` (median over clips of the seam's
    peak acceleration over the ground truth's peak at the same frames: ``metrics.seam_peak``) and
    ``seam_vs_gt_over_1_5`` (share of clips above 1.5), ``targets`` (kind -> met), and the
    physical metrics ``pen_mean_mm``, ``pen_max_mm``, ``pen_frac``, ``limit_frac``,
    ``limit_excess_deg`` (physical.physical_metrics)."""
    from engine.data.corpus import Corpus
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"constraint kind must be one of {KINDS}; got {k!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (test clips for the constraint eval) must be a positive integer; got {n!r}")
    T = int(corpus.meta["frames"])
    if T <= max(2 * ends, context) or not 1 <= key_every < T:
        raise ValueError(f"{corpus.path}: clips have {T} frames; the constraint eval needs more than "
                         f"{max(2 * ends, context)} (2 x ends={ends}, context={context}) and key_every in 1..{T - 1}")
    gts, prompts = eval_clips(corpus, n, pipeline.text_encoder)
    total, done = len(gts) * (len(kinds) + 1), 0
    per_kind: dict[str, list[dict]] = {k: [] for k in kinds}
    gens: dict[str, list] = {k: [] for k in (*kinds, UNCONSTRAINED)}
    for i, (gt, prompt) in enumerate(zip(gts, prompts)):
        for kind in (*kinds, UNCONSTRAINED):
            if kind == UNCONSTRAINED:
                gen = pipeline.generate(prompt, frames=T, seed=seed + i, steps=steps)
            else:
                c = constraints_for(kind, gt, key_every, ends, context)
                betas = c.betas()
                wrists = pipeline.rest_wrists(np.zeros((2, 10), np.float32) if betas is None else betas)
                keep, target = c.build(T, wrists)  # what the pipeline builds from the same constraints
                gen = pipeline.generate(prompt, frames=T, seed=seed + i, constraints=c, steps=steps)
                # every kind keeps ground-truth frames at their own frame numbers: compare with GT's FK
                m = clip_constraint_metrics(gen, keep.numpy(), target.numpy(), wrists, gt.joints)
                b = M.keep_boundaries(keep.numpy())
                m["seam_gt"] = M.seam_spike_ratio(gt.joints, b)  # the data's own
                m["seam_w_gt"] = M.seam_spike_ratio(gt.joints, b, baseline="window")
                m["seam_vs_gt"] = M.seam_peak(gen.joints, b) / max(M.seam_peak(gt.joints, b), 1e-9) if b else np.nan
                per_kind[kind].append(m)
            gens[kind].append(gen)
            done += 1
            yield {"stage": "constraints", "kind": kind, "done": done, "of": total}
    rows = {k: {**_summarise(per_kind[k]), **physical.physical_metrics(gens[k])} for k in kinds}
    rows[UNCONSTRAINED] = physical.physical_metrics(gens[UNCONSTRAINED])
    rows[GROUND_TRUTH] = physical.physical_metrics(gts)
    yield {"done": True, "rows": rows, "table": constraint_table(rows), "n": len(gts), "steps": steps}


def _fmt_pair(r: dict, a: str, b: str, fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(r[a])} / {fmt.format(r[b])}" if a in r and b in r else "-"


def constraint_table(rows: dict[str, dict]) -> str:
    """Markdown: one line per constraint kind, then the unconstrained and ground-truth rows."""
    head = ["Constraint", "locked max", "keyed mm mean / max", "wrist mm mean / max", "seam ratio mean / max (GT)",
            "seam w-ratio mean / max (GT)", "seam peak / GT's (median; clips > 1.5)", "pen mm mean / max", "pen > 2 mm", "limit viol.", "limit excess °", "targets"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    for name, r in rows.items():
        t = r.get("targets")
        failed = [k for k, ok in (t or {}).items() if not ok]
        cells = [name, f"{r['locked_max']:.1e}" if "locked_max" in r else "-",
                 _fmt_pair(r, "keyed_mean_mm", "keyed_max_mm", "{:.3f}"),
                 _fmt_pair(r, "wrist_mean_mm", "wrist_max_mm", "{:.3f}"),
                 _fmt_pair(r, "seam_ratio", "seam_ratio_max")
                 + (f" ({r['seam_ratio_gt']:.2f})" if "seam_ratio_gt" in r else ""),
                 _fmt_pair(r, "seam_w_ratio", "seam_w_ratio_max")
                 + (f" ({r['seam_w_ratio_gt']:.2f})" if "seam_w_ratio_gt" in r else ""),
                 f"{r['seam_vs_gt']:.2f}; {100 * r['seam_vs_gt_over_1_5']:.0f} %" if "seam_vs_gt" in r else "-",
                 _fmt_pair(r, "pen_mean_mm", "pen_max_mm", "{:.1f}"),
                 f"{100 * r['pen_frac']:.1f} %", f"{100 * r['limit_frac']:.2f} %", f"{r['limit_excess_deg']:.1f}",
                 "-" if t is None else ("ok" if not failed else "FAIL " + ", ".join(failed))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
