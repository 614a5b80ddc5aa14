"""The ``aimc`` command line and the demo (a smoke run on a slice of the bundled data)."""

import json

import pytest

from aimc import cli
from aimc.experiments import demo


def test_cli_usage_and_unknown_names(capsys):
    assert cli.main(["--help"]) == 0
    assert "aimc demo" in capsys.readouterr().out
    assert cli.main(["reproduce", "nonsense"]) == 2
    assert "unknown study 'nonsense'" in capsys.readouterr().err
    assert cli.main(["frobnicate"]) == 2
    assert cli.main([]) == 2


def test_demo_smoke_run(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--chips", "2", "--epochs", "1", "--limit", "300",
                      "--no-progress"]) == 0
    doc = json.loads((out / "demo.json").read_text())
    assert doc["study"] == "demo" and 0.0 < doc["baseline"]["accuracy"] <= 1.0
    assert {r["method"] for r in doc["rows"]} == {"pcm", "pcm+gdc"}
    assert sorted({r["t_s"] for r in doc["rows"]}) == sorted(demo.TIMES.values())
    assert all(r["n"] == 2 and len(r["values"]) == 2 for r in doc["rows"])
    assert doc["energy"]["energy_per_inference_j"] > 0
    assert (out / "demo.png").stat().st_size > 1000
    assert "[tile]" in (out / "demo_config.toml").read_text()
    assert "pcm+gdc" in capsys.readouterr().out


def test_demo_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        demo.main(["--chips", "0"])
