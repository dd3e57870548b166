"""The model registry (models.json in the user's data folder) and `hand-studio models`."""
from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.registry import Registry, RegistryError, active_model_path, data_dir


def _model(folder, kind="diffusion"):
    for sub in ([""] if kind == "diffusion" else ["shift", "lm"]):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / "config.json").write_text("{}")
    return folder


def test_register_use_remove(tmp_path):
    reg = Registry(tmp_path / "data")
    assert reg.list() == [] and reg.active("diffusion") is None and active_model_path("diffusion", reg.root) is None
    a = reg.register("studio-a", "diffusion", _model(tmp_path / "a"), base="shipped", data="/mocap",
                     metrics={"fid": 1.5})
    reg.register("clutch-1", "clutch", _model(tmp_path / "c", "clutch"))
    assert [e.name for e in reg.list()] == ["studio-a", "clutch-1"] and [e.name for e in reg.list("clutch")] == ["clutch-1"]
    assert a.date and a.metrics == {"fid": 1.5} and a.path == str(tmp_path / "a")
    reg.use("studio-a")
    assert reg.active("diffusion").name == "studio-a" and reg.active("clutch") is None
    assert active_model_path("diffusion", reg.root) == tmp_path / "a"
    doc = json.loads((reg.root / "models.json").read_text())
    assert doc["active"] == {"diffusion": "studio-a"} and set(doc["models"]) == {"studio-a", "clutch-1"}
    assert not list(reg.root.glob(".models.*.json"))  # no temp file left behind
    reg.remove("studio-a")
    assert reg.active("diffusion") is None and (tmp_path / "a" / "config.json").is_file()  # folder kept
    reg.use("clutch-1")
    reg.use_shipped("clutch")
    assert reg.active("clutch") is None


def test_errors(tmp_path):
    reg = Registry(tmp_path / "data")
    with pytest.raises(RegistryError, match="config.json not found"):
        reg.register("x", "diffusion", tmp_path / "nothing")
    with pytest.raises(RegistryError, match="kind"):
        reg.register("x", "gan", _model(tmp_path / "m"))
    with pytest.raises(RegistryError, match="name"):
        reg.register("../evil", "diffusion", _model(tmp_path / "m"))
    reg.register("x", "diffusion", _model(tmp_path / "m"))
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("x", "diffusion", _model(tmp_path / "m"))
    with pytest.raises(RegistryError, match="no registered model 'y'"):
        reg.use("y")
    reg.use("x")
    (tmp_path / "m" / "config.json").unlink()  # the active model's folder went away
    with pytest.raises(FileNotFoundError, match="active diffusion model 'x'"):
        active_model_path("diffusion", reg.root)
    (reg.root / "models.json").write_text("{not json")
    with pytest.raises(RegistryError, match="models.json: not readable JSON"):
        reg.list()


def test_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HAND_STUDIO_DATA", str(tmp_path / "hs"))
    assert data_dir() == tmp_path / "hs" and Registry().path == tmp_path / "hs" / "models.json"
    monkeypatch.delenv("HAND_STUDIO_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "hand-studio"


def test_cli(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HAND_STUDIO_DATA", str(tmp_path / "hs"))
    _model(tmp_path / "m")
    (tmp_path / "metrics.json").write_text(json.dumps({"r_precision_top3": 0.5}))
    assert main(["models", "add", "mine", str(tmp_path / "m"), "--base", "shipped",
                 "--metrics", str(tmp_path / "metrics.json")]) == 0
    assert main(["models", "use", "mine"]) == 0
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("* mine") and "diffusion" in out
    assert main(["models", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["active"] == {"diffusion": "mine"} and doc["models"][0]["metrics"] == {"r_precision_top3": 0.5}
    assert main(["models", "use", "other"]) == 2
    assert "no registered model 'other'" in capsys.readouterr().err
    assert main(["models", "remove", "mine"]) == 0
    assert Registry().list() == []
