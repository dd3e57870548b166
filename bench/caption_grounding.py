"""Captions with and without the pinch grounding (``contacts.ground_pinches``): the shipped CLUTCH
captioner's test-split captions, scored raw and grounded on the same decodes (M2T R-precision with
the shared evaluator, BLEU-1/4, ROUGE-L), and every change it made beside the reference text.

    python bench/caption_grounding.py --data CORPUS [--n 256]
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.api import Studio  # noqa: E402
from engine.clutch.eval_run import _load_evaluator, clutch_test_set, m2t_rp  # noqa: E402
from engine.clutch.text_metrics import caption_scores  # noqa: E402
from engine.diffusion.contacts import ground_pinches  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--data", required=True)
ap.add_argument("--n", type=int, default=256)
args = ap.parse_args()
test = clutch_test_set(args.data, args.n, 32)
n = min(args.n, len(test))
ev = _load_evaluator(None)
pipe = Studio.load(device="cpu").pipeline("clutch")
pipe.ground_pinches = False
raw, grounded, changes = [], [], []
for k, clip in enumerate(test.clips[:n]):
    c = pipe.caption(clip)
    g, ch = ground_pinches(c, clip.joints)
    raw.append(c)
    grounded.append(g[:1].upper() + g[1:])
    changes += [(x, test.gt_captions[k]) for x in ch]
emb = test.motion_embedding(ev)[:n]
print(f"{n} test clips")
print("| captions | M2T R@1 | R@2 | R@3 | BLEU-1 | BLEU-4 | ROUGE-L |\n|---|---|---|---|---|---|---|")
for name, caps in (("LM as decoded", raw), ("grounded (shipped)", grounded)):
    r = {**m2t_rp(ev, caps, emb, 32), **caption_scores(caps, test.references[:n])}
    print(f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k in ("R@1", "R@2", "R@3", "BLEU-1", "BLEU-4", "ROUGE-L")) + " |")
print(f"\n{len(changes)} changes:")
for x, ref in changes:
    print(f"  {x['from']} -> {x['to']} in '{x['clause']}'  | reference: {ref}")
