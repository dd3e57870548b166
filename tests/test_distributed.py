"""Data-parallel training: two CPU processes under torch.distributed.run (gloo) hold identical
weights after a few steps, and their loss and weights match one process drawing the same global
batch (the same two data shards, engine.training.train_diffusion ``data_shards``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from engine.diffusion.checkpoint import load_tensors
from engine.diffusion.denoiser import DenoiserConfig
from engine.training import train_diffusion as td

TINY = DenoiserConfig(frames=20, patch=2, d_model=32, layers=1, heads=2, ffn=64, dropout=0.0)
TRAIN = {"steps": 4, "batch": 8, "lr": 3e-3, "warmup": 2, "threads": 1, "device": "cpu", "ckpt_every": 2}
# DDP averages two half-batch gradients (each a mean over 4 windows) where one process takes the
# mean over 8: the same sums in another order, so float32 rounding (~1e-7 relative) differs.
# - losses: the step-1 forward is identical; later ones see the weights below. Measured < 1e-6.
# - Adam's first moment is linear in the gradient: measured 1e-7 on values ~3e-2 (a gradient sum
#   instead of a mean, or a wrong shard, would be off by O(1) relative). Tolerance 1e-6 absolute.
# - weights: Adam's step is ~lr * g / |g| per element whatever the gradient's scale, so where a
#   gradient component is at rounding level its step is noise of up to lr (3e-3) per step. Measured
#   8e-6 after 4 steps (motion_in.weight); tolerance 1e-4 = 1/30 of one step's largest move.
LOSS_RTOL, MOMENT_ATOL, WEIGHT_ATOL = 1e-5, 1e-6, 1e-4


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    from engine.data.corpus_build import build_corpus
    return build_corpus(20, 1, tmp_path_factory.mktemp("dist") / "corpus", workers=1, frames=20)


def test_two_processes_match_one(corpus_dir, tmp_path):
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps({"model": TINY.to_dict(), "train": TRAIN}))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "engine.training.train_diffusion", "--data", str(corpus_dir), "--out", str(tmp_path / "ddp"),
           "--config", str(cfg_path), "--progress", "jsonl", "--no-resume"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert events[0]["event"] == "start" and events[0]["world_size"] == 2  # only rank 0 reports
    assert sum(e["event"] == "start" for e in events) == 1
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    for e in steps[1::2]:  # checkpoints at 2 and 4: each rank hashed its own weights
        assert len(e["rank_digests"]) == 2 and len(set(e["rank_digests"])) == 1
    state = json.loads((tmp_path / "ddp" / "train_state" / "state.json").read_text())
    assert state["train_config"]["data_shards"] == 2

    single = list(td.train_iter(td.load_corpus(corpus_dir), tmp_path / "one", TINY,
                                td.TrainConfig.from_dict({**TRAIN, "data_shards": 2})))
    for d, s in zip(steps, single):
        for k, v in s["loss"].items():
            assert d["loss"][k] == pytest.approx(v, rel=LOSS_RTOL), (d["step"], k)
    worst = 0.0
    for sub in ("train_state/model.safetensors", "model/model.safetensors"):
        a, b = load_tensors(tmp_path / "ddp" / sub), load_tensors(tmp_path / "one" / sub)
        worst = max([worst] + [float((a[k] - b[k]).abs().max()) for k in a])
    a, b = (load_tensors(tmp_path / run / "train_state" / "optimizer.safetensors") for run in ("ddp", "one"))
    moment = max(float((a[k] - b[k]).abs().max()) for k in a if k.endswith("exp_avg"))
    print(f"DDP vs one process: max |weight difference| {worst:.2e}, max |Adam m difference| {moment:.2e}")
    assert worst <= WEIGHT_ATOL and moment <= MOMENT_ATOL
    rng = load_tensors(tmp_path / "ddp" / "train_state" / "rng.safetensors")
    assert {"data", "data.1", "torch", "torch.1"} <= set(rng)  # both ranks' streams: resumable
    assert torch.equal(rng["data.1"], load_tensors(tmp_path / "one" / "train_state" / "rng.safetensors")["data.1"])
