"""Projects (.handproj): exact round trip, atomic saves, clear errors, autosave and recovery."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from engine.motion.clip import Clip, Prompt
from hand_studio.model import commands as C
from hand_studio.model import project as P
from hand_studio.model.document import Document


@pytest.fixture
def edited(small_clip):
    """A document with two takes, keys, every constraint, a prompt and settings."""
    doc = Document(small_clip)
    h = C.UndoHistory()
    for f in (0, 4, 9):
        h.push(C.AddKeys(doc, frame=f))
    h.push(C.MoveKeys(doc, [("right_hand", 4)], 2))
    gen = np.zeros((10, 4), bool)
    gen[3:7, 1] = True
    h.push(C.AddTake(doc, small_clip.copy(transl=small_clip.transl + 0.01), "wave", generated=gen))
    h.push(C.SetInterval(doc, (3, 7)))
    h.push(C.SetHandLocked(doc, "left"))
    h.push(C.SetWristPath(doc, "right", [(2, (0.1, 0.2, -0.3)), (8, (0.15, 0.25, -0.35))]))
    doc.set_prompt(Prompt("clap", left="", right="then wave"))
    doc.generation = {"model": "diffusion", "seed": 7, "steps": 20}
    doc.frame = 5
    return doc


def assert_same(a: Document, b: Document) -> None:
    assert [t.name for t in a.takes] == [t.name for t in b.takes]
    assert a.current_take_index == b.current_take_index
    for ta, tb in zip(a.takes, b.takes):
        for k in ("transl", "global_orient", "hand_pose", "betas"):
            np.testing.assert_array_equal(getattr(ta.clip, k), getattr(tb.clip, k))
        assert ta.clip.fps == tb.clip.fps and ta.clip.prompt == tb.clip.prompt
        np.testing.assert_array_equal(ta.generated, tb.generated)
    assert a.all_keys() == b.all_keys()
    for t, f in a.all_keys():
        np.testing.assert_array_equal(a.key_values(t, f), b.key_values(t, f))  # bit-exact
    assert a.interval == b.interval and a.locked_hands == b.locked_hands
    assert a.wrist_path("right") == b.wrist_path("right") and a.wrist_path("left") == b.wrist_path("left")
    assert a.prompt == b.prompt and a.generation == b.generation and a.frame == b.frame


def test_round_trip_is_exact(edited, tmp_path):
    path = P.save_project(edited, tmp_path / "walk")
    assert path.name == "walk.handproj" and edited.project_path == path
    assert sorted(p.name for p in path.iterdir()) == ["project.json", "take_0.npz", "take_1.npz"]
    loaded = P.load_project(path)
    assert_same(edited, loaded)
    assert loaded.project_path == path
    P.save_project(loaded, path)  # saving over an existing project swaps it in
    assert_same(edited, P.load_project(path))
    assert [p.name for p in tmp_path.iterdir()] == ["walk.handproj"]  # no temp or backup left


def test_failed_save_leaves_previous_project(edited, tmp_path, monkeypatch):
    path = P.save_project(edited, tmp_path / "walk.handproj")
    saved_frame = edited.frame
    C.UndoHistory().push(C.DeleteKeys(edited, edited.all_keys()))
    edited.frame = 1
    real_save, calls = Clip.save, []

    def failing_save(self, p):
        calls.append(p)
        if len(calls) == 2:  # the second take's file: the disk is full
            raise OSError(28, "No space left on device")
        return real_save(self, p)

    monkeypatch.setattr(Clip, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        P.save_project(edited, path)
    monkeypatch.undo()
    old = P.load_project(path)
    assert old.num_keys == 12 and old.frame == saved_frame
    assert [p.name for p in tmp_path.iterdir()] == ["walk.handproj"]


def test_crash_between_renames_is_repaired(edited, tmp_path):
    path = P.save_project(edited, tmp_path / "walk.handproj")
    os.replace(path, tmp_path / ".walk.handproj.old")  # killed after the first rename
    assert P.load_project(path).num_keys == 12


def test_half_written_project_is_not_read_as_complete(edited, tmp_path):
    path = P.save_project(edited, tmp_path / "walk.handproj")
    (path / "take_1.npz").write_bytes((path / "take_1.npz").read_bytes()[:200])
    with pytest.raises(P.ProjectError, match=r"take_1.npz: takes\[1\].file is incomplete"):
        P.load_project(path)
    (path / "project.json").unlink()
    with pytest.raises(P.ProjectError, match="project.json is missing"):
        P.load_project(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=3), "format_version must be 1; got 3"),
    (lambda m: m["takes"][1].update(name=5), r"takes\[1\].name must be a non-empty string; got 5"),
    (lambda m: m["takes"][0].pop("frames"), r"takes\[0\].frames is missing"),
    (lambda m: m["keys"]["left_hand"][1].update(frame=99), r"keys.left_hand\[1\].frame must be an integer in 0..9; got 99"),
    (lambda m: m["keys"]["right_wrist"][0]["values"].pop(), r"keys.right_wrist\[0\].values must be a list of 6 numbers"),
    (lambda m: m["constraints"].update(interval=[5, 2]), r"constraints.interval\[1\] must be an integer in 5..9; got 2"),
    (lambda m: m["constraints"].update(locked_hands=["middle"]), r"constraints.locked_hands\[0\] must be 'left' or 'right'"),
    (lambda m: m["constraints"]["wrist_paths"]["right"][0].__setitem__(2, "up"),
     r"constraints.wrist_paths.right\[0\]\[2\] must be a finite number; got 'up'"),
    (lambda m: m.update(current_take=2), "current_take must be an integer in 0..1; got 2"),
    (lambda m: m["takes"][0].update(file="../x.npz"), r"takes\[0\].file must be a .npz file name inside"),
])
def test_malformed_project_json_names_the_field(edited, tmp_path, edit, message):
    path = P.save_project(edited, tmp_path / "walk.handproj")
    m = json.loads((path / "project.json").read_text())
    edit(m)
    (path / "project.json").write_text(json.dumps(m))
    with pytest.raises(P.ProjectError, match=message) as err:
        P.load_project(path)
    assert "project.json" in str(err.value)


def test_not_json_and_missing(tmp_path):
    (tmp_path / "bad.handproj").mkdir()
    (tmp_path / "bad.handproj" / "project.json").write_text("{nope")
    with pytest.raises(P.ProjectError, match="not valid JSON"):
        P.load_project(tmp_path / "bad.handproj")
    with pytest.raises(FileNotFoundError, match="project not found"):
        P.load_project(tmp_path / "none.handproj")


def test_autosave_every_interval_when_changed(edited, tmp_path):
    path = P.save_project(edited, tmp_path / "walk.handproj")
    now = [0.0]
    auto = P.Autosaver(edited, interval_s=30, clock=lambda: now[0])
    now[0] = 100.0
    assert auto.tick() is None  # nothing changed
    history = C.UndoHistory()
    history.push(C.SetHandLocked(edited, "left", False))
    now[0] = 110.0
    assert auto.tick() == tmp_path / "walk.handproj.autosave"  # changed and 110 s >= 30 s: due
    assert auto.target.is_dir()
    assert not auto.pending and auto.tick(now=200.0) is None  # saved, nothing new
    history.push(C.SetHandLocked(edited, "right"))
    assert auto.tick(now=120.0) is None  # changed, but only 10 s since the last autosave
    assert auto.tick(now=141.0) == auto.target
    found = P.find_recovery(path)
    assert found == auto.target
    rec = P.recover(found)
    assert rec.locked_hands == {"right"} and rec.project_path == path
    P.save_project(rec, rec.project_path)
    auto.saved()
    assert P.find_recovery(path) is None and not auto.target.exists()


def test_untitled_autosave_goes_to_the_recovery_dir(small_clip, tmp_path):
    doc = Document(small_clip)
    auto = P.Autosaver(doc, interval_s=1, recovery_dir=tmp_path / "rec")
    C.UndoHistory().push(C.AddKeys(doc, frame=3))
    target = auto.save_now()
    assert target.parent == tmp_path / "rec" and target.name.startswith(f"untitled-{os.getpid()}-")
    assert P.find_untitled_recoveries(tmp_path / "rec") == [target]
    rec = P.recover(target)
    assert rec.project_path is None and rec.key_frames("left_hand") == [3]


KILLED_EDIT = """
import os, signal, sys
from hand_studio.model import commands as C, project as P
doc = P.load_project(sys.argv[1])
auto = P.Autosaver(doc, interval_s=1)
C.UndoHistory().push(C.SetInterval(doc, (1, 8)))
auto.save_now()
C.UndoHistory().push(C.SetInterval(doc, (2, 3)))  # after the last autosave: lost
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_during_an_edit_recovers_the_autosave(edited, tmp_path):
    path = P.save_project(edited, tmp_path / "walk.handproj")
    proc = subprocess.run([sys.executable, "-c", KILLED_EDIT, str(path)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert P.load_project(path).interval == (3, 7)  # the project itself is untouched
    rec = P.recover(P.find_recovery(path))
    assert rec.interval == (1, 8) and rec.project_path == path
