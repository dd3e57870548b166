"""The embedded default hand: a CC0 MakeHuman hand retargeted to MANO's rest skeleton.

The asset (``resources/hands/default_hand.npz``, made by ``packaging/build_default_hand.py``)
holds the right hand; the left is its mirror in x with reversed winding. No shape space can
ship, so betas map to two interpretable controls and the rest are ignored:
``betas[0]``: overall size, ``scale = 1 + 0.05 * betas[0]`` about the wrist (clamped 0.7..1.3);
``betas[1]``: finger length, ``1 + 0.05 * betas[1]`` on every finger bone (clamped 0.7..1.3).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.hands.hand_model import HandModel, check_pose_shapes
from engine.hands.lbs import forward_kinematics, skin
from engine.hands.skeleton import PARENTS, TIP_PARENTS, mirror_points
from engine.resources import resource_path

ASSET = "hands/default_hand.npz"
_KEYS = {"vertices": 2, "faces": 2, "weights": 2, "joints": 2, "tip_ids": 1}


def load_default_hand_asset(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Read and validate the asset (right hand). Raises naming the file and the bad key."""
    path = Path(path) if path is not None else resource_path(ASSET)
    if not path.is_file():
        raise FileNotFoundError(f"default hand asset not found: {path} "
                                "(rebuild it with `python packaging/build_default_hand.py`)")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in _KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}; expected {sorted(_KEYS)}")
        data = {k: np.asarray(z[k]) for k in _KEYS}
    V = data["vertices"].shape[0]
    checks = {
        "vertices": data["vertices"].shape == (V, 3),
        "faces": data["faces"].ndim == 2 and data["faces"].shape[1] == 3
        and data["faces"].min() >= 0 and data["faces"].max() < V,
        "weights": data["weights"].shape == (V, 16),
        "joints": data["joints"].shape == (16, 3),
        "tip_ids": data["tip_ids"].shape == (5,) and data["tip_ids"].max() < V,
    }
    for k, ok in checks.items():
        if not ok:
            raise ValueError(f"{path}: array {k!r} has shape {data[k].shape}, which does not fit "
                             f"a hand of {V} vertices (vertices (V,3), faces (F,3) < V, weights (V,16), "
                             "joints (16,3), tip_ids (5,))")
    return data


def finger_bone_dirs(rest_joints: torch.Tensor, tip_rest: torch.Tensor) -> torch.Tensor:
    """Unit direction of each joint's bone (toward its child / tip). (16,3), (5,3) -> (16, 3)."""
    child = rest_joints.clone()
    for j, p in enumerate(PARENTS):
        if p > 0:
            child[p] = rest_joints[j]
    for t, p in enumerate(TIP_PARENTS):
        child[p] = tip_rest[t]
    d = child - rest_joints
    d[0] = 0
    return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def shape_default_hand(vertices: torch.Tensor, rest_joints: torch.Tensor, weights: torch.Tensor,
                       bone_dirs: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply size and finger length. vertices (V,3), rest_joints (16,3), weights (V,16),
    bone_dirs (16,3), betas (B,10) -> shaped vertices (B,V,3), shaped joints (B,16,3)."""
    B = betas.shape[0]
    scale = (1 + 0.05 * betas[:, 0]).clamp(0.7, 1.3)[:, None, None]  # (B,1,1)
    flen = (1 + 0.05 * betas[:, 1]).clamp(0.7, 1.3)[:, None, None]  # (B,1,1)
    J = rest_joints.expand(B, 16, 3).clone()
    for j, p in enumerate(PARENTS):
        if p > 0:  # finger bones below the MCP: stretch the segment from the parent
            J[:, j] = J[:, p] + flen[:, 0] * (rest_joints[j] - rest_joints[p])
    # each vertex follows its bones' joint shift plus the stretch along the bone
    along = ((vertices[:, None, :] - rest_joints[None]) * bone_dirs[None]).sum(-1).clamp_min(0)  # (V,16)
    finger = torch.ones(16, dtype=vertices.dtype, device=vertices.device)
    finger[0] = 0
    disp = (J - rest_joints)[:, None] + (flen - 1)[..., None] * along[None, :, :, None] * bone_dirs[None, None]
    v = vertices + ((weights * finger)[None, :, :, None] * disp).sum(2)  # (B,V,3)
    wrist = rest_joints[0]
    return wrist + scale * (v - wrist), wrist + scale * (J - wrist)


class DefaultHand(HandModel):
    """One side of the embedded hand. Same parameters and joints as MANO."""

    backend = "default"

    def __init__(self, side: str = "right", asset: dict[str, np.ndarray] | None = None):
        super().__init__()
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right'; got {side!r}")
        self.side = side
        a = asset if asset is not None else load_default_hand_asset()
        verts, joints, faces = a["vertices"].astype(np.float32), a["joints"].astype(np.float32), a["faces"]
        if side == "left":
            verts, joints, faces = mirror_points(verts), mirror_points(joints), faces[:, ::-1]
        self.faces = np.ascontiguousarray(faces, dtype=np.int32)
        self.rest_joints_np = joints
        self.tip_ids = np.asarray(a["tip_ids"], dtype=np.int64)
        self.register_buffer("v_template", torch.from_numpy(verts))  # (V, 3)
        self.register_buffer("weights", torch.from_numpy(a["weights"].astype(np.float32)))  # (V, 16)
        self.register_buffer("J_rest", torch.from_numpy(joints))  # (16, 3)
        self.register_buffer("tip_index", torch.from_numpy(self.tip_ids))  # (5,)
        self.register_buffer("bone_dirs", finger_bone_dirs(self.J_rest, self.v_template[self.tip_index]))

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        return self.shaped(betas)[1]

    def shaped(self, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """betas (B,10) -> (vertices (B,V,3), joints (B,16,3)) at zero pose."""
        return shape_default_hand(self.v_template, self.J_rest, self.weights, self.bone_dirs, betas)

    def _shape_rows(self, betas: torch.Tensor, vertices: torch.Tensor, weights: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shaped (vertices (b,n,3), joints (b,16,3)) with b = 1 when every row of betas is the
        same (one shape per clip, the usual case), else b = B."""
        if bool((betas == betas[:1]).all()):
            betas = betas[:1]
        if bool((betas[:, :2] == 0).all()):
            return vertices[None], self.J_rest[None]
        return shape_default_hand(vertices, self.J_rest, weights, self.bone_dirs, betas)

    def forward(self, betas, global_orient, hand_pose, transl):
        check_pose_shapes(betas, global_orient, hand_pose, transl)
        v_shaped, J = self._shape_rows(betas, self.v_template, self.weights)
        joints, A = forward_kinematics(global_orient, hand_pose, transl, J, PARENTS)
        verts = skin(v_shaped, self.weights, A)  # (B, V, 3)
        return verts, torch.cat([joints, verts[:, self.tip_index]], 1)

    def keypoints(self, betas, global_orient, hand_pose, transl):
        """(B, 21, 3), shaping and skinning only the five tip vertices."""
        check_pose_shapes(betas, global_orient, hand_pose, transl)
        w_tips = self.weights[self.tip_index]
        tips_rest, J = self._shape_rows(betas, self.v_template[self.tip_index], w_tips)
        joints, A = forward_kinematics(global_orient, hand_pose, transl, J, PARENTS)
        return torch.cat([joints, skin(tips_rest, w_tips, A)], 1)
