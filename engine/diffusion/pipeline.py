"""The sampling loop: prompts -> text memory (once) -> DDIM steps with classifier-free guidance and
the masked blend at every step (HandX's soft ramp, then ``inpaint.seam_blend`` for the last
``SEAM_STEPS``) -> exact constrained values -> Clip.

``generate_iter`` is a generator yielding ``{"step", "of", "window", "windows", "preview"}`` per
step and finally ``{"step": of, "of": of, "clip": Clip, "preview": Clip}``; close it to cancel.
Long takes run as windows of the training length overlapping by ``overlap`` frames; each window
is conditioned on the previous one's overlap through the keep-mask (exact there, HandX's soft ramp
and then the seam fill after it), with its own prompt segment ("a then b" splits the text; the window where the
segment changes reads "a, then b": ``bridge_segments``), so cost is linear in length.
"""
from __future__ import annotations

import copy
import re
from typing import Iterator

import numpy as np
import torch

from engine.diffusion import inpaint
from engine.diffusion.constraints import Constraints
from engine.diffusion.denoiser import BRANCHES, Denoiser
from engine.diffusion.hand_texts import fill_hand_texts, hand_prompts, separate_hands
from engine.diffusion.limits import respect_limits
from engine.diffusion.representation import denormalize, normalize, tensor_to_clip
from engine.diffusion.schedulers import DDIMScheduler, SchedulerConfig
from engine.diffusion.text_encoder import MAX_TOKENS
from engine.motion.clip import Prompt
from engine.threads import torch_threads

MAX_FRAMES = 1800  # one minute at 30 fps
# Guided step of the default denoiser, batch 2 (cond + uncond), 2-core CPU: 9 ms with 1 thread;
# with 2 threads 15 ms idle and 80+ ms when another process holds a core.
SAMPLING_THREADS = 1
DEFAULT_STEPS = 10
DEFAULT_GUIDANCE = 2.5
DEFAULT_OVERLAP = 10
# The last SEAM_STEPS denoising updates (the final x0 included) use inpaint.seam_blend instead of
# HandX's soft ramp. Seam spike ratio (eval --constraints, shipped model, 10 steps, 16 clips x 3
# seeds), keyframes / inbetween / continue: 10.1 / 10.9 / 14.2 with the ramp to the end; SEAM_STEPS
# 1: 3.3 / 5.6 / 8.5; 2: 3.4 / 5.4 / 8.4; 3: 3.5 / 5.3 / 8.2 (letting the network's last prediction
# see exact kept values buys little). Ground truth at the same frames: 11.7 / 7.2 / 4.1.
SEAM_STEPS = 1
SHIPPED = "models/diffusion"  # under resources/
GRAPH_CACHE = 8  # CUDA graphs kept per pipeline (one per window shape, text length and guidance)
_THEN = re.compile(r"(?:,|;|\.)?\s*\b(?:and\s+)?then\b\s*", re.IGNORECASE)


def split_segments(text: str) -> list[str]:
    """'wave, then clap' -> ['wave', 'clap']; no 'then' -> [text]."""
    parts = [p.strip(" ,.;") for p in _THEN.split(text)]
    return [p for p in parts if p] or [text.strip()]


