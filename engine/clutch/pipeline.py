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
T2M_TEMPERATURE, T2M_TOP_K = 0.8, 20  # sampling for generate(); captions are greedy
# Captions are plain greedy: a word-piece n-gram ban (TextProcessor(no_repeat_ngram=n)) stops the
# "first X and finally X" loops but makes non-words ("makes a pinches") and lowered BLEU-4 / ROUGE-L
# on 128 test clips (n=0: 0.346 / 0.449, n=4: 0.333 / 0.432, n=6: 0.342 / 0.439; docs/clutch.md).
CAPTION_NO_REPEAT_NGRAM = 0
# Inference threads: on the shared 2-core CPU 1 thread decoded a 2 s clip in 84 ms, 2 threads in
# ~1 s while another process held a core (OpenMP spin); see docs/clutch.md.
INFER_THREADS = 1


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
                        temperature: float = T2M_TEMPERATURE, top_k: int = T2M_TOP_K) -> dict[str, torch.Tensor]:
        """-> SHIFT codes {stream: (ceil(frames/8),)}; raises ``InvalidMotionStream`` on a bad stream."""
        if not isinstance(frames, int) or not DOWNSAMPLE <= frames <= self.max_frames:
            raise ValueError(f"frames must be an int in {DOWNSAMPLE}..{self.max_frames}; got {frames!r}")
        text = self._prompt_text(prompt)
        ids = (fill(self.vocab, pick_template("t2m", 0), caption=text) if self.instruct
               else self.vocab.encode_text(text, field="prompt"))
        self.lm.check_input(ids, "prompt")
        steps = math.ceil(frames / DOWNSAMPLE)
        inp = torch.tensor([ids], device=self.device)
        gen = torch.Generator().manual_seed(int(seed))
        out = self.lm.decode(inp, torch.ones_like(inp, dtype=torch.bool), MotionStreamProcessor(self.vocab, steps, steps),
                             max_len=len(self.vocab.streams) * steps + 2, stop_id=self.vocab.eom_id,
                             temperature=temperature, top_k=top_k, generator=gen)
        return self.vocab.parse_motion(out[0].tolist())

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
    def caption(self, clip: Clip) -> str:
        """Clip (8..max_frames frames at 30 fps) -> one sentence."""
        with torch_threads(INFER_THREADS if self.device.type == "cpu" else None):
            return self._caption(clip)

    def _caption(self, clip: Clip) -> str:
        codes = self.caption_tokens(clip)
        ids = (fill(self.vocab, pick_template("m2t", 0), codes=codes) if self.instruct
               else self.vocab.motion_ids(codes))
        self.lm.check_input(ids, "motion")
        inp = torch.tensor([ids], device=self.device)
        max_len = self.lm.config.max_text_tokens
        processor = TextProcessor(self.vocab, max_len, self.caption_no_repeat_ngram)
        out = self.lm.decode(inp, torch.ones_like(inp, dtype=torch.bool), processor,
                             max_len=max_len, stop_id=self.vocab.eos_id)[0].tolist()
        if self.vocab.eos_id not in out:
            raise RuntimeError("the caption did not end within the length limit")
        text = self.vocab.decode_text(out)
        if not text.strip():
            raise RuntimeError("the model produced an empty caption")
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
