"""Bounded, pickle-free reading of user files: size limits, npy headers checked before any
allocation, JSON without surprises. Every defect becomes a FileFormatError naming the file."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from engine.io import FileFormatError

MAX_FILE_BYTES = 1 << 30  # 1 GiB on disk
MAX_TEXT_BYTES = 256 << 20  # BVH / JSON text
MAX_ARRAY_ELEMENTS = 64_000_000  # per array (a 30-minute two-hand keypoint clip is ~7 M)
_OK_KINDS = "fiub"  # float, int, unsigned, bool; strings only for small metadata
_MAX_STRING_BYTES = 1 << 20


def check_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> int:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise FileFormatError(path, "the file is empty")
    if size > max_bytes:
        raise FileFormatError(path, f"{size} bytes is more than the {max_bytes} this importer accepts")
    return size


def _check_header(path: Path, name: str, fh) -> None:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"npy version {version}")
    except Exception as e:  # numpy raises ValueError/SyntaxError/... on a damaged header
        raise FileFormatError(path, f"array {name!r} has a damaged .npy header ({type(e).__name__}: {e})") from None
    count = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if dtype.hasobject:
        raise FileFormatError(path, f"array {name!r} holds Python objects; only numeric arrays are read (never unpickled)")
    if dtype.kind in "US":
        if count * dtype.itemsize > _MAX_STRING_BYTES:
            raise FileFormatError(path, f"string array {name!r} is larger than {_MAX_STRING_BYTES} bytes")
    elif dtype.kind not in _OK_KINDS:
        raise FileFormatError(path, f"array {name!r} has dtype {dtype}; numeric arrays expected")
    if count > MAX_ARRAY_ELEMENTS:
        raise FileFormatError(path, f"array {name!r} claims shape {shape} ({count} elements); "
                                    f"at most {MAX_ARRAY_ELEMENTS} are accepted")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz, each header checked first; never unpickles."""
    path = Path(path)
    check_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".npy")]
            if not names:
                raise FileFormatError(path, "the archive holds no .npy arrays")
            if len(names) > 1000:
                raise FileFormatError(path, f"the archive holds {len(names)} arrays; at most 1000 expected")
            for n in names:
                with zf.open(n) as fh:
                    _check_header(path, n[:-4], fh)
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError,
            RuntimeError, UnicodeDecodeError, MemoryError) as e:
        raise FileFormatError(path, f"not a readable .npz archive ({type(e).__name__}: {e})") from None


def read_npy(path: Path) -> np.ndarray:
    path = Path(path)
    check_file(path)
    try:
        with open(path, "rb") as fh:
            _check_header(path, path.stem, fh)
        return np.load(path, allow_pickle=False)
    except FileFormatError:
        raise
    except (ValueError, OSError, EOFError, UnicodeDecodeError, MemoryError) as e:
        raise FileFormatError(path, f"not a readable .npy array ({type(e).__name__}: {e})") from None


def read_text(path: Path, what: str) -> str:
    path = Path(path)
    check_file(path, MAX_TEXT_BYTES)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
            raise FileFormatError(path, f"not a {what} text file") from None


def read_json(path: Path):
    text = read_text(path, "JSON")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FileFormatError(path, f"not valid JSON ({type(e).__name__}: {str(e)[:120]})") from None


def float_array(path: Path, name: str, value, ndim_shape: tuple, what: str) -> np.ndarray:
    """A finite float64 array matching ``ndim_shape`` (None = any length) or a FileFormatError."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as e:
        raise FileFormatError(path, f"{name} must be numbers shaped {_fmt(ndim_shape)} ({what}); {e}") from None
    if arr.ndim != len(ndim_shape) or any(s is not None and s != d for s, d in zip(ndim_shape, arr.shape)):
        raise FileFormatError(path, f"{name} must have shape {_fmt(ndim_shape)} ({what}); got {arr.shape}")
    if arr.size > MAX_ARRAY_ELEMENTS:
        raise FileFormatError(path, f"{name} has {arr.size} elements; at most {MAX_ARRAY_ELEMENTS} accepted")
    if not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise FileFormatError(path, f"{name} must be finite; found {arr[bad]} at index {bad}")
    return arr


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"
