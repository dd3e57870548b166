"""The console script as a user runs it: subprocesses, exit codes, JSON."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest


def run(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "hand_studio.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_help_lists_the_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("info", "generate", "app"):
        assert cmd in r.stdout


def test_info_json_has_the_contract_fields():
    r = run("info", "--json", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    for key in ("hand_studio", "torch", "device", "hand_backend", "joint_names", "parents", "rest_joints"):
        assert key in info
    assert info["device"] == "cpu" and info["hand_backend"] == "default"
    assert info["parents"] == [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
    assert len(info["joint_names"]) == 16 and len(info["rest_joints"]["right"]) == 16
    assert abs(info["rest_joints"]["right"][0][0] - 0.09566994) < 1e-5
    assert abs(info["rest_joints"]["left"][0][0] + 0.09566994) < 1e-5


def test_info_text_and_errors_are_one_line_on_stderr():
    r = run("info")
    assert r.returncode == 0 and "hand_backend" in r.stdout
    r = run("info", "--hands", "mano", "--mano-dir", "/nonexistent")
    assert r.returncode == 2
    assert "MANO_RIGHT.pkl" in r.stderr or "MANO_LEFT.pkl" in r.stderr
    r = run("info", "--device", "cuda:7")
    assert r.returncode == 2 and "CUDA" in r.stderr


def test_app_without_a_screen_explains_itself():
    r = run()
    assert r.returncode == 2 and "no screen" in r.stderr


def test_import_contract_holds():
    exe = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    r = subprocess.run([exe], capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout and "KEPT" in r.stdout


def test_caption_and_clutch_generate_with_the_shipped_model(tmp_path):
    """The shipped CLUTCH model captions a clip file and generates; a missing file is one clear error."""
    from engine.motion.clip import Clip
    Clip.rest(30).save(tmp_path / "r.npz")
    r = run("caption", str(tmp_path / "r.npz"))
    assert r.returncode == 0, r.stderr
    sentence = r.stdout.strip()
    assert len(sentence.split()) >= 3 and sentence[0].isupper(), sentence
    r = run("caption", str(tmp_path / "missing.npz"))
    assert r.returncode == 2 and "missing.npz" in r.stderr
    r = run("generate", "A person claps their hands.", "--model", "clutch", "--out", str(tmp_path / "c.npz"))
    assert r.returncode == 0, r.stderr
    clip = Clip.load(tmp_path / "c.npz")
    assert clip.num_frames == 60 and np.isfinite(clip.transl).all()
    # the candidate counts: 1 = plain sampling / the greedy caption; out of range or for the
    # diffusion model, one clear error
    r = run("generate", "A person claps their hands.", "--model", "clutch", "--candidates", "1",
            "--out", str(tmp_path / "c1.npz"))
    assert r.returncode == 0, r.stderr
    r = run("caption", str(tmp_path / "c1.npz"), "--candidates", "1")
    assert r.returncode == 0 and len(r.stdout.split()) >= 3, r.stderr
    r = run("caption", str(tmp_path / "c1.npz"), "--candidates", "0")
    assert r.returncode == 2 and "candidates must be an int >= 1" in r.stderr
    r = run("generate", "clap", "--candidates", "4", "--out", str(tmp_path / "d.npz"))
    assert r.returncode == 2 and "--candidates is for --model clutch" in r.stderr


def test_generate_with_the_shipped_model_writes_clips(tmp_path):
    """The shipped diffusion model loads offline and writes npz and FBX by extension."""
    out = tmp_path / "clap.npz"
    r = run("generate", "clap both hands twice", "--frames", "60", "--seed", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    from engine.motion.clip import Clip
    clip = Clip.load(out)
    assert clip.num_frames == 60 and clip.prompt.text == "clap both hands twice"
    r = run("generate", "clap both hands twice", "--out", str(tmp_path / "clap.fbx"))
    assert r.returncode == 0 and (tmp_path / "clap.fbx").stat().st_size > 10_000, r.stderr


def test_generate_closes_a_named_pinch(tmp_path):
    """A pinch the prompt names touches in the written clip and is reported; --no-close-pinches keeps
    the model's own (seed 0: the model stops about 2 cm short)."""
    from engine.evaluation.metrics import thumb_gaps
    from engine.motion.clip import Clip
    text = "pinch the thumb and ring finger of the right hand"
    r = run("generate", text, "--out", str(tmp_path / "on.npz"))
    assert r.returncode == 0 and "pinch right thumb-ring: closed" in r.stdout, r.stdout + r.stderr
    r = run("generate", text, "--no-close-pinches", "--out", str(tmp_path / "off.npz"))
    assert r.returncode == 0 and "pinch" not in r.stdout, r.stdout
    on, off = (thumb_gaps(Clip.load(tmp_path / f).joints)[:, 1, 2].min() for f in ("on.npz", "off.npz"))
    assert on < 0.010 < off


