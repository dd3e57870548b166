"""The real MANO hand through ``smplx`` (the optional extra ``mano``), from a folder the user points to.

The released ``MANO_*.pkl`` files are python-2 pickles holding chumpy objects and a scipy sparse
matrix. They are read with an allow-list unpickler (never plain ``pickle``): chumpy is not needed,
and a hostile file cannot run code. The arrays then reach smplx through ``data_struct``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.sparse
import torch

from engine.hands.hand_model import HandModel, TwoHands, check_pose_shapes
from engine.hands.skeleton import PARENTS

MANO_URL = "https://mano.is.tue.mpg.de"
MANO_FILES = {"left": "MANO_LEFT.pkl", "right": "MANO_RIGHT.pkl"}
SUBFOLDERS = (".", "mano", "models")
# smplx's fingertip vertices, thumb, index, middle, ring, pinky (our keypoints 16..20).
MANO_TIP_IDS = (744, 320, 443, 554, 671)
NUM_VERTS = 778
EXPECTED_SHAPES = {
    "v_template": (NUM_VERTS, 3),
    "weights": (NUM_VERTS, 16),
    "posedirs": (NUM_VERTS, 3, 135),
    "shapedirs": (NUM_VERTS, 3, 10),
    "J_regressor": (16, NUM_VERTS),
    "kintree_table": (2, 16),
    "f": (1538, 3),
    "hands_components": (45, 45),
    "hands_mean": (45,),
}


class ManoFileError(ValueError):
    """A MANO model file that cannot be used: refused global, missing or malformed array."""


# --------------------------------------------------------------------------- safe unpickling

class _ChumpyStandIn:
    """Takes the place of any ``chumpy.*`` class; keeps the pickled state for later conversion."""

    def __init__(self, *args, **kwargs):
        self.state: Any = None
        self.args = args

    def __setstate__(self, state):
        self.state = state


class _SparseStandIn:
    """Takes the place of scipy's csc/csr matrix; rebuilt from its state by ``_to_plain``."""

    format = "csc"

    def __setstate__(self, state):
        self.state = state


class _CscStandIn(_SparseStandIn):
    format = "csc"


class _CsrStandIn(_SparseStandIn):
    format = "csr"


def _numpy_core():
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    return multiarray, numeric


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode`` (python 3 protocol-2 pickles store bytes this way); latin-1 only."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import copyreg

    ma, numeric = _numpy_core()
    allowed: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = ma._reconstruct
        allowed[(mod, "scalar")] = ma.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = numeric._frombuffer
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for mod in ("copy_reg", "copyreg"):
        allowed[(mod, "_reconstructor")] = copyreg._reconstructor
    for mod in ("__builtin__", "builtins"):
        allowed[(mod, "object")] = object
    for mod in ("scipy.sparse.csc", "scipy.sparse._csc"):
        allowed[(mod, "csc_matrix")] = _CscStandIn
    for mod in ("scipy.sparse.csr", "scipy.sparse._csr"):
        allowed[(mod, "csr_matrix")] = _CsrStandIn
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """Allow-list unpickler for MANO files: numpy arrays, scipy csc/csr matrices, chumpy stand-ins."""

    def __init__(self, file, name: str = "<stream>"):
        super().__init__(file, encoding="latin1")
        self.name = name
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStandIn,), {"chumpy_class": f"{module}.{name}"})
        raise ManoFileError(f"{self.name}: refused to load global {module}.{name} "
                            "(not a numpy, scipy.sparse or chumpy class a MANO file needs)")


def _to_plain(obj: Any, where: str, path: Path) -> Any:
    """Replace stand-ins by ndarrays / real scipy matrices, recursively through dicts and lists."""
    if isinstance(obj, _ChumpyStandIn):
        state = obj.state
        if isinstance(state, tuple):  # (dict, slot dict) form
            state = {k: v for part in state if isinstance(part, dict) for k, v in part.items()}
        if isinstance(state, dict) and "x" in state:
            return _to_plain(state["x"], where, path)
        raise ManoFileError(f"{path}: {where} is a chumpy {getattr(obj, 'chumpy_class', 'object')} "
                            "with no array value (state key 'x'); cannot read it without chumpy")
    if isinstance(obj, _SparseStandIn):
        s = obj.state if isinstance(obj.state, dict) else {}
        shape = s.get("_shape", s.get("shape"))
        if shape is None or not all(k in s for k in ("data", "indices", "indptr")):
            raise ManoFileError(f"{path}: {where} is a sparse matrix without data/indices/indptr/shape")
        cls = scipy.sparse.csc_matrix if obj.format == "csc" else scipy.sparse.csr_matrix
        return cls((np.asarray(s["data"]), np.asarray(s["indices"]), np.asarray(s["indptr"])),
                   shape=tuple(int(n) for n in shape))
    if isinstance(obj, dict):
        return {k: _to_plain(v, f"{where}[{k!r}]", path) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_plain(v, where, path) for v in obj)
    return obj


