"""Run inside Blender: import an FBX, pose it at a frame and render a PNG (Workbench, CPU).

usage: blender -b -noaudio --factory-startup --python-exit-code 1 --python blender_render.py -- IN.fbx OUT.png FRAME
Made docs/blender_fbx_import.png: Blender's own FBX importer (default axis settings, our
Y-up file -> Blender Z-up), viewed from the performer's side, above and behind the hands.
"""
import sys

import bpy
from mathutils import Vector

argv = sys.argv[sys.argv.index("--") + 1:]
src, out, frame = argv[0], argv[1], int(argv[2])
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.fbx(filepath=src, anim_offset=0.0, ignore_leaf_bones=False, automatic_bone_orientation=False)
scene = bpy.context.scene
scene.frame_set(frame)
meshes = [o for o in scene.objects if o.type == "MESH"]
dg = bpy.context.evaluated_depsgraph_get()
pts = []
for m in meshes:
    ev = m.evaluated_get(dg)
    pts += [ev.matrix_world @ v.co for v in ev.to_mesh().vertices]
lo = Vector((min(p.x for p in pts), min(p.y for p in pts), min(p.z for p in pts)))
hi = Vector((max(p.x for p in pts), max(p.y for p in pts), max(p.z for p in pts)))
center = (lo + hi) / 2
size = max(hi - lo)
for arm in (o for o in scene.objects if o.type == "ARMATURE"):
    arm.show_in_front = True
    arm.data.display_type = "STICK"
cam_data = bpy.data.cameras.new("cam")
cam = bpy.data.objects.new("cam", cam_data)
scene.collection.objects.link(cam)
cam.location = center + Vector((0.25 * size, -1.3 * size, 0.9 * size))  # behind the hands (-Y), above
direction = center - cam.location
cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
scene.camera = cam
scene.render.engine = "BLENDER_WORKBENCH"
scene.display.shading.light = "STUDIO"
scene.display.shading.color_type = "OBJECT"
scene.display.shading.show_cavity = True
for i, m in enumerate(meshes):
    m.color = (0.85, 0.62, 0.5, 1) if m.name.startswith("R_") else (0.55, 0.68, 0.9, 1)
world = bpy.data.worlds.new("w")
scene.world = world
world.color = (0.08, 0.08, 0.1)
scene.render.resolution_x, scene.render.resolution_y = 960, 600
scene.render.filepath = out
scene.render.image_settings.file_format = "PNG"
bpy.ops.render.render(write_still=True)
