"""The viewport's onion skin, wrist motion paths and joint picking.

The projection math is tested without Qt or GL; the rest in a real window under Xvfb
(pytest-xvfb) rendering with Mesa llvmpipe.
"""
from __future__ import annotations

import numpy as np
import pytest

from hand_studio._vispy.onion_visual import cluster_mesh, onion_color, onion_frames
from hand_studio._vispy.picking import pick_nearest, project_points, transform_matrix
from hand_studio._vispy.wrist_path_visual import dashed_segments


# --- pure functions (no Qt, no GL) --------------------------------------------------------
def look_at_matrix(eye, target, fov_deg: float, size: tuple[int, int], near: float = 0.1,
                   far: float = np.inf) -> np.ndarray:
    """A row-vector world -> canvas pixel matrix built by hand (y down, origin top left), with an
    OpenGL depth range from ``near`` to ``far`` (infinite by default)."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    f = (target - eye) / np.linalg.norm(target - eye)
    r = np.cross(f, [0.0, 1.0, 0.0]); r /= np.linalg.norm(r)
    u = np.cross(r, f)
    view = np.eye(4)
    view[:3, 0], view[:3, 1], view[:3, 2] = r, u, -f
    view[3, :3] = -eye @ np.stack([r, u, -f], axis=1)
    w, h = size
    t = 1.0 / np.tan(np.radians(fov_deg) / 2)
    proj = np.zeros((4, 4))  # camera (x, y, z) looking down -z -> clip; w = -z
    proj[0, 0], proj[1, 1], proj[2, 3] = t * h / w, t, -1.0
    if np.isinf(far):
        proj[2, 2], proj[3, 2] = -1.0, -2 * near
    else:
        proj[2, 2], proj[3, 2] = -(far + near) / (far - near), -2 * far * near / (far - near)
    ndc_to_px = np.diag([w / 2, -h / 2, 1.0, 1.0])
    ndc_to_px[3, :2] = (w / 2, h / 2)
    return view @ proj @ ndc_to_px


def test_project_points_matches_a_pinhole_camera():
    m = look_at_matrix(eye=(0, 0, 1), target=(0, 0, 0), fov_deg=90, size=(200, 100))
    pts = np.array([[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 2.0]])
    xy, depth, ok = project_points(pts, m)
    np.testing.assert_allclose(xy[:3], [[100, 50], [125, 50], [100, 25]], atol=1e-9)  # x right, y up
    assert ok.tolist() == [True, True, True, False]  # the last is behind the eye
    far = project_points([[0, 0, -3.0]], m)[1]
    assert far[0] > depth[0]  # farther from the eye = larger depth
    with pytest.raises(ValueError, match="points must have shape"):
        project_points(np.zeros((3, 2)), m)


def test_transform_matrix_reads_a_linear_map():
    m = look_at_matrix(eye=(0.3, 0.4, 1), target=(0, 0.1, 0), fov_deg=40, size=(300, 200))

    class Fake:  # anything with .map of (N, 4) homogeneous rows, as vispy transforms have
        def map(self, coords):
            return np.asarray(coords) @ m

    np.testing.assert_allclose(transform_matrix(Fake()), m)


def test_pick_nearest_radius_ties_and_validity():
    xy = np.array([[10.0, 10.0], [14.0, 10.0], [10.2, 10.0], [50.0, 50.0]])
    assert pick_nearest(xy, (13.5, 10), radius=3) == 1
    assert pick_nearest(xy, (30, 30), radius=8) is None
    assert pick_nearest(xy, (10.1, 10), radius=3) in (0, 2)
    assert pick_nearest(xy, (10.1, 10), radius=3, depth=[0.9, 0.5, 0.1, 0.0]) == 2  # nearer the eye
    assert pick_nearest(xy, (10.1, 10), radius=3, valid=[True, True, False, True]) == 0
    with pytest.raises(ValueError, match="radius"):
        pick_nearest(xy, (0, 0), radius=0)


def test_onion_frames_and_fading():
    assert onion_frames(5, 10, 3, 3, 1) == [(-1, 4), (-2, 3), (-3, 2), (1, 6), (2, 7), (3, 8)]
    assert onion_frames(1, 10, 2, 1, 2) == [(-1, None), (-2, None), (1, 3)]
    alphas = [onion_color(d, 0, 3, 3)[3] for d in (-1, -2, -3)]
    assert alphas[0] > alphas[1] > alphas[2] > 0
    past, future = onion_color(-1, 1, 3, 3), onion_color(1, 1, 3, 3)
    assert past[0] > future[0] and future[1] > past[1]  # red past, green future


def test_cluster_mesh_merges_within_cells_but_not_across_gaps():
    # two unit-square strips 1 mm apart, each two triangles; a 5 mm grid cell holds both
    a = np.array([[0, 0, 0], [0.004, 0, 0], [0.004, 0.004, 0], [0, 0.004, 0]], float) + 0.0005
    b = a + [0, 0, 0.001]
    verts = np.concatenate([a, b])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    keep, f = cluster_mesh(verts, faces, cell=0.005)
    assert len(keep) == 2 and len(f) == 0  # each strip collapses to one vertex, never one for both
    keep, f = cluster_mesh(verts, faces, cell=0.001)
    assert len(keep) == 8 and len(f) == 4  # finer than the mesh: unchanged
    with pytest.raises(ValueError, match="cell"):
        cluster_mesh(verts, faces, cell=0)


def test_dashed_segments_cover_about_the_dash_fraction():
    line = np.array([[0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0]], np.float32)  # 20 cm
    segs = dashed_segments(line, dash=0.01, gap=0.01).reshape(-1, 2, 3)
    lengths = np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1)
    assert len(segs) == 10 and abs(lengths.sum() - 0.1) < 0.01
    assert dashed_segments(line[:1]).shape == (0, 3)


# --- in a window ----------------------------------------------------------------------------

@pytest.fixture
def viewport(qtbot, studio, small_clip):
    import torch

    from hand_studio._qt.viewport import QtViewport
    from hand_studio.model.document import Document

    torch.set_num_threads(1)
    vp = QtViewport(Document(small_clip), studio.hands, size=(640, 480))
    qtbot.addWidget(vp)
    vp.resize(640, 480)
    vp.show()
    qtbot.waitExposed(vp)
    vp.stage.visible = False
    vp.document.frame = 5
    yield vp
    vp.close_visuals()


def mean_diff(a, b) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.mark.gui
def test_onion_skin_draws_ghosts_that_follow_the_playhead(viewport, qtbot):
    vp, onion = viewport, viewport.onion_skin
    plain = vp.render()
    with qtbot.waitSignal(vp.sig_onion_skin_toggled) as sig:
        vp.set_onion_skin_visible(True)
    assert sig.args == [True] and vp.onion_skin_visible
    ghosts = vp.render()
    assert mean_diff(plain, ghosts) > 0.3
    assert onion.frames == [4, 3, 2, 6, 7, 8]
    # the first ghost block holds frame 4's left hand (its coarse mesh), posed as the main mesh is
    keep = onion._lod[0][0]
    v4 = vp.hands_visual.pose(4).vertices[0][keep]
    np.testing.assert_allclose(onion._verts[:len(v4)], v4)
    vp.document.frame = 9  # playing / scrubbing moves the ghosts; past the end they vanish
    assert onion.frames == [8, 7, 6, None, None, None]
    np.testing.assert_allclose(onion._verts[:len(v4)], vp.hands_visual.pose(8).vertices[0][keep])
    vp.document.frame = 5
    assert mean_diff(ghosts, vp.render()) < 0.05  # back where it was: the same picture

    vp.set_onion_skin_range(before=1, after=0, step=2)
    assert onion.frames == [3]
    fewer = vp.render()
    assert mean_diff(fewer, ghosts) > 0.1
    vp.set_onion_skin_style("skeleton")
    bones = vp.render()
    assert mean_diff(bones, fewer) > 0.05
    with pytest.raises(ValueError, match="before must be an integer"):
        vp.set_onion_skin_range(before=-1)
    with pytest.raises(ValueError, match="style must be one of"):
        vp.set_onion_skin_style("dots")

    vp.set_onion_skin_visible(False)
    assert onion.frames == [] and mean_diff(plain, vp.render()) < 0.05


@pytest.mark.gui
def test_indexed_ghost_mesh_draws_what_vispy_draws(viewport):
    """Pins the vispy 0.17 internals behind the ghosts' indexed buffers against vispy's own
    unindexed mesh of the same data, and the per-vertex normals across a light change."""
    from vispy import gloo, scene

    vp, onion = viewport, viewport.onion_skin
    plain = vp.render().astype(int)
    vp.set_onion_skin_visible(True)
    fast = vp.render().astype(int)
    ghost = np.abs(fast - plain).sum(-1) > 6  # (H, W) where ghosts show; they change it by ~40
    assert ghost.sum() > 1000
    onion.set_light_dir(onion._light_dir)  # the shading filter re-reads normals: still per vertex
    assert np.abs(vp.render().astype(int) - fast)[ghost].mean() < 0.1

    class Reference(scene.visuals.Mesh):
        def draw(self):
            super().draw()
            gloo.set_depth_mask(True)

    ref = Reference(parent=onion.node, shading="smooth")
    ref.set_data(vertices=onion._verts.copy(), faces=onion._faces,
                 vertex_colors=onion.mesh.mesh_data.get_vertex_colors())
    ref.set_gl_state("translucent", depth_test=True, depth_mask=False, cull_face="back")
    ref.order = onion.mesh.order
    a, b = ref.shading_filter, onion.mesh.shading_filter
    for name in ("shininess", "specular_light", "ambient_light", "diffuse_light", "light_dir"):
        setattr(a, name, getattr(b, name))
    onion.mesh.visible = False
    slow = vp.render().astype(int)
    ref.parent = None
    onion.mesh.visible = True
    assert np.abs(fast - slow)[ghost].mean() < 5.0  # measured 1.8 (vispy's normals differ a bit)
    assert np.abs(fast - vp.render().astype(int))[ghost].mean() < 0.1


@pytest.mark.gui
def test_wrist_paths_follow_the_clip_keys_and_pins(viewport, qtbot):
    from engine.motion.clip import Clip
    from hand_studio.model import commands as C

    vp, paths = viewport, viewport.wrist_paths
    doc = vp.document
    plain = vp.render()
    with qtbot.waitSignal(vp.sig_wrist_paths_toggled) as sig:
        vp.set_wrist_paths_visible(True)
    assert sig.args == [True]
    T = doc.num_frames
    for h in range(2):
        np.testing.assert_allclose(paths.path(h), doc.clip.joints[:, h, 0], atol=1e-6)
        assert len(paths.paths[h].pos) == T
    np.testing.assert_allclose(paths.current_markers._data["a_position"][:, :3],
                               doc.clip.joints[5, :, 0], atol=1e-6)
    drawn = vp.render()
    assert mean_diff(plain, drawn) > 0.05

    assert not paths.key_markers.visible
    C.AddKeys(doc, tracks=("right_hand",), frame=2).do()
    C.AddKeys(doc, tracks=("left_wrist", "right_wrist"), frame=7).do()
    assert paths.key_markers.visible and len(paths.key_markers._data) == 3  # right@2, both@7

    assert not paths.pinned.visible
    target = doc.clip.joints[:, 1, 0] + [0.0, 0.05, 0.0]
    C.SetWristPath(doc, "right", [(f, target[f]) for f in range(T)]).do()
    assert paths.pinned.visible and len(paths.pinned.pos) > 4
    assert mean_diff(drawn, vp.render()) > 0.02

    longer = Clip.rest(25)  # a new clip: the paths follow it
    doc.set_clip(longer)
    assert paths.path(0).shape == (25, 3) and len(paths.paths[0].pos) == 25
    np.testing.assert_allclose(paths.path(1), longer.joints[:, 1, 0], atol=1e-6)
    vp.set_wrist_paths_visible(False)
    assert not paths.visible and mean_diff(plain, vp.render()) > 0  # just toggles; clip changed


@pytest.mark.gui
def test_picking_a_projected_joint_returns_it(viewport, qtbot):
    from PySide6.QtCore import QPoint, Qt

    vp = viewport
    xy, depth, ok = vp.project_joints()
    assert xy.shape == (2, 21, 2) and ok.all()
    flat = xy.reshape(-1, 2)
    gaps = np.linalg.norm(flat[:, None] - flat[None], axis=2) + np.eye(42) * 1e9
    isolated = [i for i in range(42) if gaps[i].min() > 3.0]  # clearly apart on screen
    assert len(isolated) >= 10
    for i in isolated:
        assert vp.joint_at(flat[i]) == (("left", "right")[i // 21], i % 21)
    assert vp.joint_at((2, 2)) is None  # the corner is empty

    # the CPU projection lands where GL draws: the highlight marker is at the projected pixel
    i = isolated[len(isolated) // 2]
    hand, j = ("left", "right")[i // 21], i % 21
    for m in vp.hands_visual.meshes:  # nothing but the pick marker
        m.visible = False
    vp.set_picked_joint((hand, j))
    img = vp.render()
    x, y = np.round(flat[i]).astype(int)
    assert img[y, x, 1] > 200 and img[y, x, 0] < 120, img[y, x]  # PICK_COLOR green
    for m in vp.hands_visual.meshes:
        m.visible = True

    # a real click picks and highlights; a click on nothing clears; a drag does not pick
    vp.set_picked_joint(None)
    k = isolated[0]
    hk, jk = ("left", "right")[k // 21], k % 21
    px = QPoint(*np.round(flat[k]).astype(int))
    with qtbot.waitSignal(vp.sig_joint_picked) as sig:
        qtbot.mouseClick(vp.canvas.native, Qt.LeftButton, pos=px)
    assert sig.args == [hk, jk] and vp.picked_joint == (hk, jk)
    assert vp.hands_visual.picked_marker.visible
    vp.document.frame = 8  # the highlight follows the joint
    np.testing.assert_allclose(vp.hands_visual.picked_marker._data["a_position"][0, :3],
                               vp.hands_visual.joints[k // 21, jk], atol=1e-6)
    with qtbot.waitSignal(vp.sig_joint_picked) as sig:
        qtbot.mouseClick(vp.canvas.native, Qt.LeftButton, pos=QPoint(3, 3))
    assert sig.args == ["", -1] and vp.picked_joint is None
    assert not vp.hands_visual.picked_marker.visible
    with qtbot.assertNotEmitted(vp.sig_joint_picked):
        qtbot.mousePress(vp.canvas.native, Qt.LeftButton, pos=px)
        qtbot.mouseMove(vp.canvas.native, px + QPoint(40, 10))
        qtbot.mouseRelease(vp.canvas.native, Qt.LeftButton, pos=px + QPoint(40, 10))
    with pytest.raises(ValueError, match="picked hand"):
        vp.set_picked_joint(("middle", 3))


@pytest.mark.gui
def test_compare_clip_draws_another_take_at_the_playhead(viewport, small_clip):
    vp = viewport
    plain = vp.render()
    other = small_clip.copy(transl=small_clip.transl[:6] + np.float32([0.0, 0.0, 0.06]),
                            global_orient=small_clip.global_orient[:6], hand_pose=small_clip.hand_pose[:6])
    vp.set_compare_clip(other)
    assert vp.compare_clip is other
    ghost = vp.render()
    assert mean_diff(plain, ghost) > 0.3
    g = vp.compare_ghost
    n0 = g._nv[0]
    np.testing.assert_allclose(g._verts[:n0], g.cache.poses([5])[0].vertices[0][:n0])
    vp.document.frame = 8  # past the other take's end: its last frame
    np.testing.assert_allclose(g._verts[:n0], g.cache.poses([5])[0].vertices[0][:n0])
    vp.document.frame = 5
    assert mean_diff(ghost, vp.render()) < 0.05
    vp.set_compare_clip(None)
    assert vp.compare_clip is None and mean_diff(plain, vp.render()) < 0.05


@pytest.mark.gui
def test_compare_clip_at_another_rate_lines_up_in_time(viewport, small_clip):
    """A compared take at half the document's rate shows the same moment, not the same frame number."""
    from hand_studio._vispy.onion_visual import ghost_frame

    assert ghost_frame(8, 30.0, small_clip) == 8
    half = small_clip.copy(fps=15.0)
    assert [ghost_frame(f, 30.0, half) for f in (0, 1, 2, 8, 19, 40)] == [0, 1, 1, 4, 9, 9]
    vp = viewport
    vp.set_compare_clip(half)
    g = vp.compare_ghost
    n0 = g._nv[0]
    vp.document.frame = 8  # 0.27 s: the 15 fps take's frame 4
    np.testing.assert_allclose(g._verts[:n0], g.cache.poses([4])[0].vertices[0][:n0])


@pytest.mark.gui
def test_overlays_on_a_one_frame_clip(viewport):
    from engine.motion.clip import Clip

    vp = viewport
    vp.set_onion_skin_visible(True)
    vp.set_wrist_paths_visible(True)
    vp.document.set_clip(Clip.rest(1))
    assert vp.onion_skin.frames == [None] * 6 and not vp.onion_skin.mesh.visible
    assert vp.wrist_paths.path(0).shape == (1, 3)
    assert vp.render().shape[:2] == (480, 640)
    assert vp.joint_at(vp.project_joints()[0][1, 0]) == ("right", 0)


@pytest.mark.gui
def test_close_disconnects_overlays(viewport):
    doc = viewport.document
    viewport.set_onion_skin_visible(True)
    viewport.set_wrist_paths_visible(True)
    viewport.close_visuals()
    for name in ("clip", "frame", "keys", "constraints"):
        assert getattr(doc.events, name).callbacks == (), name
