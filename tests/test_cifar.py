"""CIFAR-10 python-layout loader, augmentation and batching."""

import os
import pickle

import numpy as np
import pytest
import torch

from aimc.data import IMAGENET_MEAN, IMAGENET_STD, CifarLoader, load_cifar10
from aimc.data.cifar import CIFAR10_FILES, random_crop_flip


def _write_fake(root, n_per_batch=6, seed=0):
    """The standard layout, pickled the way Python 3 writes such dicts (bytes keys)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    parts = {}
    for split, names in CIFAR10_FILES.items():
        for name in names:
            data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, n_per_batch).tolist()
            with open(folder / name, "wb") as fh:
                pickle.dump({b"batch_label": name.encode(), b"labels": labels,
                             b"data": data}, fh, protocol=2)
            parts.setdefault(split, []).append((data, labels))
    return folder, parts


def test_load_cifar10_reads_the_standard_layout(tmp_path):
    _, parts = _write_fake(tmp_path)
    for split in ("train", "test"):
        x, y = load_cifar10(tmp_path, split)
        data = np.concatenate([d for d, _ in parts[split]])
        labels = [v for _, lab in parts[split] for v in lab]
        assert x.shape == (len(labels), 3, 32, 32) and x.dtype == torch.uint8
        assert y.dtype == torch.int64 and y.tolist() == labels
        # row-major 3072 = 3 planes of 32 x 32 (R, G, B)
        assert torch.equal(x[1, 2, 3, 4], torch.tensor(data[1, 2 * 1024 + 3 * 32 + 4]))
    # the folder itself works too
    x2, _ = load_cifar10(tmp_path / "cifar-10-batches-py", "test")
    assert x2.shape[0] == 6


def test_missing_or_incomplete_directory_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*cifar-10-batches-py"):
        load_cifar10(tmp_path / "nope")
    folder, _ = _write_fake(tmp_path)
    os.remove(folder / "data_batch_3")
    with pytest.raises(FileNotFoundError, match=r"lacks \['data_batch_3'\]"):
        load_cifar10(tmp_path, "train")
    load_cifar10(tmp_path, "test")  # the test split is complete
    with pytest.raises(ValueError, match="split"):
        load_cifar10(tmp_path, "val")


def test_pickles_may_not_run_code(tmp_path):
    folder, _ = _write_fake(tmp_path)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": os.system, b"labels": []}, fh, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="may not refer to"):
        load_cifar10(tmp_path, "test")


def test_random_crop_flip_is_a_crop_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=g)
    out = random_crop_flip(x, torch.Generator().manual_seed(1), pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    seen = set()
    for i in range(len(x)):
        hits = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (0, 1)
                if torch.equal(out[i], (lambda c: c.flip(2) if f else c)(
                    padded[i, :, dy:dy + 8, dx:dx + 8]))]
        assert hits, i
        seen.update(hits)
    assert {f for _, _, f in seen} == {0, 1}
    assert len({(dy, dx) for dy, dx, _ in seen}) > 12  # offsets spread over the 25


def test_flip_probability_is_one_half():
    # a left-right asymmetric image: flipped iff the left column is the dark one
    x = torch.zeros(4000, 1, 4, 4, dtype=torch.uint8)
    x[..., 0] = 255
    out = random_crop_flip(x, torch.Generator().manual_seed(2), pad=0)
    flipped = (out[:, 0, 0, 3] == 255).float().mean()
    assert abs(float(flipped) - 0.5) < 0.03  # std 0.008


def test_loader_normalises_and_orders_by_epoch():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8, generator=g)
    y = torch.arange(50)
    plain = CifarLoader(x, y, 16)
    assert len(plain) == 4
    xb, yb = next(iter(plain))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(xb, (x[:16].float() / 255 - mean) / std)
    assert yb.tolist() == list(range(16))
    shuf = CifarLoader(x, y, 16, shuffle=True, drop_last=True, seed=1)
    assert len(shuf) == 3
    order0 = torch.cat([b for _, b in shuf])
    assert torch.equal(order0, torch.cat([b for _, b in shuf]))  # same epoch: same order
    shuf.set_epoch(1)
    order1 = torch.cat([b for _, b in shuf])
    assert not torch.equal(order0, order1) and len(set(order1.tolist())) == 48
    with pytest.raises(ValueError, match="mean and std"):
        CifarLoader(x, y, 16, mean=(0.5,), std=(0.2,))


def test_study_names_a_missing_data_dir_and_refuses_other_settings(tmp_path, capsys):
    from aimc import cli
    from aimc.experiments import joshi2020

    with pytest.raises(SystemExit, match="nope does not exist.*build.py"):
        cli.main(["reproduce", "joshi2020", "--data-dir", str(tmp_path / "nope"),
                  "--out", str(tmp_path / "out"), "--quick"])
    # the work folder now records the quick settings: a full run there is refused
    with pytest.raises(SystemExit, match="other settings.*chips"):
        joshi2020.main(["--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="--pairs: MappingConfig.pairs"):
        joshi2020.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "o2"),
                        "--pairs", "0"])
    with pytest.raises(SystemExit, match="--sam-rho: HWAConfig.sam_rho"):
        joshi2020.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "o3"),
                        "--sam-rho", "-1"])


def test_study_table_and_plot_from_rows(tmp_path):
    from aimc.experiments import joshi2020

    rows = [{"method": m, "metric": "accuracy", "t_s": t, "mean": acc - 0.01 * i, "std": 0.002,
             "n": 5}
            for m, acc in (("pcm+gdc", 0.88), ("pcm+adabs", 0.87))
            for i, t in enumerate(joshi2020.TIMES.values())]
    table = joshi2020.markdown_table(rows, fp32=0.89)
    line = next(s for s in table.splitlines() if s.startswith("| pcm+gdc |"))
    # 1 day is the third time: 0.88 - 0.02 = 0.86, a drop of 3.00 points from 0.89
    assert line.endswith("| 3.00 |") and "| 5 |" in line
    joshi2020.plot(rows, 0.89, tmp_path / "j.png", "test")
    assert (tmp_path / "j.png").stat().st_size > 1000
    assert not list(tmp_path.glob(".*tmp*"))


def test_study_adabs_images_are_augmented_unless_clean(tmp_path):
    from aimc.experiments import joshi2020

    def study(*flags):
        return joshi2020._resolve(joshi2020._parser().parse_args(
            ["--data-dir", str(tmp_path), "--quick", *flags]))

    assert study()["adabs_augment"] is True
    assert study("--adabs-augment") == study()  # older commands resume the same run
    assert "adabs_augment" not in study("--adabs-clean")
    with pytest.raises(SystemExit, match="exclude each other"):
        study("--adabs-clean", "--adabs-augment")


def test_study_trains_the_fp32_baseline_with_the_same_sam_unless_told(tmp_path):
    from aimc.experiments import joshi2020

    def parsed(*flags):
        args = joshi2020._parser().parse_args(["--data-dir", str(tmp_path), "--quick", *flags])
        return joshi2020._resolve(args), joshi2020.fp32_config(args)

    study, fp32 = parsed()
    assert "sam_rho" not in study and "sam_scope" not in study and fp32.sam_rho == 0
    study, fp32 = parsed("--sam-rho", "2")
    assert study["sam_scope"] == "both" and fp32.sam_rho == 2
    assert (fp32.noise, fp32.clip_sigma) == ("none", 0)
    study, fp32 = parsed("--sam-rho", "2", "--sam-scope", "hwa")
    assert study["sam_scope"] == "hwa" and fp32.sam_rho == 0
    assert parsed("--digital", "linear", "layer1")[0]["digital"] == ["layer1", "linear"]
    with pytest.raises(SystemExit, match="--digital: no module named \\['layer9'\\]"):
        parsed("--digital", "layer9")


def _tiny_study(tmp_path, out):
    """Arguments of the Joshi study on 30 fake training and 12 test images, from a random
    ResNet-32 as the "pretrained" network."""
    from aimc import models

    _write_fake(tmp_path, n_per_batch=6)
    torch.manual_seed(0)
    ckpt = tmp_path / "r32.th"
    torch.save(models.resnet32_cifar().state_dict(), ckpt)
    return ["--data-dir", str(tmp_path), "--out", str(out), "--pretrained", str(ckpt),
            "--quick", "--test-images", "12", "--calib-images", "10", "--batch", "10",
            "--no-progress", "--threads", "1"]


@pytest.mark.parametrize("extra", [[], ["--distill", "0.5", "--sam-rho", "0.5"],
                                   ["--pairs", "2", "--pair-programming", "closed",
                                    "--input-range", "dynamic"],
                                   ["--digital", "layer1", "conv1", "--calibrate-adc"]])
def test_study_runs_end_to_end_on_tiny_data_and_resumes(tmp_path, extra):
    # The whole study on 30 fake training and 12 test images, a random ResNet-32 as the
    # "pretrained" network, with the default pcm-drift noise (and once with distillation
    # from the FP32 network and sharpness-aware steps, once on chips with two pairs per
    # weight and per-vector input ranges, once mixed with calibrated ADC ranges); then the
    # same command again must reuse every saved number and rewrite identical results.
    import json

    from aimc.experiments import joshi2020

    out = tmp_path / "out"
    argv = [*_tiny_study(tmp_path, out), "--chips", "1", *extra]
    assert joshi2020.main(argv) == 0
    first = json.loads((out / "joshi2020.json").read_text())
    assert first["config"]["hwa"]["noise"] == "pcm-drift"
    assert first["config"]["hwa"]["distill"] == (0.5 if "--distill" in extra else 0.0)
    assert first["config"]["hwa"]["sam_rho"] == (0.5 if "--sam-rho" in extra else 0.0)
    assert first["config"]["fp32"]["sam_rho"] == first["config"]["hwa"]["sam_rho"]
    assert first["config"]["fp32"]["noise"] == "none"
    assert first["config"]["analog"]["mapping"]["pairs"] == (2 if "--pairs" in extra else 1)
    assert first["config"]["analog"]["tile"]["input_range"] == (
        "dynamic" if "--input-range" in extra else "static")
    assert ("input_range" in first["config"]["study"]) == ("--input-range" in extra)
    assert first["config"]["study"].get("digital") == (
        ["conv1", "layer1"] if "--digital" in extra else None)
    assert first["config"]["study"].get("calibrate_adc", False) == (
        "--calibrate-adc" in extra)
    assert ("main" in first["energy"]) == ("--digital" in extra)  # not "all-analog" then
    main_e = first["energy"]["main" if "--digital" in extra else "all-analog"]
    cal = first["energy"]["adabs-calibration"]
    assert cal["images"] == first["config"]["study"]["calib_images"]
    assert cal["energy_j"] == pytest.approx(cal["images"] * main_e["energy_per_inference_j"])
    methods = {r["method"] for r in first["rows"] if "t_s" in r}
    assert {"pcm+gdc", "pcm+adabs", "pcm+gdc+adabs", "fp32-trained+pcm+gdc",
            "first-last-digital+pcm+gdc+adabs"} <= methods
    assert len([r for r in first["rows"] if r["method"] == "pcm+gdc"]) == 5  # 5 times
    state = json.loads((out / "work" / "state.json").read_text())
    assert joshi2020.main(argv) == 0
    again = json.loads((out / "joshi2020.json").read_text())
    assert again["rows"] == first["rows"]
    assert again["energy"] == first["energy"]  # costed on chip 0, resumed or not
    assert json.loads((out / "work" / "state.json").read_text())["values"] == state["values"]


def test_study_stops_after_a_fine_tune_and_resumes_from_it(tmp_path, capsys):
    # --stop-after fp32 leaves the FP32 network and its accuracy and nothing else; a later
    # --stop-after hwa reuses them (no second FP32 fine-tune) and adds the HWA network.
    import json

    from aimc.experiments import joshi2020

    out = tmp_path / "out"
    argv = _tiny_study(tmp_path, out)
    assert joshi2020.main([*argv, "--stop-after", "fp32"]) == 0
    assert "stopped after the FP32 fine-tune" in capsys.readouterr().out
    work = out / "work"
    fp32_bytes = (work / "fp32.ckpt.pt").read_bytes()
    state = json.loads((work / "state.json").read_text())
    assert 0.0 <= state["fp32_accuracy"] <= 1.0
    assert "hwa_digital_accuracy" not in state
    assert not (work / "hwa.ckpt.pt").exists() and not (out / "joshi2020.json").exists()
    assert joshi2020.main([*argv, "--stop-after", "hwa"]) == 0
    assert (work / "fp32.ckpt.pt").read_bytes() == fp32_bytes
    again = json.loads((work / "state.json").read_text())
    assert again["fp32_accuracy"] == state["fp32_accuracy"]
    assert "hwa_digital_accuracy" in again and (work / "hwa.ckpt.pt").is_file()
    assert (out / "joshi2020_hwa_resnet32.pt").is_file()
    assert not (out / "joshi2020.json").exists()
    with pytest.raises(SystemExit):
        joshi2020.main([*argv, "--stop-after", "eval"])
