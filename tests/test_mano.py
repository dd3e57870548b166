"""The MANO backend on a synthetic MANO-shaped model file (no real MANO files are needed or shipped)."""
from __future__ import annotations

import importlib.util
import os
import pickle
import struct
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from engine.hands.hand_model import TwoHands
from engine.hands.lbs import forward_kinematics, skin
from engine.hands.mano import (
    MANO_TIP_IDS, ManoFileError, ManoHand, cap_boundary, find_mano_files, load_mano_pkl, load_two_mano,
    mano_available, signed_volume,
)
from engine.hands.skeleton import PARENTS, mirror_points

needs_smplx = pytest.mark.skipif(importlib.util.find_spec("smplx") is None, reason="smplx not installed")

RING, RINGS = 16, 48  # a tube of 48 rings of 16 vertices + an apex + 9 split vertices = 778


def tube_mesh(inward: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A hand-sized tube along -x, open at the wrist (+x): 778 vertices, 1538 faces, one 16-loop."""
    ang = 2 * np.pi * np.arange(RING) / RING
    xs = np.linspace(0.10, -0.08, RINGS)
    verts = [np.stack([np.full(RING, x), 0.02 * np.cos(ang), 0.045 * np.sin(ang)], 1) for x in xs]
    verts = list(np.concatenate(verts)) + [np.array([-0.09, 0.0, 0.0])]
    apex = len(verts) - 1
    faces = []
    for r in range(RINGS - 1):
        for i in range(RING):
            a, b = r * RING + i, r * RING + (i + 1) % RING
            c, d = a + RING, b + RING
            faces += [(a, b, d), (a, d, c)]
    last = (RINGS - 1) * RING
    fan = [(last + i, last + (i + 1) % RING, apex) for i in range(RING)]
    for k in range(9):  # split 9 apex triangles 1 -> 3 to reach MANO's counts
        a, b, c = fan[k]
        verts.append(np.mean([verts[a], verts[b], verts[c]], 0))
        m = len(verts) - 1
        fan[k] = (a, b, m)
        fan += [(b, c, m), (c, a, m)]
    faces = np.asarray(faces + fan, dtype=np.int64)
    # (a, b, d) with x decreasing along the tube points the normal inward; flip for outward.
    faces = faces if inward else faces[:, ::-1].copy()
    return np.asarray(verts, dtype=np.float64), faces


def fake_mano(side: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    v, f = tube_mesh()
    assert v.shape == (778, 3) and f.shape == (1538, 3)
    if side == "left":
        v = mirror_points(v)  # same faces as the right, as in the released files
    weights = rng.random((778, 16)) ** 4
    weights /= weights.sum(1, keepdims=True)
    rows, cols, vals = [], [], []
    for j in range(16):
        idx = rng.choice(778, 6, replace=False)
        w = rng.random(6) + 0.1
        rows += [j] * 6
        cols += list(idx)
        vals += list(w / w.sum())
    J_regressor = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(16, 778))
    kintree = np.array([[2 ** 32 - 1] + list(PARENTS[1:]), list(range(16))], dtype=np.int64)
    return {
        "v_template": v,
        "weights": weights,
        "posedirs": 1e-3 * rng.standard_normal((778, 3, 135)),
        "shapedirs": 1e-3 * rng.standard_normal((778, 3, 10)),
        "J_regressor": J_regressor,
        "kintree_table": kintree,
        "f": f.astype(np.uint32),
        "hands_components": rng.standard_normal((45, 45)),
        "hands_mean": 0.1 * rng.standard_normal(45),
        "bs_style": "lbs",
    }


class Chumpy:
    """Placeholder for a chumpy object: pickled as an instance of ``cls`` whose __dict__ is ``state``."""

    def __init__(self, state: dict, cls: str = "chumpy.ch.Ch"):
        self.state, self.cls = state, cls


def write_pkl(path, data: dict, chumpy_keys=("shapedirs", "hands_components", "hands_mean")) -> None:
    """Pickle like the released files: protocol 2, some arrays in chumpy objects (state ``{'x': array}``).

    The fake chumpy modules exist only while writing, so loading proves chumpy is not needed.
    """
    data = {k: Chumpy({"x": v}) if k in chumpy_keys else v for k, v in data.items()}
    classes, saved = {}, {}
    try:
        for c in {v.cls for v in data.values() if isinstance(v, Chumpy)}:
            mod_name, name = c.rsplit(".", 1)
            for m in ("chumpy", mod_name):
                saved.setdefault(m, sys.modules.get(m))
                sys.modules.setdefault(m, types.ModuleType(m))
            classes[c] = type(name, (), {"__module__": mod_name})
            setattr(sys.modules[mod_name], name, classes[c])
        wrapped = {}
        for k, v in data.items():
            if isinstance(v, Chumpy):
                obj = object.__new__(classes[v.cls])
                obj.__dict__.update(v.state)
                v = obj
            wrapped[k] = v
        with open(path, "wb") as fh:
            pickle.dump(wrapped, fh, protocol=2)
    finally:
        for m, old in saved.items():
            if old is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = old


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mano_root")
    (root / "mano").mkdir()
    for side, seed in (("left", 1), ("right", 0)):
        write_pkl(root / "mano" / f"MANO_{side.upper()}.pkl", fake_mano(side, seed))
    return root


@pytest.fixture(scope="module")
def right(mano_dir):
    return ManoHand(mano_dir, "right")


def zeros(B: int):
    return torch.zeros(B, 10), torch.zeros(B, 3), torch.zeros(B, 45), torch.zeros(B, 3)


def test_load_gives_plain_arrays_without_chumpy(mano_dir):
    assert "chumpy" not in sys.modules
    data = load_mano_pkl(mano_dir / "mano" / "MANO_RIGHT.pkl")
    ref = fake_mano("right", 0)
    for k in ("v_template", "weights", "posedirs", "shapedirs", "J_regressor", "kintree_table", "f",
              "hands_components", "hands_mean"):
        assert type(data[k]) is np.ndarray, k
        np.testing.assert_allclose(data[k], ref[k].toarray() if k == "J_regressor" else ref[k], atol=1e-6)
    assert data["J_regressor"].shape == (16, 778) and data["J_regressor"].dtype == np.float32
    assert data["f"].dtype == np.int64 and data["bs_style"] == "lbs"


def _py2_str(b: bytes) -> bytes:
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b


def _py2_int(n: int) -> bytes:
    if n < 256:
        return b"K" + bytes([n])
    return b"M" + struct.pack("<H", n) if n < 65536 else b"J" + struct.pack("<i", n)


def _py2_array(a: np.ndarray) -> bytes:
    """An ndarray exactly as python 2 / numpy 1.x pickled it (protocol 2, raw data in a py2 str)."""
    a = np.ascontiguousarray(a)
    code = {"f": b"f8", "i": b"i4"}[a.dtype.kind]
    a = a.astype("<" + code.decode())
    dtype = (b"cnumpy\ndtype\n" + _py2_str(code) + b"K\x00K\x01\x87R(K\x03" + _py2_str(b"<")
             + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    shape = b"(" + b"".join(_py2_int(n) for n in a.shape) + b"t"
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R"
            + b"(K\x01" + shape + dtype + b"\x89" + _py2_str(a.tobytes()) + b"tb")


def test_python2_pickle_format(tmp_path):
    """Hand-made bytes in the released files' format: py2 strings, chumpy Ch via NEWOBJ, old scipy path."""
    v = np.arange(12.0).reshape(4, 3)
    sp = scipy.sparse.csc_matrix(np.array([[0.5, 0, 0.5, 0], [0, 1.0, 0, 0]]))
    ch = b"cchumpy.ch\nCh\n)\x81}(" + _py2_str(b"x") + _py2_array(v) + b"ub"
    csc = (b"cscipy.sparse.csc\ncsc_matrix\n)\x81}(" + _py2_str(b"_shape") + b"K\x02K\x04\x86"
           + _py2_str(b"maxprint") + b"K2" + _py2_str(b"indices") + _py2_array(sp.indices.astype(np.int32))
           + _py2_str(b"indptr") + _py2_array(sp.indptr.astype(np.int32))
           + _py2_str(b"data") + _py2_array(sp.data)
           + b"ub")
    raw = (b"\x80\x02}(" + _py2_str(b"v_template") + _py2_array(v) + _py2_str(b"shapedirs") + ch
           + _py2_str(b"J_regressor") + csc + _py2_str(b"J") + b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\n"
           + b"c__builtin__\nobject\nNtR}(" + _py2_str(b"x") + _py2_array(v[:2]) + b"ub"
           + _py2_str(b"bs_style") + _py2_str(b"lbs") + b"u.")
    (tmp_path / "py2.pkl").write_bytes(raw)
    data = load_mano_pkl(tmp_path / "py2.pkl")
    np.testing.assert_array_equal(data["v_template"], v)
    np.testing.assert_array_equal(data["shapedirs"], v)
    np.testing.assert_array_equal(data["J_regressor"], sp.toarray())
    np.testing.assert_array_equal(data["J"], v[:2])  # protocol-0/1 style object via copy_reg
    assert data["bs_style"] == "lbs" and "chumpy" not in sys.modules


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_resaved_python3_pickle(tmp_path, protocol):
    """Files re-saved without chumpy by python 3 (any protocol) load too."""
    ref = fake_mano("right")
    (tmp_path / "r.pkl").write_bytes(pickle.dumps(ref, protocol=protocol))
    data = load_mano_pkl(tmp_path / "r.pkl")
    np.testing.assert_allclose(data["J_regressor"], ref["J_regressor"].toarray(), atol=1e-7)
    np.testing.assert_array_equal(data["posedirs"], ref["posedirs"])


@needs_smplx
def test_forward_shapes_joints_and_tips(right):
    B = 3
    betas, go, hp, tr = zeros(B)
    tr = torch.randn(B, 3)
    verts, joints = right(betas, go, hp, tr)
    assert verts.shape == (B, 778, 3) and joints.shape == (B, 21, 3)
    data = load_mano_pkl(right.path)
    J = data["J_regressor"] @ data["v_template"]  # (16, 3)
    np.testing.assert_allclose(joints[:, :16].numpy(), J[None] + tr[:, None].numpy(), atol=1e-5)
    np.testing.assert_allclose(right.rest_joints_np, J, atol=1e-6)
    np.testing.assert_allclose(right.rest_joints(betas)[0].numpy(), J, atol=1e-6)
    assert torch.equal(joints[:, 16:], verts[:, list(MANO_TIP_IDS)])
    assert right.num_vertices == 778 and right.backend == "mano" and right.side == "right"
    assert right.faces.shape == (1552, 3) and right.faces.dtype == np.int32
    assert list(right.parameters()) == []  # smplx's own pose parameters are not created


@needs_smplx
def test_posed_matches_engine_lbs(right):
    """smplx's MANO = our FK + skinning + pose blend shapes; joints stay in MANO order."""
    torch.manual_seed(0)
    B = 2
    betas, go, hp, tr = torch.randn(B, 10), 0.5 * torch.randn(B, 3), 0.4 * torch.randn(B, 45), torch.randn(B, 3)
    verts, joints = right(betas, go, hp, tr)
    m = right.smplx
    J_rest = right.rest_joints(betas)  # (B, 16, 3)
    posed, A = forward_kinematics(go, hp, tr, J_rest, PARENTS)
    np.testing.assert_allclose(joints[:, :16].detach().numpy(), posed.numpy(), atol=1e-5)
    v_shaped = m.v_template + torch.einsum("bl,vkl->bvk", betas, m.shapedirs)
    from engine.motion.rotations import axis_angle_to_matrix
    R = axis_angle_to_matrix(hp.reshape(B, 15, 3))  # (B, 15, 3, 3)
    offsets = ((R - torch.eye(3)).reshape(B, -1) @ m.posedirs).reshape(B, 778, 3)
    np.testing.assert_allclose(verts.detach().numpy(), skin(v_shaped + offsets, m.lbs_weights, A).numpy(),
                               atol=1e-5)


@needs_smplx
def test_left_shapedirs_fix_only_on_left(mano_dir, right):
    left = ManoHand(mano_dir, "left")
    for hand, seed in ((left, 1), (right, 0)):
        sd = fake_mano(hand.side, seed)["shapedirs"]
        sign = -1 if hand.side == "left" else 1
        got = hand.smplx.shapedirs.numpy()
        np.testing.assert_allclose(got[:, 0], sign * sd[:, 0], atol=1e-7)
        np.testing.assert_allclose(got[:, 1:], sd[:, 1:], atol=1e-7)


@needs_smplx
def test_faces_closed_and_outward_on_both_sides(mano_dir, right):
    left = ManoHand(mano_dir, "left")
    for hand in (left, right):
        edges = np.sort(hand.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert (counts == 2).all()
        assert signed_volume(hand.smplx.v_template.numpy(), hand.faces) > 0
    # the left file keeps the right's faces on mirrored vertices, so its winding is reversed
    assert np.array_equal(np.sort(left.faces, 1), np.sort(right.faces, 1))
    assert not np.array_equal(left.faces, right.faces)


@pytest.mark.parametrize("inward", [False, True])
def test_cap_makes_tube_watertight_and_consistent(inward):
    v, f = tube_mesh(inward)
    cap = cap_boundary(f)
    assert cap.shape == (14, 3)
    closed = np.concatenate([f, cap])
    half = closed[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    assert len({tuple(h) for h in half}) == len(half)  # each directed edge once: consistent winding
    assert {tuple(h[::-1]) for h in half} == {tuple(h) for h in half}  # every edge has its twin
    assert (signed_volume(v, closed) > 0) != inward


def test_hostile_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    class Evil:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w')",))

    for i, payload in enumerate((Boom(), Evil(), {"v_template": Boom()})):
        p = tmp_path / f"MANO_RIGHT_{i}.pkl"
        p.write_bytes(pickle.dumps(payload, protocol=2))
        with pytest.raises(ManoFileError, match="refused") as e:
            load_mano_pkl(p)
        assert str(p) in str(e.value)
        assert ("system" in str(e.value)) or ("eval" in str(e.value))
    assert not marker.exists()


def test_chumpy_object_without_value_is_refused(tmp_path):
    data = fake_mano("right")
    data["J"] = Chumpy({"a": np.zeros(3), "idxs": [0, 1]}, cls="chumpy.reordering.Select")
    write_pkl(tmp_path / "x.pkl", data)
    with pytest.raises(ManoFileError, match="'J'.*chumpy.reordering.Select"):
        load_mano_pkl(tmp_path / "x.pkl")


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl") as e:
        find_mano_files(tmp_path / "nowhere", "right")
    msg = str(e.value)
    assert "nowhere" in msg and "MANO_LEFT.pkl" in msg and "mano.is.tue.mpg.de" in msg
    assert os.path.join("nowhere", "models", "MANO_RIGHT.pkl") in msg
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):
        ManoHand(tmp_path, "right")
    assert not mano_available(tmp_path)


@needs_smplx
def test_folder_layouts(tmp_path, mano_dir):
    assert mano_available(mano_dir)
    src = (mano_dir / "mano" / "MANO_RIGHT.pkl").read_bytes()
    for sub in (".", "models"):
        d = tmp_path / sub.replace(".", "flat")
        (d / sub).mkdir(parents=True, exist_ok=True)
        (d / sub / "MANO_RIGHT.pkl").write_bytes(src)
        assert find_mano_files(d, "right") == d / sub / "MANO_RIGHT.pkl"


@needs_smplx
def test_wrong_shape_is_refused_naming_key(tmp_path):
    (tmp_path / "mano").mkdir()
    data = fake_mano("right")
    data["posedirs"] = data["posedirs"][:, :, :100]
    write_pkl(tmp_path / "mano" / "MANO_RIGHT.pkl", data)
    with pytest.raises(ManoFileError, match="'posedirs'.*135"):
        ManoHand(tmp_path, "right")


@needs_smplx
def test_gradients_reach_hand_pose(right):
    betas, go, hp, tr = zeros(2)
    hp = (0.1 * torch.randn(2, 45)).requires_grad_()
    verts, joints = right(betas, go, hp, tr)
    (verts.square().sum() + joints.square().sum()).backward()
    assert hp.grad is not None and hp.grad.abs().sum() > 0 and torch.isfinite(hp.grad).all()


@needs_smplx
def test_two_hands(mano_dir):
    hands = load_two_mano(mano_dir)
    assert isinstance(hands, TwoHands) and hands.backend == "mano"
    B = 2
    verts, joints = hands(torch.zeros(2, 10), torch.zeros(B, 2, 3), torch.zeros(B, 2, 45), torch.zeros(B, 2, 3))
    assert [v.shape for v in verts] == [(B, 778, 3)] * 2 and joints.shape == (B, 2, 21, 3)
    np.testing.assert_allclose(verts[0][0].numpy(), mirror_points(verts[1][0].numpy()), atol=1e-7)
    assert hands.info()["vertices"] == [778, 778] and hands.device.type == "cpu"


@needs_smplx
def test_dtype_mismatch_is_named(right):
    with pytest.raises(ValueError, match="betas is torch.float64"):
        right(*(t.double() for t in zeros(1)))


@needs_smplx
def test_bad_side(mano_dir):
    with pytest.raises(ValueError, match="side"):
        ManoHand(mano_dir, "middle")


@needs_smplx
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda(mano_dir):
    hand = ManoHand(mano_dir, "right").to("cuda")
    betas, go, hp, tr = (t.cuda() for t in zeros(2))
    verts, joints = hand(betas, go, hp, tr)
    assert verts.device.type == "cuda" and joints.shape == (2, 21, 3)
    np.testing.assert_allclose(joints[0, :16].cpu().numpy(), hand.rest_joints_np, atol=1e-5)