def segment_prompts(prompt: Prompt, windows: int) -> list[Prompt]:
    """One prompt per window: each field's 'then' segments spread over the windows in order."""
    if windows == 1:
        return [prompt]

    def spread(text: str) -> list[str]:
        if not text:
            return [""] * windows
        segs = split_segments(text)
        n = len(segs)
        out = []
        for i in range(windows):
            a = i * n // windows
            b = max(a + 1, (i + 1) * n // windows)
            out.append(" then ".join(segs[a:b]))
        return out
    t, l, r = spread(prompt.text), spread(prompt.left), spread(prompt.right)
    return [Prompt(t[i], l[i], r[i]) for i in range(windows)]


def crossfade(start: int, end: int, prev_end: int | None, next_start: int | None) -> torch.Tensor:
    """(end - start,) weights of one window's frames for blending overlapping windows: rising
    linearly over the frames it shares with the previous window (up to ``prev_end``), falling over
    those it shares with the next (from ``next_start``), 1 elsewhere; never 0 inside the window."""
    t = torch.arange(start, end, dtype=torch.float64)
    w = torch.ones_like(t)
    if prev_end is not None and prev_end > start:
        w = torch.minimum(w, (t - start + 1) / (prev_end - start + 1))
    if next_start is not None and next_start < end:
        w = torch.minimum(w, (end - t) / (end - next_start + 1))
    return w


def bridge_segments(prompts: list[Prompt], count_tokens, limit: int = MAX_TOKENS) -> list[Prompt]:
    """Per-window prompts -> the same, except that a window whose field reads a new 'then' part
    reads "<the previous window's last part>, then <its own>" when that fits ``limit`` tokens.
    The window starts from the previous action's last frames (its context), so told only the new
    action it jumps into it at the join; told the transition, it finishes the old action and moves
    on, as the corpus's "A, then B" clips do (bench/long_take_seams.py: w-ratio at joins where the
    text changes, median 2.60 -> 1.13)."""
    out = list(prompts[:1])
    for prev, cur in zip(prompts[:-1], prompts[1:]):
        fields = {}
        for k in BRANCHES:
            a, b = getattr(prev, k), getattr(cur, k)
            if a and b and a != b:
                bridged = f"{split_segments(a)[-1].rstrip(' .')}, then {b[:1].lower()}{b[1:]}"
                if count_tokens(bridged) <= limit:
                    b = bridged
            fields[k] = b
        out.append(Prompt(**fields))
    return out


def window_starts(frames: int, window: int, overlap: int) -> list[int]:
    """Window start frames covering [0, frames); the last window ends exactly at ``frames``."""
    if frames <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, frames - window, stride)) + [frames - window]
    return starts


def long_text_advice(text: str, windows: int, window: int, overlap: int) -> str:
    """What to do about a text over the token limit: each window of a take reads its own share of
    the text's 'then' parts, so either the take is too short to give each part a window, or a
    part itself is too long."""
    parts = len(split_segments(text))
    stride = window - overlap
    if parts > windows:
        need = window + (parts - 1) * stride
        return (f" per {window}-frame window; its {parts} 'then' parts need a take of at least {need} frames "
                f"({need / 30:.1f} s at 30 fps) to get one window each, or shorten it")
    return (f" per {window}-frame window: shorten it, or split it with 'then' into shorter parts over a "
            "longer take (each window reads its own part)")


def long_text_problem(prompt: Prompt, frames: int, count_tokens, window: int, overlap: int = DEFAULT_OVERLAP,
                      limit: int = MAX_TOKENS) -> str | None:
    """Why ``prompt`` cannot make a take of ``frames`` model frames, or None: each window reads its
    share of every field's 'then' parts (``segment_prompts``), and each share must fit the text
    encoder's ``limit`` tokens (``count_tokens``: the encoder's count, e.g. ``token_counter()``, which
    needs no model loaded, so the app can say it while the user types)."""
    starts = window_starts(int(frames), window, overlap)
    for p in segment_prompts(prompt, len(starts)):
        for k in BRANCHES:
            text = getattr(p, k)
            n = count_tokens(text) if text else 0
            if n > limit:
                return (f"prompt.{k} is too long: {n} tokens, at most {limit}"
                        f"{long_text_advice(getattr(prompt, k), len(starts), window, overlap)}")
    return None


def check_prompt(prompt) -> Prompt:
    if isinstance(prompt, str):
        prompt = Prompt(text=prompt)
    if not isinstance(prompt, Prompt):
        raise TypeError(f"prompt must be a str or Prompt; got {type(prompt).__name__}")
    for k in ("text", "left", "right"):
        if not isinstance(getattr(prompt, k), str):
            raise ValueError(f"prompt.{k} must be a string")
    prompt = Prompt(prompt.text.strip(), prompt.left.strip(), prompt.right.strip())
    if not prompt:
        raise ValueError("prompt is empty: give text, left or right (what the hands should do)")
    return prompt