def load_mano_pkl(path: str | Path) -> dict[str, Any]:
    """Read a MANO ``.pkl`` safely -> {key: ndarray}; J_regressor dense float32 (16, 778), f int64.

    Non-array entries (strings such as ``bs_style``) are kept as they are.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = SafeUnpickler(fh, name=str(path)).load()
    except (ManoFileError, FileNotFoundError):
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise ManoFileError(f"{path}: not a readable MANO pickle ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict):
        raise ManoFileError(f"{path}: expected a dict of arrays at the top level; got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        value = _to_plain(value, repr(key), path)
        if scipy.sparse.issparse(value):
            value = np.asarray(value.toarray(), dtype=np.float32)
        elif isinstance(value, np.generic):
            value = np.asarray(value)
        out[str(key)] = value
    if isinstance(out.get("f"), np.ndarray):
        out["f"] = out["f"].astype(np.int64)
    return out


def check_mano_arrays(data: dict[str, Any], path: str | Path) -> None:
    """Raise ManoFileError naming the first missing or wrongly shaped array."""
    missing = [k for k in EXPECTED_SHAPES if k not in data]
    if missing:
        raise ManoFileError(f"{path}: missing arrays {missing}; a MANO file holds {sorted(EXPECTED_SHAPES)}")
    for key, shape in EXPECTED_SHAPES.items():
        a = data[key]
        if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype.kind not in "biuf":
            got = a.shape if isinstance(a, np.ndarray) else type(a).__name__
            raise ManoFileError(f"{path}: array {key!r} has shape {got}; expected numeric {shape}")
    f = data["f"]
    if f.min() < 0 or f.max() >= NUM_VERTS:
        raise ManoFileError(f"{path}: array 'f' indexes vertices {f.min()}..{f.max()}; "
                            f"expected 0..{NUM_VERTS - 1}")


# --------------------------------------------------------------------------- files

def find_mano_files(folder: str | Path, side: str) -> Path:
    """The MANO pkl for ``side`` in ``folder``, ``folder/mano`` or ``folder/models``."""
    if side not in MANO_FILES:
        raise ValueError(f"side must be 'left' or 'right'; got {side!r}")
    folder = Path(folder).expanduser()
    places = [folder / sub / MANO_FILES[side] for sub in SUBFOLDERS]  # pathlib drops the "."
    for p in places:
        if p.is_file():
            return p
    state = "" if folder.is_dir() else " (the folder does not exist)"
    raise FileNotFoundError(
        f"MANO model file {MANO_FILES[side]} not found for folder {folder}{state}; looked at "
        + ", ".join(str(p) for p in places)
        + f". Expected MANO_LEFT.pkl and MANO_RIGHT.pkl, downloaded from {MANO_URL} (registration needed).")


def mano_available(folder: str | Path | None) -> bool:
    """True when both MANO files are in ``folder`` and smplx is installed."""
    if folder is None:
        return False
    try:
        for side in MANO_FILES:
            find_mano_files(folder, side)
    except FileNotFoundError:
        return False
    return importlib.util.find_spec("smplx") is not None


# --------------------------------------------------------------------------- mesh

def cap_boundary(faces: np.ndarray) -> np.ndarray:
    """Fan-triangulate every boundary loop of a triangle mesh, winding consistent with ``faces``.

    faces (F, 3) -> cap faces (K, 3); a loop of n vertices gives n - 2 faces (MANO's wrist: 14).
    """
    faces = np.asarray(faces, dtype=np.int64)
    half = {(int(a), int(b)) for a, b in faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)}
    # A boundary half-edge a->b has no twin; the cap must run b->a.
    nxt: dict[int, int] = {}
    for a, b in half:
        if (b, a) not in half:
            if b in nxt:
                raise ValueError(f"mesh boundary is not a simple loop at vertex {b}; cannot cap it")
            nxt[b] = a
    caps = []
    while nxt:
        start = min(nxt)
        loop = [start]
        v = nxt.pop(start)
        while v != start:
            if v not in nxt:
                raise ValueError(f"mesh boundary does not close into a loop at vertex {v}; cannot cap it")
            loop.append(v)
            v = nxt.pop(v)
        caps += [(loop[0], loop[i], loop[i + 1]) for i in range(1, len(loop) - 1)]
    return np.asarray(caps, dtype=np.int64).reshape(-1, 3)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed mesh; positive when the winding is outward (CCW seen from outside)."""
    v = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]  # (F, 3, 3)
    return float(np.einsum("fi,fi->f", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def closed_outward_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """MANO's faces plus the wrist cap, flipped if needed so the closed mesh winds outward."""
    closed = np.concatenate([faces, cap_boundary(faces)], 0)
    if signed_volume(vertices, closed) < 0:
        closed = closed[:, ::-1]
    return np.ascontiguousarray(closed, dtype=np.int32)


# --------------------------------------------------------------------------- model

def _import_smplx():
    try:
        import smplx
    except ImportError as e:
        raise ImportError("the MANO backend needs smplx: pip install 'hand-studio[mano]'") from e
    return smplx


class ManoHand(HandModel):
    """One side of the real MANO model (smplx inside). Same parameters and joints as the default hand."""

    backend = "mano"

    def __init__(self, folder: str | Path, side: str = "right"):
        super().__init__()
        if side not in MANO_FILES:
            raise ValueError(f"side must be 'left' or 'right'; got {side!r}")
        smplx = _import_smplx()
        self.side = side
        self.path = find_mano_files(folder, side)
        data = load_mano_pkl(self.path)
        check_mano_arrays(data, self.path)
        parents = tuple(int(p) for p in data["kintree_table"][0, 1:])
        if parents != PARENTS[1:]:
            raise ManoFileError(f"{self.path}: kintree_table parents {parents} differ from MANO's "
                                f"{PARENTS[1:]}")
        shapedirs = data["shapedirs"].astype(np.float32)  # (778, 3, 10)
        if side == "left":  # the released left model has the x shape directions negated (smplx #48)
            shapedirs = shapedirs.copy()
            shapedirs[:, 0, :] *= -1
        struct = SimpleNamespace(**{**data, "shapedirs": shapedirs})
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a 10-betas warning
                self.smplx = smplx.MANO(
                    str(self.path.parent), is_rhand=side == "right", data_struct=struct, use_pca=False,
                    flat_hand_mean=True, num_betas=10, create_betas=False, create_global_orient=False,
                    create_body_pose=False, create_hand_pose=False, create_transl=False)
        except (AssertionError, ValueError, KeyError, AttributeError) as e:
            raise ManoFileError(f"{self.path}: smplx could not build the MANO {side} hand: {e}") from e
        self.faces = closed_outward_faces(data["v_template"], data["f"])  # (1552, 3) int32
        self.rest_joints_np = (data["J_regressor"].astype(np.float64)
                               @ data["v_template"].astype(np.float64)).astype(np.float32)  # (16, 3)
        self.register_buffer("tip_index", torch.tensor(MANO_TIP_IDS, dtype=torch.long))  # (5,)

    @property
    def num_vertices(self) -> int:
        return NUM_VERTS

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        m = self.smplx
        v = m.v_template + torch.einsum("bl,vkl->bvk", betas, m.shapedirs)  # (B, 778, 3)
        return torch.einsum("jv,bvk->bjk", m.J_regressor, v)  # (B, 16, 3)

    def forward(self, betas, global_orient, hand_pose, transl):
        check_pose_shapes(betas, global_orient, hand_pose, transl)
        ref = self.smplx.v_template
        names = ("betas", "global_orient", "hand_pose", "transl")
        for name, t in zip(names, (betas, global_orient, hand_pose, transl)):
            if t.dtype != ref.dtype or t.device != ref.device:
                raise ValueError(f"{name} is {t.dtype} on {t.device}; the MANO {self.side} hand is "
                                 f"{ref.dtype} on {ref.device}")
        out = self.smplx(betas=betas, global_orient=global_orient, hand_pose=hand_pose, transl=transl,
                         return_verts=True)
        verts = out.vertices  # (B, 778, 3)
        return verts, torch.cat([out.joints, verts[:, self.tip_index]], 1)  # (B, 21, 3)


def load_two_mano(folder: str | Path) -> TwoHands:
    """Both MANO hands from one folder (left, right)."""
    return TwoHands(ManoHand(folder, "left"), ManoHand(folder, "right"))
