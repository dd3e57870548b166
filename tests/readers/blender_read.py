"""Run inside Blender (system Python): import exported files and dump what Blender sees as JSON.

usage: blender -b -noaudio --factory-startup --python-exit-code 1 --python blender_read.py -- MANIFEST.json OUT.json
MANIFEST: [{"path": ..., "format": "fbx"|"bvh"|"glb", "frames": [Blender frame, ...], "fps": clip fps}, ...]
Per file: scene fps after import, actions and their frame ranges, armature bone names, and per
frame every pose bone's world head/tail and every mesh's evaluated (skinned) vertices.
Blender 3.4 quirks handled here: the BVH importer's open(path, 'rU'); the glTF importer's np.bool.
"""
import json
import sys

import bpy
import numpy

if not hasattr(numpy, "bool"):
    numpy.bool = bool  # Blender 3.4's glTF importer still uses np.bool (removed in numpy 1.24)


def _patch_bvh_open():
    import builtins
    import io_anim_bvh.import_bvh as ib

    def open_without_u(file, mode="r", *args, **kwargs):
        return builtins.open(file, mode.replace("U", ""), *args, **kwargs)
    ib.open = open_without_u


def import_file(entry):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    fps = float(entry["fps"])
    scene.render.fps, scene.render.fps_base = round(fps), round(fps) / fps
    fmt, path = entry["format"], entry["path"]
    if fmt == "fbx":
        bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0, ignore_leaf_bones=False,
                                 automatic_bone_orientation=False, use_anim=True)
    elif fmt == "bvh":
        _patch_bvh_open()
        scene.render.fps, scene.render.fps_base = 24, 1.0  # so update_scene_fps must set it
        bpy.ops.import_anim.bvh(filepath=path, target="ARMATURE", global_scale=0.01, frame_start=0,
                                use_fps_scale=False, update_scene_fps=True, update_scene_duration=True,
                                rotate_mode="NATIVE", axis_forward="-Z", axis_up="Y")
    elif fmt == "glb":
        bpy.ops.import_scene.gltf(filepath=path)
    else:
        raise ValueError(f"unknown format {fmt}")


def dump(entry):
    import_file(entry)
    scene = bpy.context.scene
    out = {"fps": scene.render.fps / scene.render.fps_base,
           "actions": {a.name: list(a.frame_range) for a in bpy.data.actions},
           "armatures": {}, "meshes": {}, "frames": {}}
    arms = [o for o in scene.objects if o.type == "ARMATURE"]
    meshes = [o for o in scene.objects if o.type == "MESH"]
    for a in arms:
        out["armatures"][a.name] = {"bones": [b.name for b in a.data.bones],
                                    "action": a.animation_data.action.name
                                    if a.animation_data and a.animation_data.action else None}
    for m in meshes:
        out["meshes"][m.name] = {"vertices": len(m.data.vertices),
                                 "groups": len(m.vertex_groups)}
    for f in entry["frames"]:
        scene.frame_set(int(f))
        dg = bpy.context.evaluated_depsgraph_get()
        bones = {}
        for a in arms:
            mw = a.matrix_world
            for pb in a.pose.bones:
                bones[pb.name] = {"head": list(mw @ pb.head), "tail": list(mw @ pb.tail)}
        skinned = {}
        for m in meshes:
            ev = m.evaluated_get(dg)
            me = ev.to_mesh()
            co = numpy.empty(len(me.vertices) * 3)
            me.vertices.foreach_get("co", co)
            co = co.reshape(-1, 3)
            mw = numpy.array(ev.matrix_world)
            co = co @ mw[:3, :3].T + mw[:3, 3]
            skinned[m.name] = co.tolist()
            ev.to_mesh_clear()
        out["frames"][str(f)] = {"bones": bones, "skinned": skinned}
    return out


def main():
    argv = sys.argv[sys.argv.index("--") + 1:]
    with open(argv[0]) as fh:
        manifest = json.load(fh)
    results = []
    for entry in manifest:
        try:
            results.append({"ok": True, **dump(entry)})
        except Exception as e:  # reported per file; the test fails with the message
            import traceback
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()})
    with open(argv[1], "w") as fh:
        json.dump(results, fh)


main()
