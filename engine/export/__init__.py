"""Exporters: FBX binary 7.4, BVH and glTF (.glb) written by us, and our own npz.

``export_clip(clip, path, options)`` picks the format from the extension and returns the files
written (BVH writes one file per hand by default). Conventions per format: docs/formats.md.
"""
from __future__ import annotations

import time
from pathlib import Path

from engine.export.rig import ExportOptions, parse_hands, parse_range, prepare
from engine.motion.clip import Clip, ClipError

FORMATS = (".fbx", ".bvh", ".glb", ".npz")


def export_clip(clip: Clip, path: str | Path, options: ExportOptions | None = None,
                bvh_layout: str = "per_hand", with_mesh: bool = True) -> list[Path]:
    """Write ``clip`` to ``path`` in the format of its extension; returns the files written."""
    path = Path(path)
    suffix = path.suffix.lower()
    options = options or ExportOptions()
    if suffix == ".fbx":
        from engine.export.fbx import export_fbx
        return export_fbx(clip, path, options, with_mesh=with_mesh)
    if suffix == ".bvh":
        from engine.export.bvh import export_bvh
        return export_bvh(clip, path, options, layout=bvh_layout)
    if suffix == ".glb":
        from engine.export.gltf import export_glb
        return export_glb(clip, path, options, with_mesh=with_mesh)
    if suffix == ".npz":
        if len(options.hand_indices()) != 2:
            raise ClipError(f"{path}: a .npz clip always holds both hands; drop --hands or pick another format")
        return [prepare(clip, options).save(path)]
    raise ClipError(f"{path}: cannot export {suffix or 'files without an extension'}; supported: {list(FORMATS)}")


def timed_export(clip: Clip, path: str | Path, **kwargs) -> tuple[list[Path], float]:
    """``export_clip`` and the seconds it took (for the benchmark)."""
    t = time.perf_counter()
    out = export_clip(clip, path, **kwargs)
    return out, time.perf_counter() - t


def register_writers(writers: dict) -> None:
    """Plug the exchange formats into ``engine.io`` (Clip.save). BVH from Clip.save is one file
    (both wrists under one ROOT) so that Clip.load reads the same path back."""
    writers[".fbx"] = lambda clip, path: export_clip(clip, path)[0]
    writers[".glb"] = lambda clip, path: export_clip(clip, path)[0]
    writers[".bvh"] = lambda clip, path: export_clip(clip, path, bvh_layout="one_root")[0]


__all__ = ["ExportOptions", "export_clip", "parse_hands", "parse_range", "register_writers", "FORMATS"]
