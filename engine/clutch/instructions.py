"""MotionGPT-style multi-task instruction prompts for CLUTCH instruction fine-tuning.

Four tasks, each with many paraphrased templates: text->motion (``t2m``), motion->text (``m2t``),
motion in-betweening (``inbetween``: first and last steps given, the middle generated) and
continuation (``continue``: a prefix given, the rest generated). Slots: ``{caption}`` (text),
``{motion}`` (a whole motion), ``{start}`` / ``{end}`` (in-betweening context), ``{prefix}``.
Which template and which split point is used follows from the seed alone (deterministic).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

TASKS = ("t2m", "m2t", "inbetween", "continue")

TEMPLATES: dict[str, tuple[str, ...]] = {
    "t2m": (
        "Generate a hand motion for: {caption}",
        "Show me hands doing this: {caption}",
        "Animate both hands: {caption}",
        "Create the two-hand motion described here: {caption}",
        "Make the hands move like this: {caption}",
        "Produce hand motion that matches the text: {caption}",
        "Give me a motion of the hands where {caption}",
        "Turn this description into hand motion: {caption}",
        "How would the hands move? {caption}",
        "Synthesize bimanual motion: {caption}",
        "Perform with two hands: {caption}",
        "Write the motion tokens for: {caption}",
        "Please generate the hands for this caption: {caption}",
        "Text to motion: {caption}",
    ),
    "m2t": (
        "Describe this hand motion: {motion}",
        "What do the hands do here? {motion}",
        "Caption the motion: {motion}",
        "Explain in words what happens in {motion}",
        "Write a sentence about this two-hand motion: {motion}",
        "Tell me what the hands are doing: {motion}",
        "Give a short description of {motion}",
        "Summarize the movement of both hands: {motion}",
        "What motion is this? {motion}",
        "Describe what the left and right hands do in {motion}",
        "Motion to text: {motion}",
        "Please caption this hand animation: {motion}",
    ),
    "inbetween": (
        "Fill in the middle of the motion between {start} and {end}",
        "Complete the missing part: it starts with {start} and ends with {end}",
        "Generate the in-between motion from {start} to {end}",
        "Connect these two motions smoothly: {start} {end}",
        "What happens between {start} and {end} ?",
        "In-between the hands from {start} to {end}",
        "Bridge the gap between {start} and {end}",
        "Here is the beginning {start} and the end {end} ; produce the middle",
        "Interpolate the hand motion between {start} and {end}",
        "Motion in-betweening: {start} then {end}",
        "Write the frames that go between {start} and {end}",
        "Given the start {start} and the finish {end} , generate the transition",
    ),
    "continue": (
        "Continue this hand motion: {prefix}",
        "What comes next after {prefix} ?",
        "Predict how the hands keep moving after {prefix}",
        "Finish the motion that begins with {prefix}",
        "Extend the motion: {prefix}",
        "Go on from here: {prefix}",
        "Generate the rest of the motion after {prefix}",
        "Forecast the next hand movement following {prefix}",
        "Carry on with the hands from {prefix}",
        "Motion continuation: {prefix}",
        "Complete the sequence that starts with {prefix}",
        "Given the start {prefix} , continue the motion",
    ),
}
_SLOT = re.compile(r"\{(\w+)\}")
SLOTS = {"t2m": {"caption"}, "m2t": {"motion"}, "inbetween": {"start", "end"}, "continue": {"prefix"}}


def template_texts() -> list[str]:
    """Every template with its slots removed (to build the text vocabulary)."""
    return [_SLOT.sub(" ", t) for ts in TEMPLATES.values() for t in ts]


def pick_template(task: str, seed: int) -> str:
    if task not in TEMPLATES:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    return TEMPLATES[task][random.Random(f"{task}:{seed}").randrange(len(TEMPLATES[task]))]


@dataclass(frozen=True)
class Instruction:
    task: str
    template: str
    input_ids: list[int]
    target_ids: list[int]


def split_points(task: str, steps: int, seed: int) -> tuple[int, int]:
    """Token steps [0, a) and [b, steps) are the given context; [a, b) is generated."""
    rng = random.Random(f"split:{task}:{seed}")
    if task == "inbetween":
        if steps < 3:
            raise ValueError(f"in-betweening needs >= 3 motion steps; got {steps}")
        a = rng.randint(1, max(1, steps // 3))
        b = steps - rng.randint(1, max(1, steps // 3))
        return a, max(b, a + 1)
    if task == "continue":
        if steps < 2:
            raise ValueError(f"continuation needs >= 2 motion steps; got {steps}")
        return rng.randint(max(1, steps // 4), max(1, steps // 2)), steps
    return 0, steps


def fill(vocab, template: str, caption: str = "", codes: dict | None = None, a: int = 0, b: int | None = None) -> list[int]:
    """A template -> input ids (text pieces tokenized; motion slots as ``<som> ... <eom>`` streams)."""
    ids: list[int] = []
    pos = 0
    for m in _SLOT.finditer(template):
        text = template[pos:m.start()].strip()
        if text:
            ids += vocab.encode_text(text)
        slot = m.group(1)
        if slot == "caption":
            ids += vocab.encode_text(caption, field="caption")
        elif slot == "motion":
            ids += vocab.motion_ids(codes)
        elif slot in ("start", "prefix"):
            ids += vocab.motion_ids(codes, 0, a)
        elif slot == "end":
            ids += vocab.motion_ids(codes, b, None)
        else:
            raise ValueError(f"unknown template slot {{{slot}}}")
        pos = m.end()
    text = template[pos:].strip()
    if text:
        ids += vocab.encode_text(text)
    return ids


def make_instruction(vocab, task: str, caption: str, codes: dict, seed: int) -> Instruction:
    """One training sample of ``task`` for a (caption, SHIFT codes {stream: (N,)}) pair."""
    template = pick_template(task, seed)
    steps = len(codes[vocab.streams[0]])
    a, b = split_points(task, steps, seed)
    if task == "t2m":
        return Instruction(task, template, fill(vocab, template, caption=caption), vocab.motion_ids(codes))
    if task == "m2t":
        return Instruction(task, template, fill(vocab, template, codes=codes), vocab.encode_text(caption, eos=True))
    return Instruction(task, template, fill(vocab, template, codes=codes, a=a, b=b), vocab.motion_ids(codes, a, b))


__all__ = ["TASKS", "TEMPLATES", "Instruction", "make_instruction", "pick_template", "template_texts",
           "split_points", "fill"]
