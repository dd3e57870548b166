"""Corpus statistics from the index alone (no array is read): split counts, action, verb,
event-type and caption-length distributions, and HandX Table 1(b)'s bimanual quality metrics
(appendix A.5): contact ratio, contact duration, contact frequency and motion intensity (A.4).

The contact test per frame is the one ``engine.motion.events`` uses for ``contact_ratio``
(fingertip-fingertip across hands, fingertip-palm, palm-palm or hand-hand contact); its spans
are stored per clip in ``events.contact_spans`` at build time. Intensity is
``engine.data.cleaning.hand_intensity`` (deg/s per hand), stored as ``events.intensity``.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import numpy as np

from engine.data.corpus import LEVELS, SPLITS, Corpus

# Verbs that only appear after a subject in the clause banks ("the palms come together").
_CLAUSE_VERBS = ("come", "meet", "press", "separate", "part", "move", "touch", "stay", "remain", "keep", "draw",
                 "approach", "widen", "lift", "leave", "rest", "hover", "rotate", "turn", "pull", "mirror",
                 "make", "do", "hold")
_NOT_VERBS = {"the", "a", "an", "its", "their", "both", "all", "every", "half", "still", "back", "side", "hand", "hands"}


def _strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _strings(v)


@lru_cache(maxsize=1)
def verb_lexicon() -> dict[str, str]:
    """Inflected form -> base verb, from the phrase bank's verb-first phrases (every ``*_VPS``
    table and the action phrases) plus the clause verbs; forms are base, -s and -ing."""
    from engine.data import phrases
    from engine.data.captions import gerund, third_person
    bases = set(_CLAUSE_VERBS)
    tables = [v for k, v in vars(phrases).items() if k.endswith("_VPS")] + [phrases.ACTION_PHRASES]
    for table in tables:
        for s in _strings(table):
            for part in s.split(" && "):
                w = part.strip().split(" ", 1)[0].lower()
                if re.fullmatch(r"[a-z][a-z-]+", w) and w not in _NOT_VERBS and w not in ("hands", "one", "two"):
                    bases.add(w)
    out = {}
    for b in sorted(bases):
        for form in (b, third_person(b), gerund(b)):
            out.setdefault(form, b)
    return out


def caption_verbs(text: str, lexicon: dict[str, str]) -> list[str]:
    """Base verbs in a caption (a token counts if the lexicon knows it; nouns that share a verb's
    spelling, like "point" or "open", are counted too: the bank uses them mostly as verbs)."""
    return [lexicon[t] for t in re.findall(r"[a-z][a-z-]*", text.lower()) if t in lexicon]


def _describe(x) -> dict:
    a = np.asarray(x, np.float64)
    if a.size == 0:
        return {"mean": 0.0, "median": 0.0, "min": 0.0, "max": 0.0}
    return {"mean": round(float(a.mean()), 2), "median": round(float(np.median(a)), 2),
            "min": round(float(a.min()), 2), "max": round(float(a.max()), 2)}


def corpus_stats(corpus: Corpus | str, top_verbs: int = 25) -> dict:
    """All statistics of a corpus as a JSON-able dict."""
    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    fps, frames = float(c.meta["fps"]), int(c.meta["frames"])
    lex = verb_lexicon()
    actions, n_actions, verbs, events, types = Counter(), Counter(), Counter(), Counter(), Counter()
    words = {lv: {"text": [], "left": [], "right": []} for lv in LEVELS}
    contact_frames = span_count = 0
    span_lengths, inten = [], []
    for r in c.index:
        names = [a.get("action", "?") for a in r["actions"] if isinstance(a, dict)]
        actions.update(names)
        n_actions[len(names)] += 1
        for t in r["texts"]:
            for key in ("text", "left", "right"):
                words[t["level"]][key].append(len(t.get(key, "").split()))
            verbs.update(caption_verbs(" ".join(t.get(k, "") for k in ("text", "left", "right")), lex))
        ev = r["events"]
        events.update(ev.get("event_counts", {}))
        types.update(r["event_types"])
        spans = ev.get("contact_spans", [])
        contact_frames += sum(b - a for a, b in spans)
        span_count += len(spans)
        span_lengths += [(b - a) / fps for a, b in spans]
        if "intensity" in ev:
            inten.append(ev["intensity"])
    n = len(c)
    total_frames = n * frames
    inten = np.asarray(inten, np.float64).reshape(-1, 2)
    both = inten.mean(1) if len(inten) else np.zeros(0)
    passing = float(((inten >= 25).all(1) & (both >= 30)).mean()) if len(inten) else 0.0
    return {
        "path": str(c.path), "n": n, "source": c.meta["source"], "seed": c.meta.get("seed"),
        "build_seconds": c.meta.get("build_seconds"), "frames": frames, "fps": fps,
        "hours": round(total_frames / fps / 3600, 3),
        "splits": {s: c.meta["splits"][s] for s in SPLITS},
        "actions": dict(actions.most_common()),
        "actions_per_clip": {str(k): v for k, v in sorted(n_actions.items())},
        "verbs": dict(verbs.most_common(top_verbs)),
        "distinct_verbs": len(verbs),
        "event_counts": dict(events.most_common()),
        "clips_with_event_type": dict(types.most_common()),
        "caption_words": {str(lv): {k: _describe(v) for k, v in words[lv].items()} for lv in LEVELS},
        "handx_table1": {
            "contact_ratio": round(contact_frames / max(total_frames, 1), 4),
            "contact_duration_s": round(float(np.mean(span_lengths)) if span_lengths else 0.0, 3),
            "contact_freq_per_min": round(span_count / max(total_frames / fps / 60, 1e-9), 2),
            "motion_intensity_deg_s": round(float(both.mean()) if len(both) else 0.0, 2),
            "motion_intensity_left_deg_s": round(float(inten[:, 0].mean()) if len(inten) else 0.0, 2),
            "motion_intensity_right_deg_s": round(float(inten[:, 1].mean()) if len(inten) else 0.0, 2),
            "share_passing_handx_intensity_filter": round(passing, 4),
            "clips_with_contact": round(sum(bool(r["events"].get("contact_spans")) for r in c.index) / max(n, 1), 4),
        },
    }


def stats_text(st: dict) -> str:
    """A short plain-text report for the terminal."""
    t = st["handx_table1"]
    lines = [f"{st['path']}: {st['n']} clips ({st['hours']} h, {st['source']}); splits "
             + ", ".join(f"{k} {v}" for k, v in st["splits"].items()),
             f"contact ratio {t['contact_ratio']:.3f}, contact duration {t['contact_duration_s']:.2f} s, "
             f"contact freq {t['contact_freq_per_min']:.1f}/min, motion intensity {t['motion_intensity_deg_s']:.1f} deg/s",
             "actions: " + ", ".join(f"{k} {v}" for k, v in st["actions"].items()),
             "verbs: " + ", ".join(f"{k} {v}" for k, v in st["verbs"].items()),
             "event counts: " + ", ".join(f"{k} {v}" for k, v in st["event_counts"].items()),
             "caption words (mean whole/left/right): " + "; ".join(
                 f"L{lv} {d['text']['mean']:.0f}/{d['left']['mean']:.0f}/{d['right']['mean']:.0f}"
                 for lv, d in st["caption_words"].items())]
    return "\n".join(lines)


def stats_markdown(st: dict, title: str = "Corpus statistics") -> str:
    """The readable report of docs/corpus_stats.md."""
    t = st["handx_table1"]
    out = [f"# {title}", "",
           f"`{st['path']}`: {st['n']:,} clips of {st['frames']} frames at {st['fps']:g} fps "
           f"({st['hours']} h), source {st['source']}, seed {st['seed']}, built in {st['build_seconds']} s.", "",
           "| split | clips |", "|---|---|"]
    out += [f"| {k} | {v:,} |" for k, v in st["splits"].items()]
    out += ["", "## Bimanual quality (HandX Table 1(b), appendix A.5)", "",
            "| metric | value |", "|---|---|",
            f"| contact ratio (share of frames with inter-hand contact) | {t['contact_ratio']:.3f} |",
            f"| contact duration (mean contact span) | {t['contact_duration_s']:.2f} s |",
            f"| contact frequency (contact events per minute) | {t['contact_freq_per_min']:.1f} |",
            f"| motion intensity (HandX A.4, mean of both hands) | {t['motion_intensity_deg_s']:.1f} deg/s |",
            f"| motion intensity left / right | {t['motion_intensity_left_deg_s']:.1f} / "
            f"{t['motion_intensity_right_deg_s']:.1f} deg/s |",
            f"| clips passing HandX's intensity filter (25 per hand, 30 avg) | {100 * t['share_passing_handx_intensity_filter']:.1f} % |",
            f"| clips with any inter-hand contact | {100 * t['clips_with_contact']:.1f} % |",
            "", "## Actions (label occurrences)", "", "| action | labels | share |", "|---|---|---|"]
    total = max(sum(st["actions"].values()), 1)
    out += [f"| {k} | {v:,} | {100 * v / total:.1f} % |" for k, v in st["actions"].items()]
    out += ["", "Actions per clip: " + ", ".join(f"{k}: {v:,}" for k, v in st["actions_per_clip"].items()), "",
            f"## Verbs in the captions (top {len(st['verbs'])} of {st['distinct_verbs']})", "",
            "| verb | occurrences |", "|---|---|"]
    out += [f"| {k} | {v:,} |" for k, v in st["verbs"].items()]
    out += ["", "## Events", "", "| feature | events | clips with it |", "|---|---|---|"]
    out += [f"| {k} | {v:,} | {st['clips_with_event_type'].get(k, 0):,} |" for k, v in st["event_counts"].items()]
    out += ["", "## Caption length (words: mean / median / max)", "",
            "| level | whole motion | left hand | right hand |", "|---|---|---|---|"]
    for lv, d in st["caption_words"].items():
        cell = lambda x: f"{x['mean']:.1f} / {x['median']:.0f} / {x['max']:.0f}"  # noqa: E731
        out.append(f"| {lv} | {cell(d['text'])} | {cell(d['left'])} | {cell(d['right'])} |")
    return "\n".join(out) + "\n"