def test_generate_gives_each_hand_its_own_action(tmp_path):
    """"the right hand waves while the left hand makes a fist" with the shipped model (seed 0): the
    left hand closes into a fist (fingertips < 8.5 cm from the wrist, bench/concurrent_probe.py's
    check; 7.5 cm) and the right one waves; --no-split-hands samples both from all texts at once,
    and the wave keeps the fist open (11 cm)."""
    from engine.motion.clip import Clip
    text = "the right hand waves while the left hand makes a fist"
    for name, extra in (("on", []), ("off", ["--no-split-hands"])):
        r = run("generate", text, *extra, "--out", str(tmp_path / f"{name}.npz"))
        assert r.returncode == 0, r.stderr
    fist = {}
    for name in ("on", "off"):
        j = Clip.load(tmp_path / f"{name}.npz").joints
        fist[name] = (np.linalg.norm(j[:, 0, [8, 12, 16, 20]] - j[:, 0, :1], axis=-1).mean(-1) * 100).min()
        tip = (j[:, 1, 12] - j[:, 1, 0]) * 100
        assert (tip.max(0) - tip.min(0)).max() > 6.0, name  # the right hand waves either way
    assert fist["on"] < 8.5 < fist["off"], fist


def test_generate_keeps_joints_in_their_limits(tmp_path):
    """The shipped model curls a fist's fingers past their anatomical limits (seed 0: about a quarter
    of the right hand's joint-frames); by default they are eased back inside and the count printed,
    --no-joint-limits writes the model's own poses."""
    from engine.evaluation.physical import limit_violations
    from engine.motion.clip import Clip
    text = "make a fist with the right hand"
    r = run("generate", text, "--out", str(tmp_path / "on.npz"))
    assert r.returncode == 0 and "joint limits:" in r.stdout and "eased back inside" in r.stdout, r.stdout + r.stderr
    r = run("generate", text, "--no-joint-limits", "--out", str(tmp_path / "off.npz"))
    assert r.returncode == 0 and "joint limits" not in r.stdout, r.stdout
    on, off = (Clip.load(tmp_path / f) for f in ("on.npz", "off.npz"))
    assert limit_violations(on.hand_pose, on.betas)["limit_frac"] == 0
    assert limit_violations(off.hand_pose, off.betas)["limit_frac"] > 0.05


@pytest.mark.parametrize("args,needle", [
    (["", "--out", "x.npz"], "prompt"),
    (["wave", "--frames", "0", "--out", "x.npz"], "frames"),
    (["wave", "--steps", "0", "--out", "x.npz"], "steps"),
    (["wave", "--left", "fist", "--model", "clutch", "--out", "x.npz"],
     "--model clutch reads one text (TEXT, or --left/--right when TEXT is empty) and takes no --left"),
    (["wave", "--no-split-hands", "--model", "clutch", "--out", "x.npz"], "takes no --no-split-hands"),
    (["wave", "--no-joint-limits", "--model", "clutch", "--out", "x.npz"], "takes no --no-joint-limits"),
])
def test_generate_bad_input_is_one_clear_error(tmp_path, args, needle):
    r = run("generate", *args[:-1], str(tmp_path / args[-1]))
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / args[-1]).exists()


@pytest.mark.parametrize("args,needle", [
    (["--frames", "0"], "frames must be an integer in 1..1800; got 0"),
    (["--frames", "-4"], "frames must be an integer in 1..1800; got -4"),
    (["--frames", "100000"], "frames must be an integer in 1..1800; got 100000"),
    (["--repeats", "0"], "repeats must be an integer in 1..100; got 0"),
    (["--noise-mm", "-1"], "noise_mm must be a number in 0..100; got -1.0"),
    (["--noise-mm", "nan"], "noise_mm must be a number in 0..100; got nan"),
])
def test_bench_ik_bad_input_is_one_clear_error(args, needle):
    r = run("bench", "ik", *args)
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stdout == ""


def test_bench_ik_smallest_run_prints_json():
    r = run("bench", "ik", "--frames", "1", "--repeats", "1", "--noise-mm", "0.5")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["frames"] == 1 and res["noise_mm"] == 0.5 and res["mean_joint_error_mm"] < 10