def guided_forward(model: Denoiser, x_t: torch.Tensor, t: torch.Tensor, memory: torch.Tensor,
                   mask: torch.Tensor, guidance: float, split_hands: bool = False) -> torch.Tensor:
    """Classifier-free guidance in ONE batched forward. memory/mask hold B rows (guidance 1: the
    conditional call alone) or 2B rows, conditional first (``step_memory``); t has one entry per row.
    -> u + guidance (c - u). ``split_hands`` (conditional rows from ``DiffusionPipeline.encode_split``):
    the rows are the left hand's condition, the right hand's (and the unconditional one); each hand's
    channels come from its own row, guided against the same unconditional prediction."""
    B = x_t.shape[0]
    rows = memory.shape[0] // B
    if not split_hands:
        if rows == 1:
            return model(x_t, t, memory, mask)
        x0 = model(torch.cat([x_t, x_t]), t, memory, mask)
        return x0[B:] + guidance * (x0[:B] - x0[B:])
    x0 = model(torch.cat([x_t] * rows), t, memory, mask)
    left, right = x0[:B], x0[B:2 * B]
    if rows == 3:
        u = x0[2 * B:]
        left, right = u + guidance * (left - u), u + guidance * (right - u)
    return torch.cat([left[:, :, :1], right[:, :, 1:]], 2)


