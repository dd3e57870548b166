"""How much of a window does the denoiser give back? Noise the data of the first N windows of a
corpus split to timestep t, take the model's x0 prediction, and print its keypoint speed over the
data's and its normalised x0 error, per t; then sample with DDIM starting from the data noised to
each timestep of the sampler's grid (SDEdit) and print the speed ratio of the result. A model that
returns a clean window (t = 0) with less than the data's speed caps every take it samples.

    python bench/x0_ceiling.py --data CORPUS [--model FOLDER] [--split val] [--n 96] [--steps 10]

Numbers from this script are in resources/models/diffusion/MODEL_CARD.md ("Where the calm came from").
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from engine.diffusion.pipeline import DEFAULT_GUIDANCE, load_pipeline  # noqa: E402
from engine.diffusion.representation import denormalize, keypoints_from_rep, normalize  # noqa: E402
from engine.threads import torch_threads  # noqa: E402
from engine.training.train_diffusion import load_corpus  # noqa: E402

TIMESTEPS = (0, 25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999)


def mean_speed(joints: torch.Tensor) -> float:
    return joints.diff(dim=1).norm(dim=-1).mean().item()


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="corpus folder")
    ap.add_argument("--model", default=None, help="diffusion model folder (default: the shipped one)")
    ap.add_argument("--split", choices=("train", "val", "test"), default="val")
    ap.add_argument("--n", type=int, default=96, help="windows (default 96)")
    ap.add_argument("--steps", type=int, default=10, help="sampler steps of the SDEdit grid (default 10)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.n < 1 or args.steps < 1:
        ap.error("--n and --steps must be >= 1")
    pipe = load_pipeline(args.model)
    m, sched = pipe.model.eval(), pipe.scheduler
    ds = load_corpus(args.data, args.split, text_encoder=pipe.text_encoder, limit=args.n)
    ds.compute_keypoints(pipe.hands)
    n = len(ds)
    b = ds.batch(torch.arange(n))
    x0 = normalize(b["x"], m.x_mean, m.x_std)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    data_speed = mean_speed(b["keypoints"])

    def speed(xn: torch.Tensor) -> float:
        return mean_speed(keypoints_from_rep(pipe.hands, denormalize(xn, m.x_mean, m.x_std), b["betas"])) / data_speed

    with torch_threads(args.threads):
        cond = m.encode_condition(b["tokens"], b["token_mask"])
        uncond = pipe.null_memory(n)
        print(f"{n} {args.split} windows; data {data_speed * 1000:.2f} mm/frame mean keypoint speed")
        print("| t | x0 speed ratio (conditional) | guided | x0 error (normalised MSE) |\n|---|---|---|---|")
        for t in TIMESTEPS:
            x_t = sched.add_noise(x0, noise, torch.full((n,), t))
            pred = m(x_t, torch.full((n,), t), *cond)
            guided = pipe.guided_x0(x_t, t, cond, uncond, DEFAULT_GUIDANCE)
            print(f"| {t} | {speed(pred):.3f} | {speed(guided):.3f} | {(pred - x0).pow(2).mean().item():.4f} |", flush=True)
        print(f"\n| sampling starts at t | speed ratio of the result |\n|---|---|")
        grid = sched.set_timesteps(args.steps)
        for k in range(len(grid)):
            x_t = sched.add_noise(x0, noise, torch.full((n,), int(grid[k])))
            for t in grid[k:]:
                x_t = sched.step(pipe.guided_x0(x_t, int(t), cond, uncond, DEFAULT_GUIDANCE), int(t), x_t)
            print(f"| {int(grid[k])} | {speed(x_t):.3f} |", flush=True)


if __name__ == "__main__":
    main()
