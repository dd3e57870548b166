"""The training corpus: build -> read round trip, determinism (seed, worker count), splits,
stats, sample, preview, import from mocap files, and the errors of a malformed corpus."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.data.corpus import SPLITS, Corpus, CorpusError, split_of
from engine.data.corpus_build import build_corpus, save_npz_deterministic

N = 20
SEED = 3


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "c"
    build_corpus(N, SEED, out, workers=1, shard_size=8)
    return out


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_round_trip(corpus_dir):
    c = Corpus(corpus_dir)
    assert len(c) == N and c.meta["source"] == "synthetic" and c.meta["seed"] == SEED
    assert c.meta["shards"] == ["shards/000.npz", "shards/001.npz", "shards/002.npz"]
    a = c.arrays()
    assert a["transl"].shape == (N, 60, 2, 3) and a["transl"].dtype == np.float32
    assert a["hand_pose"].shape == (N, 60, 2, 45) and a["betas"].shape == (N, 2, 10)
    assert a["joints"].shape == (N, 60, 2, 21, 3) and a["joints"].dtype == np.float16
    clip = c.clip(5)  # the stored parameters rebuild the stored keypoints
    assert np.abs(clip.joints - a["joints"][5].astype(np.float32)).max() < 2e-3
    for split in SPLITS:
        ids = c.split_ids(split)
        sub = c.arrays(split)
        assert len(sub["transl"]) == len(ids) == c.meta["splits"][split]
        rows = [int(i[1:]) for i in ids]
        np.testing.assert_array_equal(sub["hand_pose"], a["hand_pose"][rows])
    rec = c.index[0]
    assert [t["level"] for t in rec["texts"]] == [1, 2, 3, 4, 5]
    assert all(t["text"] for t in rec["texts"]) and rec["actions"] and rec["source"] == "synthetic"
    assert rec["event_types"] == sorted(set(rec["event_types"]))
    assert 0.0 <= rec["events"]["contact_ratio"] <= 1.0 and len(rec["events"]["intensity"]) == 2
    lv2 = c.texts("test", level=2)
    assert len(lv2) == c.meta["splits"]["test"] and set(lv2[0]) >= {"text", "left", "right"}


def test_same_bytes_for_one_or_two_workers(corpus_dir, tmp_path):
    other = build_corpus(N, SEED, tmp_path / "w2", workers=2, shard_size=8)
    for rel in ["index.jsonl"] + json.loads((corpus_dir / "meta.json").read_text())["shards"]:
        assert (corpus_dir / rel).read_bytes() == (other / rel).read_bytes(), rel
    m1, m2 = (json.loads((d / "meta.json").read_text()) for d in (corpus_dir, other))
    for m in (m1, m2):
        m.pop("build_seconds"), m.pop("workers")
    assert m1 == m2


def test_other_seed_differs(corpus_dir, tmp_path):
    other = Corpus(build_corpus(10, SEED + 1, tmp_path / "s", workers=1))
    assert not np.array_equal(other.arrays()["hand_pose"], Corpus(corpus_dir).arrays()["hand_pose"][:10])


def test_splits_disjoint_and_ratios(corpus_dir):
    c = Corpus(corpus_dir)
    sets = [set(c.split_ids(s)) for s in SPLITS]
    assert sum(map(len, sets)) == N and set.union(*sets) == {r["id"] for r in c.index}
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    for seed in (0, 1, 12345):
        splits = [split_of(seed, i) for i in range(2000)]
        for s, share in zip(SPLITS, (0.8, 0.1, 0.1)):
            assert abs(splits.count(s) / len(splits) - share) <= 0.02
        assert splits[:500] == [split_of(seed, i) for i in range(500)]  # per (seed, id), whatever N
    assert [split_of(0, i) for i in range(100)] != [split_of(1, i) for i in range(100)]


def test_stats(corpus_dir, capsys):
    assert main(["data", "stats", str(corpus_dir), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert sum(st["splits"].values()) == N
    t = st["handx_table1"]
    assert 0.0 <= t["contact_ratio"] <= 1.0 and t["contact_duration_s"] >= 0 and t["motion_intensity_deg_s"] > 0
    assert st["actions"] and st["verbs"] and st["event_counts"]
    assert sum(int(k) * v for k, v in st["actions_per_clip"].items()) == sum(st["actions"].values())
    assert set(st["caption_words"]) == {"1", "2", "3", "4", "5"}
    assert st["caption_words"]["5"]["text"]["mean"] > st["caption_words"]["1"]["text"]["mean"]
    assert main(["data", "stats", str(corpus_dir)]) == 0
    assert "contact ratio" in capsys.readouterr().out


def test_sample(corpus_dir, tmp_path, capsys):
    from engine.motion.clip import Clip
    out = tmp_path / "sample"
    assert main(["data", "sample", str(corpus_dir), "--n", "3", "--out", str(out), "--split", "train"]) == 0
    npz = sorted(out.glob("*.npz"))
    assert len(npz) == 3
    for p in npz:
        clip = Clip.load(p)
        side = json.loads(p.with_suffix(".json").read_text())
        assert clip.num_frames == 60 and side["split"] == "train" and len(side["texts"]) == 5
        assert clip.prompt.text == side["texts"][0]["text"] and "events" in side and "actions" in side


def test_preview_png(corpus_dir, tmp_path):
    from engine.data.preview import corpus_preview
    path = corpus_preview(corpus_dir, tmp_path / "sheet.png", n=2, cols=2, tile=(80, 60))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert w == 160 and h > 120


def test_import_folder(tmp_path, capsys):
    from engine.data.synth import generate_clip
    from engine.export import export_clip
    src = tmp_path / "mocap"
    (src / "sub").mkdir(parents=True)
    for k in range(3):
        generate_clip(100 + k, frames=130)[0].save(src / f"take{k}.npz")
    export_clip(generate_clip(200, frames=130)[0], src / "sub" / "bvhtake.bvh")  # -> _left/_right pair
    (src / "garbage.npz").write_bytes(b"this is not a zip file")
    out = tmp_path / "imported"
    assert main(["data", "import", str(src), "--out", str(out), "--seed", "1",
                 "--min-hand-intensity", "0", "--min-avg-intensity", "0"]) == 0
    cap = capsys.readouterr()
    assert "garbage.npz" in cap.err and cap.err.count("skipped:") == 1
    c = Corpus(out)
    cl = c.meta["cleaning"]
    assert list(cl["errors"]) == ["garbage.npz"] and len(cl["files"]) == 4
    assert "sub/bvhtake_left.bvh + sub/bvhtake_right.bvh" in cl["files"]  # per-hand files form one source
    t = cl["total"]
    assert t["clips_extracted"] == 8  # 4 sources x 2 windows of 60 frames (10 frames left over each)
    assert t["frames_outside_clips"] == 40 and t["kept"] == 8 - t["rejected_jitter"] - t["rejected_intensity"]
    assert c.meta["source"] == "import" and len(c) == t["kept"] >= 4
    by_source = {}
    for r in c.index:
        by_source.setdefault(r["source"], set()).add(r["split"])
        assert r["actions"] == [] and r["texts"][0]["text"]
    assert all(len(s) == 1 for s in by_source.values())  # no take leaks across splits
    assert {k for k, v in cl["files"].items() if v["kept"]} == set(by_source)


def test_import_nothing_importable(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("hi")
    assert main(["data", "import", str(tmp_path / "src"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "src") in err and ".bvh" in err and not (tmp_path / "o").exists()


def test_refuses_to_overwrite(corpus_dir, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["data", "build", "--n", "2", "--out", str(out), "--workers", "1"]) == 2
    assert "--force" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
    assert main(["data", "build", "--n", "2", "--out", str(out), "--workers", "1", "--force"]) == 0
    assert len(Corpus(out)) == 2 and not (out / "keep.txt").exists()
    assert not list(tmp_path.glob("busy.tmp-*")) and not list(tmp_path.glob("busy.old-*"))


def test_cancel_leaves_nothing(tmp_path):
    from engine.data.corpus_build import build_corpus_iter
    it = build_corpus_iter(40, 0, tmp_path / "x", workers=1)
    next(it), next(it)
    it.close()
    assert list(tmp_path.iterdir()) == []


def test_errors(corpus_dir, tmp_path):
    d = _copy(corpus_dir, tmp_path)
    meta = json.loads((d / "meta.json").read_text())
    with pytest.raises(FileNotFoundError):
        Corpus(tmp_path / "nope")

    (d / "meta.json").unlink()
    with pytest.raises(CorpusError, match=r"meta\.json: missing"):
        Corpus(d)
    (d / "meta.json").write_text("{not json")
    with pytest.raises(CorpusError, match=r"meta\.json: not valid JSON"):
        Corpus(d)
    (d / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "frames"}))
    with pytest.raises(CorpusError, match="missing field 'frames'"):
        Corpus(d)
    (d / "meta.json").write_text(json.dumps({**meta, "n": N + 1, "splits": {**meta["splits"], "train": meta["splits"]["train"] + 1}}))
    with pytest.raises(CorpusError, match=r"index\.jsonl: 20 clips, but meta.json says n=21"):
        Corpus(d)
    (d / "meta.json").write_text(json.dumps(meta))
    Corpus(d)

    shard = d / meta["shards"][1]
    with zipfile.ZipFile(shard) as zf:
        arrays = {n[:-4]: np.load(zf.open(n)) for n in zf.namelist()}
    save_npz_deterministic(shard, {**arrays, "hand_pose": arrays["hand_pose"][:, :, :, :44]})
    with pytest.raises(CorpusError, match=r"001\.npz: hand_pose must be float32 \(8, 60, 2, 45\); got float32 \(8, 60, 2, 44\)"):
        Corpus(d)
    save_npz_deterministic(shard, {k: v for k, v in arrays.items() if k != "joints"})
    with pytest.raises(CorpusError, match="001.npz: missing array 'joints'"):
        Corpus(d)
    shard.write_bytes(b"garbage")
    with pytest.raises(CorpusError, match="001.npz: not a readable .npz shard"):
        Corpus(d)

    d2 = _copy(corpus_dir, tmp_path / "b")
    lines = (d2 / "index.jsonl").read_text().splitlines()
    lines[3] = lines[3].replace('"split": "', '"split": "x')
    (d2 / "index.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"index\.jsonl:4: split must be one of"):
        Corpus(d2)


# --- the public writer ------------------------------------------------------------------------------

def _records(k: int, split: str = "train", start: int = 0) -> list[dict]:
    return [{"split": split, "texts": [{"level": lv, "text": f"clip {start + j} level {lv}", "left": "", "right": ""}
                                       for lv in (1, 2, 3, 4, 5)],
             "action": "", "actions": [], "events": {"n": start + j}, "event_types": [], "source": f"take{start + j}",
             "caption_source": "edited"}  # extra keys travel to the index
            for j in range(k)]


def _arrays(k: int, frames: int, seed: int) -> dict:
    from engine.data.corpus_build import _clip_arrays, _stack
    from engine.data.synth import generate_clip
    return _stack([_clip_arrays(generate_clip(seed + j, frames=frames)[0]) for j in range(k)])


def test_write_corpus_iter_round_trips_through_the_reader(tmp_path):
    from engine.data.corpus_build import write_corpus_iter
    batches = [(_arrays(3, 12, 0), _records(3, "train", 0)),
               (None, [], {"note": "nothing in this batch"}),
               (_arrays(2, 12, 3), _records(2, "test", 3), {"file": "b"})]
    ended = []

    def rows():
        try:
            yield from batches
        finally:
            ended.append(True)
    meta_calls = []

    def meta():
        meta_calls.append(1)
        return {"frames": 12, "fps": 30.0, "source": "import", "seed": None, "n": 999, "mine": {"a": np.float32(1.5)}}
    items = list(write_corpus_iter(tmp_path / "c", rows(), meta, total=5, shard_size=2))
    assert items[0] == {"done": 0, "of": 5}
    assert items[1] == {"done": 3, "of": 5} and items[2]["note"] and items[3] == {"done": 5, "of": 5, "file": "b"}
    assert items[-1] == {"done": 5, "of": 5, "path": str(tmp_path / "c"), "splits": {"train": 3, "val": 0, "test": 2}}
    assert meta_calls == [1] and ended == [True]
    c = Corpus(tmp_path / "c")
    assert len(c) == 5 and c.meta["n"] == 5 and c.meta["mine"] == {"a": 1.5} and c.meta["source"] == "import"
    assert c.meta["shards"] == ["shards/000.npz", "shards/001.npz", "shards/002.npz"]
    assert [r["id"] for r in c.index] == [f"c{i:07d}" for i in range(5)]
    assert [(r["shard"], r["row"]) for r in c.index] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert [r["source"] for r in c.index] == [f"take{i}" for i in range(5)] and c.index[4]["caption_source"] == "edited"
    want = {k: np.concatenate([batches[0][0][k], batches[2][0][k]]) for k in batches[0][0]}
    got = c.arrays()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert got["joints"].dtype == np.float16 and len(c.arrays("test")["transl"]) == 2
    assert c.clip(4).num_frames == 12
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temporary folder left


def test_write_corpus_iter_refuses_bad_input_and_leaves_nothing(tmp_path):
    from engine.data.corpus_build import write_corpus, write_corpus_iter
    meta = {"frames": 12, "fps": 30.0, "source": "synthetic"}
    good = _arrays(2, 12, 0)
    with pytest.raises(ValueError, match="corpus meta needs field 'source'"):
        next(write_corpus_iter(tmp_path / "a", [], {"frames": 12, "fps": 30.0}))
    with pytest.raises(ValueError, match=r"hand_pose must be a float array \(2, 12, 2, 45\)"):
        write_corpus(tmp_path / "a", [({**good, "hand_pose": good["hand_pose"][..., :44]}, _records(2))], meta)
    with pytest.raises(ValueError, match=r"transl must be a float array \(2, 12, 2, 3\)"):
        write_corpus(tmp_path / "a", [(_arrays(2, 10, 0), _records(2))], meta)  # 10 frames, meta says 12
    with pytest.raises(ValueError, match="record 1: split must be one of"):
        write_corpus(tmp_path / "a", [(good, _records(1) + _records(1, "holdout"))], meta)
    bad = _records(2)
    del bad[1]["texts"]
    with pytest.raises(ValueError, match="record 1: field 'texts' missing"):
        write_corpus(tmp_path / "a", [(good, bad)], meta)
    with pytest.raises(ValueError, match="no clips to write"):
        write_corpus(tmp_path / "a", [(None, [])], meta)
    with pytest.raises(ValueError, match="meta says frames=10, but the clips have 12"):
        write_corpus(tmp_path / "a", [(good, _records(2))], lambda: {**meta, "frames": 10})
    assert list(tmp_path.iterdir()) == []

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        write_corpus(busy, [(good, _records(2))], meta)
    it = write_corpus_iter(busy, iter([(good, _records(2)), (good, _records(2))]), meta, force=True)
    next(it), next(it)
    it.close()  # cancelled: the old folder is untouched, no temporary folder is left
    assert (busy / "keep.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    assert len(Corpus(write_corpus(busy, [(good, _records(2))], meta, force=True))) == 2
    assert not (busy / "keep.txt").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
