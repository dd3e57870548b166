"""Run in its own process: load an FBX with ufbx (strict) and dump what it evaluates as JSON.

usage: python ufbx_read.py FILE.fbx OUT.json FRAME [FRAME ...]
Output: scene settings, anim stack range, every node's name/type/parent, and per asked frame
the world position of every node (node_to_world) and the skinned vertex positions of each mesh.
ufbx can crash at garbage collection: gc is disabled and the process leaves with os._exit.
"""
import gc
import json
import os
import sys
import traceback

gc.disable()


KEEP = []  # every wrapper stays referenced: freeing some of them early crashes ufbx 0.0.5


def keep(x):
    KEEP.append(x)
    return x


def _node_info(n) -> dict:
    keep(n)
    bone, mesh, parent = keep(n.bone), keep(n.mesh), keep(n.parent)
    return {"name": n.name, "bone": bone is not None, "mesh": mesh is not None,
            "parent": (parent.name or None) if parent is not None else None}


def main() -> None:
    import ufbx
    path, out, frames = sys.argv[1], sys.argv[2], [int(f) for f in sys.argv[3:]]
    scene = keep(ufbx.load_file(path, strict=True))
    st = keep(scene.settings)
    axes = keep(st.axes)
    fps = st.frames_per_second
    stacks = keep(list(keep(scene.anim_stacks)))
    stack = stacks[0]
    anim = keep(stack.anim)
    nodes = keep(list(keep(scene.nodes)))
    poses = keep(list(keep(scene.poses)))
    result = {
        "axes": [str(axes.right), str(axes.up), str(axes.front)],
        "unit_meters": st.unit_meters, "fps": fps, "time_mode": str(st.time_mode),
        "stacks": [s.name for s in stacks],
        "time_begin": stack.time_begin, "time_end": stack.time_end,
        "nodes": [_node_info(n) for n in nodes if not n.is_root],
        "skin_clusters": len(keep(scene.skin_clusters)),
        "poses": [{"bind": p.is_bind_pose, "bones": len(keep(p.bone_poses))} for p in poses],
        "frames": {},
    }
    for f in frames:
        ev = keep(ufbx.evaluate_scene(scene, anim, f / fps, evaluate_skinning=True))
        ev_nodes = keep(list(keep(ev.nodes)))
        pos, skinned = {}, {}
        for n in ev_nodes:
            if n.is_root:
                continue
            pos[n.name] = list(keep(n.node_to_world).c3)
            mesh = keep(n.mesh)
            if mesh is not None:
                sp = keep(mesh.skinned_position)
                skinned[n.name] = [list(v) for v in keep(sp.values)]
        result["frames"][str(f)] = {"positions": pos, "skinned": skinned}
    with open(out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    try:
        main()
        code = 0
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
