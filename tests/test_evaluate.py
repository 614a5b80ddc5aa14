"""``aimc evaluate --config exp.toml``: validation, the run, resume, the CLI's errors."""

import json

import pytest
import torch

from aimc import cli, models
from aimc.config import tomllib
from aimc.experiments import evaluate


def _checkpoint(tmp_path, name="lenet5"):
    torch.manual_seed(0)
    path = tmp_path / f"{name}.pt"
    torch.save(models.MODELS[name][0]().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """LeNet-5 after one pass over 3,000 bundled digits (normalised as aimc's MNIST
    studies, the evaluation's default): about 80% on the test digits."""
    from aimc.data import CifarLoader, load_mnist_small

    x, y, _, _ = load_mnist_small()
    torch.manual_seed(0)
    net = models.lenet5()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for xb, yb in CifarLoader(x[:3000], y[:3000], 64, shuffle=True, seed=0,
                              mean=(0.1307,), std=(0.3081,)):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xb), yb).backward()
        opt.step()
    path = tmp_path_factory.mktemp("trained") / "lenet5.pt"
    torch.save(net.state_dict(), path)
    return path


def _write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_settings_are_validated_and_errors_name_the_field():
    ok = {"model": "lenet5", "checkpoint": "w.pt"}
    settings, cfg = evaluate.parse(ok)
    assert settings.times == [1.0, 3600.0, 86400.0, 2592000.0, 31536000.0]
    assert cfg.tile.out_bound == 10.0 and cfg.device.name == "pcm"
    cases = [
        ({"modle": "x"}, r"unknown key\(s\) \['modle'\]"),
        ({"model": "vgg"}, "EvaluateConfig.model: unknown network 'vgg'"),
        ({"checkpoint": ""}, "EvaluateConfig.checkpoint"),
        ({"dataset": "mnist"}, "EvaluateConfig.data_dir"),
        ({"dataset": "imagenet"}, "EvaluateConfig.dataset"),
        ({"times": [1.0, 3600.0, 60.0]}, "EvaluateConfig.times"),
        ({"times": []}, "EvaluateConfig.times"),
        ({"compensation": ["gdc", "gdc+magic"]}, "EvaluateConfig.compensation: unknown"),
        ({"chips": 0}, "EvaluateConfig.chips"),
        ({"mean": [0.5], "std": []}, "EvaluateConfig.std"),
        ({"calibrate_adc": "yes"}, "EvaluateConfig.calibrate_adc"),
        ({"preset": "rram"}, "EvaluateConfig.preset"),
        ({"tile": {"out_bnd": 5.0}}, r"tile: unknown field\(s\) \['out_bnd'\]"),
        ({"tile": {"adc_bits": 99}}, "TileConfig.adc_bits"),
        ({"tile": 3}, r"\[tile\] must be a table"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            evaluate.parse({**ok, **change})


def test_tables_override_the_preset_field_by_field():
    _, cfg = evaluate.parse({"model": "mlp", "checkpoint": "w.pt",
                             "tile": {"out_bound": 20.0},
                             "mapping": {"pairs": 2},
                             "device": {"prog_noise_scale": 0.5}})
    assert (cfg.tile.out_bound, cfg.tile.adc_bits, cfg.tile.out_noise) == (20.0, 8, 0.04)
    assert cfg.mapping.pairs == 2 and cfg.device.prog_noise_scale == 0.5
    _, cfg = evaluate.parse({"model": "mlp", "checkpoint": "w.pt", "preset": "ideal",
                             "device": {"name": "pcm"}})
    assert cfg.device.name == "pcm" and cfg.tile.adc_bits == 0  # device swapped, tile kept


def test_on_an_ideal_chip_every_time_scores_the_digital_accuracy(tmp_path, trained):
    # The ideal preset has no device noise, no drift and exact converters: the analog
    # network must score exactly its digital accuracy at every time and with every
    # compensation.
    ckpt = trained
    path = _write(tmp_path, f'model = "lenet5"\ncheckpoint = "{ckpt}"\npreset = "ideal"\n'
                            'test_images = 300\ncalib_images = 200\nchips = 2\n'
                            'times = [1.0, 86400.0]\ncompensation = ["none", "gdc"]\n'
                            'name = "ideal"\n')
    assert cli.main(["evaluate", "--config", str(path), "--out", str(tmp_path / "o"),
                     "--no-progress", "--threads", "1"]) == 0
    doc = json.loads((tmp_path / "o" / "ideal.json").read_text())
    digital = doc["baseline"]["accuracy"]
    timed = [r for r in doc["rows"] if "t_s" in r]
    assert {r["method"] for r in timed} == {"ideal", "ideal+gdc"}  # named after the device
    assert len(timed) == 4 and all(r["n"] == 2 for r in timed)
    for r in timed:
        assert r["mean"] == pytest.approx(digital, abs=1e-9) and r["std"] == 0.0


def test_a_pcm_run_writes_the_convention_and_resumes_identically(tmp_path, trained):
    ckpt = trained
    path = _write(tmp_path, f'model = "lenet5"\ncheckpoint = "{ckpt}"\n'
                            'test_images = 200\ncalib_images = 200\nchips = 2\n'
                            'times = [1.0, 86400.0, 31536000.0]\n'
                            'compensation = ["none", "gdc"]\ncalibrate_adc = true\n'
                            'digital = ["0"]\nname = "lenet"\n[tile]\nout_bound = 12.0\n')
    out = tmp_path / "o"
    argv = ["--config", str(path), "--out", str(out), "--no-progress", "--threads", "1"]
    assert evaluate.main(argv) == 0
    doc = json.loads((out / "lenet.json").read_text())
    assert doc["study"] == "evaluate" and doc["command"].startswith("aimc evaluate --config")
    assert doc["baseline"]["name"] == "digital" and "MNIST" in doc["dataset"]
    assert doc["config"]["tile"]["out_bound"] == 12.0 and doc["config"]["digital"] == ["0"]
    assert doc["config"]["mean"] == [0.1307]  # the dataset's default, written out
    assert doc["energy"]["energy_per_inference_j"] > 0
    methods = {(r["method"], r["t_s"]) for r in doc["rows"] if "t_s" in r}
    assert methods == {(m, t) for m in ("pcm", "pcm+gdc") for t in (1.0, 86400.0, 31536000.0)}
    assert (out / "lenet.png").stat().st_size > 0
    # Drift without compensation shrinks every output and costs accuracy within a year;
    # GDC keeps the chip within a few points of its digital accuracy (0.5-0.9 here).
    by = {(r["method"], r["t_s"]): r["mean"] for r in doc["rows"] if "t_s" in r}
    digital = doc["baseline"]["accuracy"]
    assert digital > 0.5
    assert by["pcm", 31536000.0] < by["pcm", 1.0] - 0.1
    assert by["pcm+gdc", 31536000.0] > digital - 0.08
    # The resolved file is a valid evaluation file of the same run: it resumes it and
    # every accuracy is reused.
    resolved = out / "lenet_config.toml"
    again, cfg = evaluate.load(resolved)
    assert again.calibrate_adc and cfg.tile.out_bound == 12.0
    assert evaluate.main(["--config", str(resolved), *argv[2:]]) == 0
    doc2 = json.loads((out / "lenet.json").read_text())
    assert doc2["rows"] == doc["rows"]
    # Another setting in the same folder is refused rather than mixed in.
    path.write_text(path.read_text().replace("chips = 2", "chips = 3"))
    with pytest.raises(SystemExit, match=r"other settings \(\['chips'\]\)"):
        evaluate.main(argv)


def test_the_cli_explains_bad_files_and_checkpoints(tmp_path, capsys):
    def fails(text, message):
        path = _write(tmp_path, text)
        with pytest.raises(SystemExit, match=message):
            evaluate.main(["--config", str(path), "--out", str(tmp_path / "o"),
                           "--no-progress"])

    with pytest.raises(SystemExit, match="no config file"):
        evaluate.main(["--config", str(tmp_path / "none.toml")])
    fails("model = ", "not valid TOML")
    fails('model = "lenet5"\nchips = 0\ncheckpoint = "x.pt"\n', "exp.toml: EvaluateConfig.chips")
    fails(f'model = "lenet5"\ncheckpoint = "{tmp_path / "missing.pt"}"\n', "no checkpoint at")
    mlp = _checkpoint(tmp_path, "mlp")
    fails(f'model = "lenet5"\ncheckpoint = "{mlp}"\n', "does not fit lenet5")
    lenet = _checkpoint(tmp_path)
    fails(f'model = "lenet5"\ncheckpoint = "{lenet}"\ndigital = ["conv9"]\n',
          r"no module named \['conv9'\]")
    fails(f'model = "lenet5"\ncheckpoint = "{lenet}"\ndataset = "mnist"\n'
          f'data_dir = "{tmp_path / "nowhere"}"\n', "aimc evaluate: ")
    assert not (tmp_path / "o").exists()  # no failed start leaves a state behind


def test_the_example_file_is_valid(capsys):
    assert evaluate.main(["--example"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    settings, cfg = evaluate.parse(data)
    assert settings.model == "lenet5" and cfg.tile.out_bound == 10.0
