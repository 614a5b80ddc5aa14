"""Computational memory: temporal correlation detection (Sebastian et al. 2017)."""

import dataclasses
import math

import pytest
import torch

from aimc.compute import (
    CorrelationConfig,
    detect_correlations,
    intermeans_threshold,
    precision_recall,
    sample_processes,
    valley_threshold,
)


def test_processes_have_rate_p_and_pairwise_correlation_c():
    n, m, c, p, steps = 400, 100, 0.2, 0.3, 6000
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(steps, generator=gen) < p
    xs = torch.stack([sample_processes(torch.rand(n, generator=gen), bool(ref[k]), m, c, p)
                      for k in range(steps)]).float()
    rate = xs.mean(0)
    # rate: binomial standard error sqrt(p(1-p)/steps) = 0.006 per process; 5 sigma
    assert (rate - p).abs().max() < 5 * math.sqrt(p * (1 - p) / steps)
    corr = torch.corrcoef(xs.t())
    off = ~torch.eye(n, dtype=torch.bool)
    within = corr[:m, :m][off[:m, :m]].mean()
    across = corr[:m, m:].mean()
    outside = corr[m:, m:][off[m:, m:]].mean()
    # each pair estimate has std about 1/sqrt(steps) = 0.013; means over >= 9900 pairs
    assert float(within) == pytest.approx(c, abs=0.02)
    assert abs(float(across)) < 0.01 and abs(float(outside)) < 0.01


def test_intermeans_threshold_and_precision_recall():
    g = torch.cat([torch.full((900,), 1.0), torch.full((100,), 9.0)])
    t = intermeans_threshold(g)
    # intermeans of two point masses at 1 and 9: halfway between the class means
    assert t == pytest.approx(5.0, abs=1e-6)
    truth = torch.arange(1000) >= 900
    assert precision_recall(g > t, truth) == (1.0, 1.0)
    det = torch.zeros(1000, dtype=torch.bool)
    det[850:950] = True  # 50 right, 50 wrong
    assert precision_recall(det, truth) == (0.5, 0.5)


def test_valley_threshold_ignores_heavy_tail_of_large_group():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # Gamma sampling takes no generator
    big = torch.distributions.Gamma(4.0, 0.8).sample((200_000,))  # mean 5, long tail
    small = 24.0 + 1.0 * torch.randn(2000, generator=gen)
    g = torch.cat([big, small])
    truth = torch.arange(g.numel()) >= big.numel()
    t = valley_threshold(g)
    precision, recall = precision_recall(g > t, truth)
    assert precision > 0.95 and recall > 0.95
    # a two-means split is dragged into the tail on the same data
    assert intermeans_threshold(g) < t


def test_small_correlation_experiment_separates_the_groups():
    # 8,000 steps: with the Nandakumar 2018 step model the groups are well apart by then
    # (at 6,000 the read noise on the still small conductances costs 10% of the recall)
    cfg = CorrelationConfig(processes=20_000, correlated=200, c=0.1, rate=0.01, steps=8000,
                            theta=3.0, checkpoints=4, seed=0)
    res = detect_correlations(cfg)
    final = res.history[-1]
    assert final["precision"] > 0.7 and final["recall"] > 0.9
    assert final["top_m_precision"] > 0.9
    # the correlated devices crystallised more: their mean conductance is higher
    assert float(res.g[res.truth].mean()) > 3 * float(res.g[~res.truth].mean())
    # the ranking improves over time (the devices integrate evidence)
    tops = [h["top_m_precision"] for h in res.history[:-1]]
    assert tops[-1] > tops[0] + 0.1
    assert res.pulses > 0
    # amplitudes are in (0, 1]: the pulses' charge is positive and at most their number
    assert 0 < res.pulse_charge <= res.pulses


def test_correlation_study_writes_its_energy(tmp_path):
    import json

    from aimc.experiments.correlation import main

    assert main(["--processes", "2000", "--correlated", "40", "--steps", "600",
                 "--no-progress", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "correlation.json").read_text())
    e = doc["energy"]["pcm90nm_joshi2020"]
    assert e["set_pulses"] == pytest.approx(doc["pulse_charge"] * 27e-12)
    assert e["momentum"] == pytest.approx(600 * 2000 * e_elem_90nm())
    row = next(r for r in doc["rows"] if r["metric"] == "energy_j")
    assert row["mean"] == pytest.approx(e["total_j"])


def test_correlation_run_resumes_bit_for_bit():
    import copy

    cfg = CorrelationConfig(processes=3000, correlated=60, c=0.1, steps=900, warmup=50,
                            checkpoints=3, seed=4)
    full = detect_correlations(cfg)
    states: list[dict] = []
    detect_correlations(cfg, save=lambda s: states.append(copy.deepcopy(s)), save_every=250)
    assert [s["step"] for s in states] == [250, 500, 750]
    again = detect_correlations(cfg, resume=states[1])
    assert torch.equal(again.g, full.g) and again.history == full.history
    assert (again.pulses, again.pulse_charge) == (full.pulses, full.pulse_charge)
    with pytest.raises(ValueError, match="another configuration"):
        detect_correlations(dataclasses.replace(cfg, seed=5), resume=states[1])


def test_correlation_study_resumes_from_its_checkpoint(tmp_path, capsys):
    import copy
    import json

    from aimc.experiments.correlation import main

    args = ["--processes", "2000", "--correlated", "40", "--steps", "600", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    # an interrupted run: the state its checkpoint would hold at step 400
    out = tmp_path / "resumed"
    out.mkdir()
    cfg = CorrelationConfig(processes=2000, correlated=40, steps=600)
    saved: list[dict] = []
    detect_correlations(cfg, save=lambda s: saved.append(copy.deepcopy(
        {**s, "started": "2026-01-01T00:00:00Z", "elapsed_s": 1.5})) if s["step"] == 400
        else None, save_every=200)
    torch.save(saved[0], out / "correlation.ckpt.pt")
    assert main([*args, "--out", str(out)]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert not (out / "correlation.ckpt.pt").exists()
    a, b = (json.loads((d / "correlation.json").read_text()) for d in (tmp_path / "full", out))
    assert a["history"] == b["history"] and a["set_pulses"] == b["set_pulses"]
    assert b["started"] == "2026-01-01T00:00:00Z" and b["runtime_s"] > 1.5
    # a checkpoint of other settings is refused, not silently mixed in
    torch.save(saved[0], out / "correlation.ckpt.pt")
    with pytest.raises(SystemExit, match="other settings"):
        main([*args, "--seed", "1", "--out", str(out)])


def e_elem_90nm():
    from aimc.energy import pcm90nm_joshi2020

    return pcm90nm_joshi2020().e_elem


def test_correlation_config_validation():
    with pytest.raises(ValueError, match="correlated"):
        CorrelationConfig(processes=100, correlated=100)
    with pytest.raises(ValueError, match=r"\.c "):
        CorrelationConfig(processes=100, correlated=10, c=0.0)
