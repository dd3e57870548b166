"""CLUTCH inference: text -> motion tokens -> SHIFT decoder -> Clip, and Clip -> SHIFT tokens -> text.

A model folder holds ``shift/`` (the tokenizer) and ``lm/`` (the language model + vocabulary);
a training run's ``OUT/shift/model`` + ``OUT/<stage>/model`` work too (``load_pipeline``).
Length: a clip is 8 frames per motion token step; ``frames`` that are not a multiple of 8 are
generated as ``ceil(frames / 8)`` steps and cropped.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from engine.clutch.instructions import fill, pick_template
from engine.clutch.language_model import MotionLM, MotionStreamProcessor, TextProcessor, load_lm
from engine.clutch.shift import DOWNSAMPLE, ShiftTokenizer, load_shift
from engine.diffusion.representation import clip_to_tensor, tensor_to_clip
from engine.motion.clip import Clip, Prompt
from engine.threads import torch_threads

SHIPPED = "models/clutch"  # under resources/
FPS = 30.0
T2M_TEMPERATURE, T2M_TOP_K = 0.8, 20  # sampling for generate()
# generate() draws this many token streams in one batch and keeps the one the LM's own captioner
# scores highest for the prompt (log p(prompt | motion)). Val split, 256 clips, v3 weights, T2M R@3 / R@1:
# 1: 0.887 / 0.672, 8: 0.934 / 0.699, 16: 0.930 / 0.777; 2 s clip on the 2-core VM 157 / 307 / 444 ms.
T2M_CANDIDATES = 8
# Caption decoding has no n-gram ban: one (TextProcessor(no_repeat_ngram=n)) stops the
# "first X and finally X" loops but makes non-words ("makes a pinches") and lowered BLEU-4 / ROUGE-L
# on 128 test clips (n=0: 0.346 / 0.449, n=4: 0.333 / 0.432, n=6: 0.342 / 0.439; docs/clutch.md).
CAPTION_NO_REPEAT_NGRAM = 0
# caption() decodes the greedy caption and CAPTION_CANDIDATES - 1 sampled ones in one batch, then keeps
# the one that best explains the motion: log p(motion | caption) (the LM's text -> motion task)
# + CAPTION_LIKELIHOOD_WEIGHT x log p(caption | motion) (how natural a caption of it the LM finds it).
# Val split, 256 clips, v3 weights, M2T R@1 / R@3 / BLEU-4: greedy 0.641 / 0.867 / 0.599, 4: 0.699 / 0.867 / 0.623,
# 8: 0.746 / 0.895 / 0.636 (60 / 201 / 311 ms per caption; 172 ms with CAPTION_MAX_LENGTH_RATIO, val
# 0.730 / 0.898 / 0.641); weight 0: BLEU-4 0.544, 0.5-1: R@3 0.867.
CAPTION_CANDIDATES, CAPTION_TEMPERATURE, CAPTION_TOP_K = 8, 0.7, 20
CAPTION_LIKELIHOOD_WEIGHT = 0.25
# Sampled captions longer than this x the greedy one (+ 2 word pieces) are dropped unfinished: on
# val the kept caption was > 1.5x the greedy one's words for 9 of 256 clips (they average shorter),
# and the longest sample set the batch's decoding time.
CAPTION_MAX_LENGTH_RATIO = 1.5
# Inference threads: on the shared 2-core CPU 1 thread decoded a 2 s clip in 84 ms, 2 threads in
# ~1 s while another process held a core (OpenMP spin); see docs/clutch.md.
INFER_THREADS = 1


def _count(value, default: int, what: str) -> int:
    """A per-call candidate count (None: the pipeline's ``default``), checked: an int >= 1."""
    k = default if value is None else value
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{what} must be an int >= 1; got {k!r}")
    return k


class ClutchPipeline:
    def __init__(self, shift: ShiftTokenizer, lm: MotionLM, lm_meta: dict | None = None,
                 device: str | torch.device = "cpu"):
        if lm.vocab.codebook_size != shift.config.codebook_size or lm.vocab.streams != shift.streams:
            raise ValueError("the LM's motion vocabulary does not match the SHIFT tokenizer")
        self.device = torch.device(device)
        self.shift, self.lm = shift.to(self.device).eval(), lm.to(self.device).eval()
        self.vocab = lm.vocab
        self.instruct = (lm_meta or {}).get("prompt_style") == "instruct"
        self.caption_no_repeat_ngram = CAPTION_NO_REPEAT_NGRAM  # 0 = plain greedy
        self.t2m_candidates = T2M_CANDIDATES
        self.caption_candidates = CAPTION_CANDIDATES  # 1 = the greedy caption alone
        # a caption's pinching finger / hand checked against the clip's own thumb contacts
        # (diffusion.contacts.ground_pinches): the LM confuses ring and little, left and right
        self.ground_pinches = True

    @property
    def max_frames(self) -> int:
        return self.lm.config.max_motion_steps * DOWNSAMPLE

    # --- text -> motion -----------------------------------------------------------------------
    def _prompt_text(self, prompt: str | Prompt) -> str:
        if isinstance(prompt, Prompt):
            text = prompt.text.strip() or " ".join(t.strip() for t in (prompt.left, prompt.right) if t.strip())
        elif isinstance(prompt, str):
            text = prompt.strip()
        else:
            raise ValueError(f"prompt must be a str or Prompt; got {type(prompt).__name__}")
        if not text:
            raise ValueError("prompt is empty: describe what the hands should do")
        return text

    @torch.no_grad()
    def generate_tokens(self, prompt: str | Prompt, frames: int = 60, seed: int = 0,
                        temperature: float = T2M_TEMPERATURE, top_k: int = T2M_TOP_K,
                        candidates: int | None = None) -> dict[str, torch.Tensor]:
        """-> SHIFT codes {stream: (ceil(frames/8),)}; raises ``InvalidMotionStream`` on a bad stream.
        ``candidates`` streams are drawn in one batch and the one whose motion the LM itself
        captions most likely as the prompt is kept (None = ``self.t2m_candidates``; 1 = plain
        sampling)."""
        self._check_frames(frames)
        text = self._prompt_text(prompt)
        ids = self._t2m_ids(text)
        self.lm.check_input(ids, "prompt")
        k = _count(candidates, self.t2m_candidates, "candidates")
        steps = math.ceil(frames / DOWNSAMPLE)
        inp = torch.tensor([ids] * k, device=self.device)
        gen = torch.Generator().manual_seed(int(seed))
        out = self.lm.decode(inp, torch.ones_like(inp, dtype=torch.bool), MotionStreamProcessor(self.vocab, steps, steps),
                             max_len=len(self.vocab.streams) * steps + 2, stop_id=self.vocab.eom_id,
                             temperature=temperature, top_k=top_k, generator=gen)
        drawn = [self.vocab.parse_motion(row) for row in out.tolist()]
        if k == 1:
            return drawn[0]
        return drawn[int(self.caption_log_likelihood(drawn, text).argmax())]

    def _m2t_ids(self, codes: dict) -> list[int]:
        """The LM's motion -> text input for SHIFT codes (what ``caption`` feeds it)."""
        return fill(self.vocab, pick_template("m2t", 0), codes=codes) if self.instruct else self.vocab.motion_ids(codes)

    def _t2m_ids(self, text: str) -> list[int]:
        """The LM's text -> motion input for a prompt (what ``generate`` feeds it)."""
        return (fill(self.vocab, pick_template("t2m", 0), caption=text) if self.instruct
                else self.vocab.encode_text(text, field="prompt"))

    @torch.no_grad()
    def _sequence_log_prob(self, inputs: list[list[int]], targets: list[list[int]], allowed_at) -> torch.Tensor:
        """Teacher-forced log p(target | input) (nats, summed over the target) per pair under the
        constrained decoder (``MotionLM.target_log_prob``); any lengths (padded and masked here)."""
        pad = self.vocab.pad_id
        for ids in inputs:
            self.lm.check_input(ids, "input")
        L, M = max(map(len, inputs)), max(map(len, targets))
        inp = torch.tensor([i + [pad] * (L - len(i)) for i in inputs], device=self.device)
        mask = torch.tensor([[1] * len(i) + [0] * (L - len(i)) for i in inputs], dtype=torch.bool, device=self.device)
        labels = torch.tensor([t + [pad] * (M - len(t)) for t in targets], device=self.device)
        counted = torch.tensor([[1] * len(t) + [0] * (M - len(t)) for t in targets], dtype=torch.bool,
                               device=self.device)
        return self.lm.target_log_prob(inp, mask, labels, counted, allowed_at)

    def _text_allowed(self):
        return TextProcessor(self.vocab, self.lm.config.max_text_tokens).allowed

    def caption_log_likelihood(self, codes: list[dict], text: str) -> torch.Tensor:
        """log p(text | motion) under the LM's own (constrained) motion -> text task, one value (nats,
        summed over the text's word pieces and its end) per entry of ``codes`` (SHIFT codes of equal
        length).
        ``generate`` keeps the drawn candidate that best explains its prompt."""
        if not codes:
            raise ValueError("codes is empty: give at least one candidate")
        inputs = [self._m2t_ids(c) for c in codes]
        if len({len(i) for i in inputs}) != 1:
            raise ValueError("candidates must have the same number of motion steps")
        target = self.vocab.encode_text(text, eos=True, field="prompt")
        return self._sequence_log_prob(inputs, [target] * len(inputs), self._text_allowed())

    def motion_log_likelihood(self, codes: dict, texts: list[str]) -> torch.Tensor:
        """For candidate captions of one motion: log p(motion | text) under the LM's (constrained)
        text -> motion task, (len(texts),) nats - how well each caption explains the motion."""
        if not texts:
            raise ValueError("texts is empty: give at least one caption")
        motion = self.vocab.motion_ids(codes)
        steps = len(codes[self.vocab.streams[0]])
        return self._sequence_log_prob([self._t2m_ids(t) for t in texts], [motion] * len(texts),
                                       MotionStreamProcessor(self.vocab, steps, steps).allowed)

    def generate_iter(self, prompt: str | Prompt, frames: int = 60, seed: int = 0, constraints=None,
                      steps: int | None = None, guidance: float | None = None, close_pinches: bool | None = None,
                      preview: bool = True, candidates: int | None = None, split_hands: bool | None = None,
                      joint_limits: bool | None = None):
        """``generate`` in the shape of the diffusion pipeline's ``generate_iter`` (what the app's
        worker runs): one pass, so a generator with a single item ``{"step": 1, "of": 1, "clip",
        "pinches": []}``. The diffusion-only settings must be None (one clear error, raised here,
        not at the first ``next``); ``preview`` is accepted and ignored (there is nothing to preview)."""
        given = [name for name, v in (("constraints", constraints), ("steps", steps), ("guidance", guidance),
                                      ("pinch closing", close_pinches), ("hand splitting", split_hands),
                                      ("joint limits", joint_limits))
                 if v is not None]
        if given:
            raise ValueError(f"the clutch model takes no {', '.join(given)}; use the diffusion model for them")
        self._check_frames(frames)  # bad input fails now
        self._prompt_text(prompt)
        return self._one_pass(prompt, frames, seed, candidates)

    def _check_frames(self, frames) -> None:
        if not isinstance(frames, int) or isinstance(frames, bool) or not DOWNSAMPLE <= frames <= self.max_frames:
            raise ValueError(f"frames must be an int in {DOWNSAMPLE}..{self.max_frames}; got {frames!r}")

    def _one_pass(self, prompt, frames, seed, candidates):
        yield {"step": 1, "of": 1, "clip": self.generate(prompt, frames, seed, candidates=candidates), "pinches": []}

    @torch.no_grad()
    def generate(self, prompt: str | Prompt, frames: int = 60, seed: int = 0, **sampling) -> Clip:
        """Text -> Clip of ``frames`` frames (betas zero, 30 fps)."""
        with torch_threads(INFER_THREADS if self.device.type == "cpu" else None):
            codes = self.generate_tokens(prompt, frames, seed, **sampling)
            x = self.shift.decode({s: c[None].to(self.device) for s, c in codes.items()}, frames)  # (1, frames, 2, 99)
        p = prompt if isinstance(prompt, Prompt) else Prompt(text=prompt)
        return tensor_to_clip(x[0], np.zeros((2, 10), np.float32), fps=FPS, prompt=p)

    # --- motion -> text -----------------------------------------------------------------------
    @torch.no_grad()
    def caption_tokens(self, clip: Clip) -> dict[str, torch.Tensor]:
        if not isinstance(clip, Clip):
            raise ValueError(f"caption needs a Clip; got {type(clip).__name__}")
        if clip.num_frames < DOWNSAMPLE:
            raise ValueError(f"clip is too short to caption: {clip.num_frames} frames; at least {DOWNSAMPLE} "
                             f"(one motion token) are needed")
        if clip.num_frames > self.max_frames:
            raise ValueError(f"clip is too long to caption: {clip.num_frames} frames; at most {self.max_frames} "
                             f"({self.max_frames / FPS:.1f} s) - caption a shorter range")
        if abs(clip.fps - FPS) > 1e-3:
            raise ValueError(f"clip must be at {FPS:g} fps to caption; got {clip.fps:g} (resample it first)")
        x = clip_to_tensor(clip)[None].to(self.device)  # (1, T, 2, 99)
        return {s: c[0] for s, c in self.shift.encode(x).items()}

    @torch.no_grad()
    def caption(self, clip: Clip, candidates: int | None = None) -> str:
        """Clip (8..max_frames frames at 30 fps) -> one sentence. ``candidates``: the greedy caption
        and candidates - 1 sampled ones (None = ``self.caption_candidates``; 1 = greedy alone)."""
        with torch_threads(INFER_THREADS if self.device.type == "cpu" else None):
            return self._caption(clip, candidates)

    def _caption(self, clip: Clip, candidates: int | None = None) -> str:
        k = _count(candidates, self.caption_candidates, "caption candidates")
        codes = self.caption_tokens(clip)
        ids = self._m2t_ids(codes)
        self.lm.check_input(ids, "motion")
        inp = torch.tensor([ids], device=self.device)
        max_len = self.lm.config.max_text_tokens
        processor = TextProcessor(self.vocab, max_len, self.caption_no_repeat_ngram)
        # row 0 greedy, rows 1.. sampled (seeded: a clip always gets the same caption), one batch
        many = inp.expand(k, -1)
        out, likely = self.lm.decode(many, torch.ones_like(many, dtype=torch.bool), processor, max_len=max_len,
                                     stop_id=self.vocab.eos_id, temperature=CAPTION_TEMPERATURE if k > 1 else 0.0,
                                     top_k=CAPTION_TOP_K, generator=torch.Generator().manual_seed(0),
                                     greedy_rows=1, return_log_prob=True, sampled_len_factor=CAPTION_MAX_LENGTH_RATIO)
        rows = out.tolist()
        found: dict[str, float] = {}  # text -> log p(text | motion) of its first decode
        for r, lp in zip(rows, likely.tolist()):
            if self.vocab.eos_id in r:
                t = self.vocab.decode_text(r)
                if t.strip():
                    found.setdefault(t, lp)
        if not found:
            if self.vocab.eos_id not in rows[0]:
                raise RuntimeError("the caption did not end within the length limit")
            raise RuntimeError("the model produced an empty caption")
        texts = list(found)
        text = texts[0]
        if len(texts) > 1:
            explains = self.motion_log_likelihood(codes, texts)
            likely = torch.tensor([found[t] for t in texts], device=explains.device)
            text = texts[int((explains + CAPTION_LIKELIHOOD_WEIGHT * likely).argmax())]
        if self.ground_pinches:
            from engine.diffusion.contacts import ground_pinches
            text, _ = ground_pinches(text, clip.joints)
        return text[:1].upper() + text[1:]


def load_pipeline(lm_folder: str | Path, shift_folder: str | Path, device: str | torch.device = "cpu") -> ClutchPipeline:
    shift, _ = load_shift(shift_folder, device)
    lm, config = load_lm(lm_folder, device)
    return ClutchPipeline(shift, lm, config.get("meta", {}), device)


def load_clutch(folder: str | Path, device: str | torch.device = "cpu") -> ClutchPipeline:
    """A CLUTCH model folder: ``folder/shift`` + ``folder/lm``."""
    folder = Path(folder)
    for sub in ("shift", "lm"):
        if not (folder / sub / "config.json").is_file():
            raise FileNotFoundError(f"{folder / sub}: missing (a CLUTCH model folder holds shift/ and lm/)")
    return load_pipeline(folder / "lm", folder / "shift", device)


__all__ = ["ClutchPipeline", "load_pipeline", "load_clutch", "SHIPPED"]
