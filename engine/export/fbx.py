"""FBX binary 7.4 writer (pure Python): two LimbNode skeletons, skinned meshes, one animation.

Conventions (see docs/formats.md): Y up, front +Z, X right (``UpAxis`` 1, ``FrontAxis`` 2,
``CoordAxis`` 0, all signs +1), centimetres (``UnitScaleFactor`` 1). Bones are named
``L_wrist``, ``L_index1``, ... with tips as end bones (``L_index_tip``); every bone's rest
orientation is identity (MANO), so ``Lcl Rotation`` is the joint's axis-angle as XYZ Euler
degrees (R = Rz Ry Rx), continuous over time. The wrist is animated in ``Lcl Translation``.
Meshes are the default hand (weights per joint as Clusters) with a ``BindPose`` at rest.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.export.fbx_binary import CREATION_TIME, FILE_ID, VERSION, Node, write_document
from engine.export.rig import BONE_PARENTS, ExportOptions, HandRig, build_rigs, continuous_euler, prepare
from engine.motion.clip import Clip, atomic_write

KTIME_PER_SECOND = 46_186_158_000
CM = 100.0
TAKE = "Take 001"
# FBX TimeMode for the frame rates it names; anything else is 14 (custom) + CustomFrameRate.
TIME_MODES = {120.0: 1, 100.0: 2, 60.0: 3, 50.0: 4, 48.0: 5, 30.0: 6, 25.0: 10, 24.0: 11, 1000.0: 12,
              96.0: 15, 72.0: 16}
_KEY_ATTR_DATA = np.array([0, 0, 0x0F3F0F3F, 0], np.uint32).view(np.float32)  # tangent weights/velocity
_P_CODES = {"int": "I", "enum": "I", "bool": "I", "Integer": "I", "double": "D", "Number": "D",
            "KTime": "L", "KString": "S", "Vector3D": "DDD", "Vector": "DDD", "ColorRGB": "DDD",
            "Color": "DDD", "Lcl Translation": "DDD", "Lcl Rotation": "DDD", "Lcl Scaling": "DDD",
            "object": ""}


def P(name: str, ptype: str, label: str = "", flags: str = "", *values) -> Node:
    """A ``Properties70`` entry; the value codes follow the property type."""
    codes = _P_CODES[ptype]
    if len(values) != len(codes):
        raise ValueError(f"property {name} of type {ptype} takes {len(codes)} values; got {len(values)}")
    props = [("S", name), ("S", ptype), ("S", label), ("S", flags)]
    props += [(c, int(v) if c in "IL" else (str(v) if c == "S" else float(v))) for c, v in zip(codes, values)]
    return Node("P", props)


def props70(*entries: Node) -> Node:
    return Node("Properties70", [], list(entries))


def _name(name: str, cls: str) -> tuple[str, bytes]:
    return "S", name.encode("utf-8") + b"\x00\x01" + cls.encode("ascii")


def _matrix(M: np.ndarray) -> np.ndarray:
    """4x4 (column-vector convention) -> the 16 doubles FBX stores (column-major)."""
    return np.asarray(M, np.float64).T.reshape(16)


def _translation(t: np.ndarray) -> np.ndarray:
    M = np.eye(4)
    M[:3, 3] = t
    return M


def ktime(frame: np.ndarray | int, fps: float) -> np.ndarray:
    """Frame numbers -> FBX ticks (1/46186158000 s), int64."""
    return np.rint(np.asarray(frame, np.float64) * (KTIME_PER_SECOND / fps)).astype(np.int64)


class _Ids:
    def __init__(self, start: int = 1_000_000):
        self.next = start

    def __call__(self) -> int:
        self.next += 1
        return self.next


def _curve(uid: int, times: np.ndarray, values: np.ndarray) -> Node:
    n = len(times)
    return Node("AnimationCurve", [("L", uid), _name("", "AnimCurve"), ("S", "")], [
        Node("Default", [("D", float(values[0]))]),
        Node("KeyVer", [("I", 4008)]),
        Node("KeyTime", [("l", times)]),
        Node("KeyValueFloat", [("f", values.astype(np.float32))]),
        Node("KeyAttrFlags", [("i", np.array([24836], np.int32))]),
        Node("KeyAttrDataFloat", [("f", _KEY_ATTR_DATA)]),
        Node("KeyAttrRefCount", [("i", np.array([n], np.int32))]),
    ])


def build_scene(clip: Clip, rigs: list[HandRig], with_mesh: bool = True) -> list[Node]:
    """The top-level FBX records for the rigs (already range-cut and resampled)."""
    ids = _Ids()
    fps, T = clip.fps, clip.num_frames
    times = ktime(np.arange(T), fps)
    stop = int(times[-1])
    objects, conns = Node("Objects"), Node("Connections")
    counts: dict[str, int] = {}

    def obj(node: Node) -> Node:
        counts[node.name] = counts.get(node.name, 0) + 1
        objects.children.append(node)
        return node

    def connect(kind: str, child: int, parent: int, prop: str | None = None) -> None:
        props = [("S", kind), ("L", child), ("L", parent)]
        if prop:
            props.append(("S", prop))
        conns.children.append(Node("C", props))

    stack_id, layer_id = ids(), ids()
    obj(Node("AnimationStack", [("L", stack_id), _name(TAKE, "AnimStack"), ("S", "")], [props70(
        P("LocalStart", "KTime", "Time", "", 0), P("LocalStop", "KTime", "Time", "", stop),
        P("ReferenceStart", "KTime", "Time", "", 0), P("ReferenceStop", "KTime", "Time", "", stop))]))
    obj(Node("AnimationLayer", [("L", layer_id), _name("BaseLayer", "AnimLayer"), ("S", "")]))
    connect("OO", layer_id, stack_id)
    pose_nodes = []

    # Euler curves for all animated joints of all hands at once (continuity is per joint).
    local = np.concatenate([r.local_R for r in rigs], 1)  # (T, 16 * H, 3, 3)
    eul = np.degrees(continuous_euler(local, "ZYX")[..., ::-1])  # (T, 16H, 3) = (x, y, z), R = Rz Ry Rx

    def curve_node(kind: str, model_id: int, values: np.ndarray) -> None:
        cn = ids()
        obj(Node("AnimationCurveNode", [("L", cn), _name(kind, "AnimCurveNode"), ("S", "")], [props70(
            *(P(f"d|{a}", "Number", "", "A", float(values[0, k])) for k, a in enumerate("XYZ")))]))
        connect("OO", cn, layer_id)
        connect("OP", cn, model_id, "Lcl Translation" if kind == "T" else "Lcl Rotation")
        for k, a in enumerate("XYZ"):
            cid = ids()
            obj(_curve(cid, times, values[:, k]))
            connect("OP", cid, cn, f"d|{a}")

    for h, rig in enumerate(rigs):
        bone_ids = []
        for j, name in enumerate(rig.names):
            mid, aid = ids(), ids()
            bone_ids.append(mid)
            obj(Node("NodeAttribute", [("L", aid), _name(name, "NodeAttribute"), ("S", "LimbNode")], [
                props70(P("Size", "double", "Number", "", 1.0)), Node("TypeFlags", [("S", "Skeleton")])]))
            t = rig.offsets[j] * CM
            r0 = eul[0, 16 * h + j] if j < 16 else np.zeros(3)
            obj(Node("Model", [("L", mid), _name(name, "Model"), ("S", "LimbNode")], [
                Node("Version", [("I", 232)]),
                props70(P("RotationOrder", "enum", "", "", 0), P("InheritType", "enum", "", "", 1),
                        P("DefaultAttributeIndex", "int", "Integer", "", 0),
                        P("Lcl Translation", "Lcl Translation", "", "A", *t),
                        P("Lcl Rotation", "Lcl Rotation", "", "A", *r0),
                        P("Lcl Scaling", "Lcl Scaling", "", "A", 1, 1, 1)),
                Node("Shading", [("C", 1)]), Node("Culling", [("S", "CullingOff")])]))
            connect("OO", aid, mid)
            connect("OO", mid, 0 if j == 0 else bone_ids[BONE_PARENTS[j]])
            pose_nodes.append((mid, _translation(rig.rest[j] * CM)))
            if j < 16:
                if j == 0:
                    curve_node("T", mid, rig.root_pos * CM)
                curve_node("R", mid, eul[:, 16 * h + j])
        if with_mesh and len(rig.vertices):
            _skinned_mesh(rig, bone_ids, ids, obj, connect, pose_nodes)

    pose_id = ids()
    obj(Node("Pose", [("L", pose_id), _name("BindPose", "Pose"), ("S", "BindPose")], [
        Node("Type", [("S", "BindPose")]), Node("Version", [("I", 100)]),
        Node("NbPoseNodes", [("I", len(pose_nodes))]),
        *(Node("PoseNode", [], [Node("Node", [("L", nid)]), Node("Matrix", [("d", _matrix(M))])])
          for nid, M in pose_nodes)]))

    return [_header(), Node("FileId", [("R", FILE_ID)]), Node("CreationTime", [("S", CREATION_TIME)]),
            Node("Creator", [("S", _creator())]), _global_settings(fps, stop), _documents(),
            Node("References"), _definitions(counts), objects, conns, _takes(stop)]


def _skinned_mesh(rig: HandRig, bone_ids, ids, obj, connect, pose_nodes) -> None:
    base = rig.names[0].split("_")[0] + "_hand_mesh"
    model_id, geom_id, skin_id = ids(), ids(), ids()
    poly = rig.faces.astype(np.int32).copy()
    poly[:, 2] = -poly[:, 2] - 1  # the last index of each polygon is stored as ~i
    obj(Node("Geometry", [("L", geom_id), _name(base, "Geometry"), ("S", "Mesh")], [
        Node("Vertices", [("d", (rig.vertices * CM).reshape(-1))]),
        Node("PolygonVertexIndex", [("i", poly.reshape(-1))]),
        Node("GeometryVersion", [("I", 124)])]))
    obj(Node("Model", [("L", model_id), _name(base, "Model"), ("S", "Mesh")], [
        Node("Version", [("I", 232)]),
        props70(P("DefaultAttributeIndex", "int", "Integer", "", 0),
                P("Lcl Translation", "Lcl Translation", "", "A", 0, 0, 0),
                P("Lcl Rotation", "Lcl Rotation", "", "A", 0, 0, 0),
                P("Lcl Scaling", "Lcl Scaling", "", "A", 1, 1, 1)),
        Node("Shading", [("C", 1)]), Node("Culling", [("S", "CullingOff")])]))
    connect("OO", model_id, 0)
    connect("OO", geom_id, model_id)
    obj(Node("Deformer", [("L", skin_id), _name(base, "Deformer"), ("S", "Skin")], [
        Node("Version", [("I", 101)]), Node("Link_DeformAcuracy", [("D", 50.0)]),
        Node("SkinningType", [("S", "Linear")])]))
    connect("OO", skin_id, geom_id)
    mesh_bind = np.eye(4)
    pose_nodes.append((model_id, mesh_bind))
    for j in range(16):
        w = rig.weights[:, j]
        idx = np.nonzero(w > 0)[0]
        if not len(idx):
            continue
        cid = ids()
        link = _translation(rig.rest[j] * CM)
        obj(Node("Deformer", [("L", cid), _name(rig.names[j], "SubDeformer"), ("S", "Cluster")], [
            Node("Version", [("I", 100)]), Node("UserData", [("S", ""), ("S", "")]),
            Node("Indexes", [("i", idx.astype(np.int32))]), Node("Weights", [("d", w[idx])]),
            Node("Transform", [("d", _matrix(np.linalg.inv(link) @ mesh_bind))]),
            Node("TransformLink", [("d", _matrix(link))])]))
        connect("OO", cid, skin_id)
        connect("OO", bone_ids[j], cid)


def _creator() -> str:
    import engine
    return f"Hand Studio {engine.__version__} (engine.export.fbx)"


def _header() -> Node:
    return Node("FBXHeaderExtension", [], [
        Node("FBXHeaderVersion", [("I", 1003)]), Node("FBXVersion", [("I", VERSION)]),
        Node("EncryptionType", [("I", 0)]),
        Node("CreationTimeStamp", [], [Node(k, [("I", v)]) for k, v in (
            ("Version", 1000), ("Year", 1970), ("Month", 1), ("Day", 1), ("Hour", 10), ("Minute", 0),
            ("Second", 0), ("Millisecond", 0))]),
        Node("Creator", [("S", _creator())])])


def _global_settings(fps: float, stop: int) -> Node:
    mode = TIME_MODES.get(round(fps, 6), 14)
    return Node("GlobalSettings", [], [Node("Version", [("I", 1000)]), props70(
        P("UpAxis", "int", "Integer", "", 1), P("UpAxisSign", "int", "Integer", "", 1),
        P("FrontAxis", "int", "Integer", "", 2), P("FrontAxisSign", "int", "Integer", "", 1),
        P("CoordAxis", "int", "Integer", "", 0), P("CoordAxisSign", "int", "Integer", "", 1),
        P("OriginalUpAxis", "int", "Integer", "", 1), P("OriginalUpAxisSign", "int", "Integer", "", 1),
        P("UnitScaleFactor", "double", "Number", "", 1.0), P("OriginalUnitScaleFactor", "double", "Number", "", 1.0),
        P("AmbientColor", "ColorRGB", "Color", "", 0, 0, 0),
        P("DefaultCamera", "KString", "", "", "Producer Perspective"),
        P("TimeMode", "enum", "", "", mode), P("TimeProtocol", "enum", "", "", 2),
        P("SnapOnFrameMode", "enum", "", "", 0),
        P("TimeSpanStart", "KTime", "Time", "", 0), P("TimeSpanStop", "KTime", "Time", "", stop),
        P("CustomFrameRate", "double", "Number", "", fps))])


def _documents() -> Node:
    return Node("Documents", [], [Node("Count", [("I", 1)]), Node(
        "Document", [("L", 999_999), ("S", "Scene"), ("S", "Scene")], [
            props70(P("SourceObject", "object"), P("ActiveAnimStackName", "KString", "", "", TAKE)),
            Node("RootNode", [("L", 0)])])])


def _definitions(counts: dict[str, int]) -> Node:
    types = [Node("ObjectType", [("S", "GlobalSettings")], [Node("Count", [("I", 1)])])]
    types += [Node("ObjectType", [("S", k)], [Node("Count", [("I", v)])]) for k, v in counts.items()]
    return Node("Definitions", [], [Node("Version", [("I", 100)]),
                                    Node("Count", [("I", 1 + sum(counts.values()))]), *types])


def _takes(stop: int) -> Node:
    return Node("Takes", [], [Node("Current", [("S", TAKE)]), Node("Take", [("S", TAKE)], [
        Node("FileName", [("S", TAKE.replace(" ", "_") + ".tak")]),
        Node("LocalTime", [("L", 0), ("L", stop)]), Node("ReferenceTime", [("L", 0), ("L", stop)])])])


def fbx_bytes(clip: Clip, options: ExportOptions | None = None, with_mesh: bool = True) -> bytes:
    """The FBX file contents for a clip (after range / fps / hands options)."""
    options = options or ExportOptions()
    clip = prepare(clip, options)
    rigs = build_rigs(clip, options.hand_indices(), with_mesh=with_mesh)
    return write_document(build_scene(clip, rigs, with_mesh))


def export_fbx(clip: Clip, path: str | Path, options: ExportOptions | None = None,
               with_mesh: bool = True) -> list[Path]:
    """Write the clip as binary FBX 7.4 (atomically); returns ``[path]``."""
    data = fbx_bytes(clip, options, with_mesh)
    path = Path(path)
    atomic_write(path, lambda f: f.write(data))
    return [path]