def step_memory(cond: tuple, uncond: tuple, guidance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The (memory, mask) one guided step reads: the conditional rows alone at guidance 1, else
    conditional and unconditional concatenated along the batch (the conditional rows are one
    prompt's, or split-by-hand sampling's two: ``DiffusionPipeline.encode_split``)."""
    return cond if guidance == 1.0 else _cat_memory(cond, uncond)


class GuidedStepGraph:
    """The guided denoiser call (conditional + unconditional in one batch, mixed by ``guidance``)
    captured once as a CUDA graph and replayed each step: at batch 2 the step is a chain of small
    kernels, and one replay replaces their launches one by one. Inputs are copied into static
    buffers; the output is a fresh tensor. CUDA only."""

    def __init__(self, model: Denoiser, x_t: torch.Tensor, memory: tuple, guidance: float, split_hands: bool = False):
        self.model, self.guidance, self.split_hands = model, float(guidance), bool(split_hands)
        self.x = x_t.detach().clone()
        self.mem, self.mask = (m.detach().clone() for m in memory)
        self.t = torch.zeros(self.mem.shape[0], dtype=torch.long, device=x_t.device)
        side = torch.cuda.Stream(device=x_t.device)
        side.wait_stream(torch.cuda.current_stream(x_t.device))
        with torch.cuda.stream(side):  # warm-up off the capture stream (cuBLAS handles, kernels chosen)
            for _ in range(2):
                self._forward()
        torch.cuda.current_stream(x_t.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = self._forward()

    def _forward(self) -> torch.Tensor:
        return guided_forward(self.model, self.x, self.t, self.mem, self.mask, self.guidance, self.split_hands)

    def __call__(self, x_t: torch.Tensor, t: int, memory: tuple) -> torch.Tensor:
        self.x.copy_(x_t)
        self.t.fill_(int(t))
        self.mem.copy_(memory[0])
        self.mask.copy_(memory[1])
        self.graph.replay()
        return self.out.clone()


class DiffusionPipeline:
    """Holds the denoiser (EMA weights), the scheduler, the text encoder and the hands.

    On a CUDA device the guided step is replayed as a CUDA graph (``cuda_graphs``; one capture per
    window shape, text length and guidance, kept for later generations) and the text encoder runs
    on the same GPU."""

    def __init__(self, model: Denoiser, text_encoder=None, hands=None, scheduler: DDIMScheduler | None = None,
                 steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE, overlap: int = DEFAULT_OVERLAP,
                 threads: int | None = SAMPLING_THREADS, hand_texts: bool = True, close_pinches: bool = True,
                 split_hands: bool = True, joint_limits: bool = True):
        if not 0 <= overlap < model.config.frames:
            raise ValueError(f"overlap must be 0..{model.config.frames - 1} frames; got {overlap}")
        self.model = model.eval()
        self.scheduler = scheduler or DDIMScheduler(SchedulerConfig())
        self._text_encoder = text_encoder
        self._hands = hands
        self.steps, self.guidance, self.overlap, self.threads = steps, guidance, overlap, threads
        self.hand_texts = hand_texts  # fill empty Left/Right fields from the whole text (hand_texts.py)
        self.close_pinches = close_pinches  # make pinches the prompt names touch (contacts.py)
        # each hand from its own text when the prompt gives each hand a separate action (hand_texts.separate_hands)
        self.split_hands = split_hands
        self.joint_limits = joint_limits  # ease free finger joints back inside their anatomical limits (limits.py)
        self.cuda_graphs = True  # replay the guided step as a CUDA graph on a GPU (no effect on the CPU)
        self._graphs: dict = {}

    @property
    def device(self) -> torch.device:
        return self.model.x_mean.device

    @property
    def text_encoder(self):
        if self._text_encoder is None:
            from engine.diffusion.text_encoder import shared_text_encoder
            self._text_encoder = shared_text_encoder()
            if self.device.type == "cuda" and hasattr(self._text_encoder, "to"):
                self._text_encoder.to(self.device)  # results still come back on the CPU
        return self._text_encoder

    @property
    def hands(self):
        if self._hands is None:
            from engine.hands import default_hands_cpu
            self._hands = default_hands_cpu()
        return self._hands

    # --- pieces ---------------------------------------------------------------------------
    def encode_prompts(self, prompts: list[Prompt]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts (B,) -> conditional memory (B, 3, M, D) and mask; encoded once, reused every step."""
        texts = [getattr(p, b) for p in prompts for b in BRANCHES]
        tokens, mask = self.text_encoder.encode(texts)  # (B*3, L, 384)
        B = len(prompts)
        tokens = tokens.reshape(B, 3, *tokens.shape[1:]).to(self.device)
        mask = mask.reshape(B, 3, -1).to(self.device)
        return self.model.encode_condition(tokens, mask)

    def encode_split(self, prompt: Prompt) -> tuple[torch.Tensor, torch.Tensor]:
        """Split-by-hand sampling's conditions (``hand_texts.hand_prompts``), encoded once: memory
        (2, 3, M, D) and mask, the left hand's row first. A joined whole text over the encoder's
        token limit is replaced by the prompt's own whole text."""
        rows = []
        for p in hand_prompts(prompt):
            try:
                self.text_encoder.check_text(p.text, "prompt.text")
            except ValueError:
                p = Prompt(prompt.text, p.left, p.right)
            rows.append(self.encode_prompts([p]))
        return _cat_memory(*rows)

    def _with_hand_texts(self, prompt: Prompt) -> Prompt:
        """The prompt with empty Left/Right fields filled from its whole text; a derived text the
        encoder cannot take (over its token limit) is left empty rather than failing the user's prompt."""
        filled = fill_hand_texts(prompt)
        fields = {}
        for k in ("left", "right"):
            v = getattr(filled, k)
            if v and not getattr(prompt, k):
                try:
                    self.text_encoder.check_text(v, f"prompt.{k}")
                except ValueError:
                    v = ""
            fields[k] = v
        return Prompt(prompt.text, **fields)

    def null_memory(self, B: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = torch.zeros(B, 3, 1, self.model.config.text_dim, device=self.device)
        return self.model.encode_condition(tokens, torch.zeros(B, 3, 1, dtype=torch.bool, device=self.device))

    def rest_wrists(self, betas: np.ndarray) -> np.ndarray:
        """(2, 10) betas -> (2, 3) rest wrist J0 per hand (wrist paths set transl = path - J0)."""
        with torch.no_grad():
            return np.stack([self.hands.hand(h).rest_joints(torch.as_tensor(betas[h:h + 1]).to(self.hands.device))[0, 0]
                             .cpu().numpy() for h in range(2)])

    def guided_x0(self, x_t: torch.Tensor, t: int, cond: tuple, uncond: tuple, guidance: float,
                  split_hands: bool = False) -> torch.Tensor:
        """Conditional and unconditional x0 in ONE batched forward, mixed: u + g (c - u)
        (``split_hands``: ``cond`` is ``encode_split``'s two rows, see ``guided_forward``)."""
        mem = step_memory(cond, uncond, guidance)
        return guided_forward(self.model, x_t, torch.full((mem[0].shape[0],), t, device=x_t.device), *mem, guidance,
                              split_hands)

    def _guided_step(self, x_t: torch.Tensor, cond: tuple, uncond: tuple, guidance: float, split_hands: bool = False):
        """(x_t, t) -> guided x0 for one window: a replayed CUDA graph on a GPU, else ``guided_x0``."""
        if self.device.type != "cuda" or not self.cuda_graphs:
            return lambda x, t: self.guided_x0(x, t, cond, uncond, guidance, split_hands)
        mem = step_memory(cond, uncond, guidance)
        key = (tuple(x_t.shape), tuple(mem[0].shape), float(guidance), x_t.dtype, bool(split_hands))
        graph = self._graphs.pop(key, None)
        if graph is None:
            graph = GuidedStepGraph(self.model, x_t, mem, guidance, split_hands)
        self._graphs[key] = graph  # most recently used last
        while len(self._graphs) > GRAPH_CACHE:
            self._graphs.pop(next(iter(self._graphs)))
        return lambda x, t: graph(x, t, mem)

    def finish_pinches(self, x: torch.Tensor, betas: np.ndarray, prompt: Prompt,
                       keep: torch.Tensor | None = None) -> tuple[torch.Tensor, list[dict]]:
        """Raw motion (T, 2, 99) -> the same with every thumb-to-fingertip contact the prompt names
        closed (``contacts.close_pinches``; kept channels untouched), and one report per pinch. A
        take longer than one window is closed window by window, each with its own prompt segment
        ("pinch ..., then wave" pinches in the first window only; a pinch said once per window is
        made once per window), as the sampler generated it. Each window's change is computed from
        the sampler's take and cross-faded with its neighbours' over the frames they share, so a
        window that closes a pinch next to one that does not (or closes it differently) leaves no
        step at the join."""
        from engine.diffusion import contacts
        T, W = x.shape[0], self.model.config.frames
        starts = window_starts(T, W, self.overlap)
        segments = segment_prompts(check_prompt(prompt), len(starts))
        if self.hand_texts:
            segments = [self._with_hand_texts(p) for p in segments]
        named = [contacts.named_pinches(p) for p in segments]
        if not any(named):
            return x, []
        reports = []
        change = torch.zeros_like(x)
        weight = torch.zeros(T, 1, 1, dtype=x.dtype, device=x.device)
        with torch_threads(self.threads if self.device.type == "cpu" else None):
            for w, (s, pinches) in enumerate(zip(starts, named)):
                e = min(T, s + W)
                wt = crossfade(s, e, starts[w - 1] + W if w else None, starts[w + 1] if w + 1 < len(starts) else None)
                weight[s:e] += wt.to(weight)[:, None, None]
                if not pinches:
                    continue
                part, rep = contacts.close_pinches(x[s:e], betas, self.hands, pinches,
                                                   None if keep is None else keep[s:e])
                change[s:e] += wt.to(x)[:, None, None] * (part - x[s:e])
                reports += [{**r, "frames": [s, e]} for r in rep]
        out = x + change / weight.clamp_min(1e-12)
        if keep is not None:
            out = torch.where(keep.to(out.device), x, out)
        return out, reports

    # --- the loop -------------------------------------------------------------------------
    def generate_iter(self, prompt: str | Prompt, frames: int = 60, seed: int = 0,
                      constraints: Constraints | None = None, steps: int | None = None,
                      guidance: float | None = None, preview: bool = True,
                      close_pinches: bool | None = None, split_hands: bool | None = None,
                      joint_limits: bool | None = None) -> Iterator[dict]:
        """Validate everything now (bad input raises here, not at the first ``next``), then return
        the step generator. ``close_pinches``: None = the pipeline's setting (``close_pinches``);
        the last item's ``"pinches"`` lists what was closed. ``joint_limits``: None = the pipeline's
        setting; on, free finger joints past their anatomical limits are eased back inside
        (``limits.respect_limits``) before the pinches are closed; the last item's ``"limits"`` says how
        many joint-frames were. ``split_hands``: None = the pipeline's
        setting; on, a prompt that gives each hand its own action at the same time
        (``hand_texts.separate_hands``) has each hand generated from its own part (``encode_split``)."""
        prompt = check_prompt(prompt)
        close_pinches = self.close_pinches if close_pinches is None else bool(close_pinches)
        split_hands = self.split_hands if split_hands is None else bool(split_hands)
        joint_limits = self.joint_limits if joint_limits is None else bool(joint_limits)
        if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or not 1 <= frames <= MAX_FRAMES:
            raise ValueError(f"frames must be an integer in 1..{MAX_FRAMES}; got {frames!r}")
        steps = self.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= 1000:
            raise ValueError(f"steps must be an integer in 1..1000; got {steps!r}")
        guidance = self.guidance if guidance is None else float(guidance)
        if constraints is not None and not isinstance(constraints, Constraints):
            raise TypeError(f"constraints must be a Constraints; got {type(constraints).__name__}")
        constraints = constraints or Constraints()
        betas = constraints.betas()
        betas = np.zeros((2, 10), np.float32) if betas is None else betas
        keep_all, target_all = constraints.build(int(frames), self.rest_wrists(betas))  # (frames, 2, 99)
        starts = window_starts(int(frames), self.model.config.frames, self.overlap)
        problem = long_text_problem(prompt, int(frames), self.text_encoder.count_tokens, self.model.config.frames,
                                    self.overlap)
        if problem:
            raise ValueError(problem)
        prompts = bridge_segments(segment_prompts(prompt, len(starts)), self.text_encoder.count_tokens)
        if self.hand_texts:  # per window, so "left waves, then right claps" gives each window its hands
            prompts = [self._with_hand_texts(p) for p in prompts]
        return self._steps(prompt, prompts, starts, int(frames), int(seed), keep_all, target_all, betas,
                           int(steps), guidance, preview, close_pinches, split_hands, joint_limits)

    @torch.no_grad()
    def _steps(self, prompt, prompts, starts, frames, seed, keep_all, target_all, betas, steps, guidance,
               preview, close_pinches=True, split_hands=True, joint_limits=True) -> Iterator[dict]:
        W = self.model.config.frames
        threads = self.threads if self.device.type == "cpu" else None  # set per step, never across a yield
        with torch_threads(threads):
            split = [split_hands and separate_hands(p) for p in prompts]  # each hand its own action, per window
            memories = [self.encode_split(p) if sp else self.encode_prompts([p])  # once per generation
                        for p, sp in zip(prompts, split)]
            uncond = self.null_memory(1)
        gen = torch.Generator().manual_seed(int(seed))
        scheduler = copy.copy(self.scheduler)  # its own timesteps: generations may interleave
        timesteps = scheduler.set_timesteps(steps)
        mean, std = self.model.x_mean, self.model.x_std
        out = torch.zeros(frames, 2, keep_all.shape[-1], device=self.device)  # raw representation
        done = 0  # frames of ``out`` that are final
        total = steps * len(starts)
        for w, s in enumerate(starts):
            n = min(W, frames - s)
            keep = torch.zeros(W, *keep_all.shape[1:], dtype=torch.bool)
            target = torch.zeros(W, *keep_all.shape[1:])
            keep[:n], target[:n] = keep_all[s:s + n], target_all[s:s + n]
            ctx = done - s  # frames already generated by the previous window
            if ctx > 0:
                keep[:ctx], target[:ctx] = True, out[s:done].cpu()
            keep, target = keep.to(self.device), target.to(self.device)
            weight, source = inpaint.soft_weights(keep)
            exact_n = normalize(target, mean, std)  # (W, 2, 99)
            target_n = inpaint.ramp_targets(exact_n, source)[None]  # (1, W, 2, 99)
            weight = weight[None]
            plan = inpaint.seam_plan(keep)  # the seam fill of this window's mask, built once
            x_t = torch.randn((1, W, 2, keep.shape[-1]), generator=gen).to(self.device)
            guided = self._guided_step(x_t, memories[w], uncond, guidance, split[w])
            for i, t in enumerate(timesteps.tolist()):
                with torch_threads(threads):
                    x0 = guided(x_t, t)
                    if i >= len(timesteps) - SEAM_STEPS:  # exact kept values + smooth fill (see inpaint)
                        x0 = inpaint.seam_blend(x0[0], exact_n, keep, plan=plan)[None]
                    else:  # HandX's soft ramp
                        x0 = inpaint.blend(x0, target_n, weight)
                    x_t = scheduler.step(x0, t, x_t, generator=gen)
                step = w * steps + i + 1
                if step < total:
                    item = {"step": step, "of": total, "window": w, "windows": len(starts)}
                    if preview:
                        cur = inpaint.impose(denormalize(x0[0], mean, std), target, keep)[:n]
                        item["preview"] = tensor_to_clip(torch.cat([out[:s], cur]), betas, prompt=prompt)
                    yield item
            # the last x0 is already seam-blended (normalised); impose again in raw units: bit-exact values
            out[s:s + n] = inpaint.impose(denormalize(x0[0], mean, std), target, keep)[:n]
            done = s + n
        pinches, limits = [], None
        if joint_limits:  # before the pinches: closing them keeps joints inside the limits it starts from
            with torch_threads(threads):
                out, limits = respect_limits(out, betas, self.hands, keep_all.to(out.device))
        if close_pinches:
            with torch.enable_grad():
                out, pinches = self.finish_pinches(out, betas, prompt, keep_all.to(out.device))
        clip = tensor_to_clip(out, betas, prompt=prompt)
        yield {"step": total, "of": total, "window": len(starts) - 1, "windows": len(starts),
               "preview": clip, "clip": clip, "pinches": pinches, "limits": limits}

    def generate(self, prompt: str | Prompt, frames: int = 60, seed: int = 0,
                 constraints: Constraints | None = None, steps: int | None = None,
                 guidance: float | None = None, close_pinches: bool | None = None, split_hands: bool | None = None,
                 joint_limits: bool | None = None):
        """Run ``generate_iter`` to the end and return the Clip."""
        item = {}
        for item in self.generate_iter(prompt, frames, seed, constraints, steps, guidance, preview=False,
                                       close_pinches=close_pinches, split_hands=split_hands,
                                       joint_limits=joint_limits):
            pass
        return item["clip"]


def load_pipeline(folder=None, device: str | torch.device = "cpu", hands=None, text_encoder=None) -> DiffusionPipeline:
    """A checkpoint folder (default: the shipped ``resources/models/diffusion``) -> pipeline whose
    defaults (steps, guidance, overlap) come from the checkpoint's ``meta`` when it names them."""
    from engine.diffusion.checkpoint import load_model
    if folder is None:
        from engine.resources import resource_path
        folder = resource_path(SHIPPED)
    model, config = load_model(folder, device)
    meta = config.get("meta", {})
    return DiffusionPipeline(model, text_encoder, hands, steps=int(meta.get("sampler_steps", DEFAULT_STEPS)),
                             guidance=float(meta.get("guidance", DEFAULT_GUIDANCE)),
                             overlap=int(meta.get("overlap", DEFAULT_OVERLAP)),
                             hand_texts=bool(meta.get("hand_texts", True)),
                             close_pinches=bool(meta.get("close_pinches", True)),
                             split_hands=bool(meta.get("split_hands", True)),
                             joint_limits=bool(meta.get("joint_limits", True)))


def _cat_memory(a: tuple, b: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate two (memory, mask) pairs along the batch, padding the token axis."""
    (ma, ka), (mb, kb) = a, b
    M = max(ma.shape[2], mb.shape[2])
    pad = lambda m, k: (torch.nn.functional.pad(m, (0, 0, 0, M - m.shape[2])),  # noqa: E731
                        torch.nn.functional.pad(k, (0, M - k.shape[2])))
    (ma, ka), (mb, kb) = pad(ma, ka), pad(mb, kb)
    return torch.cat([ma, mb]), torch.cat([ka, kb])
