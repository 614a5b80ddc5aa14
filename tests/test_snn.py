"""Spiking neurons, STDP and PCM synapses (aimc.snn) and the SET-pulse PCM model."""

import itertools
import math

import pytest
import torch

from aimc.devices import PCM
from aimc.snn import (
    DiehlCookConfig,
    DiehlCookNet,
    LIFParams,
    PCMNeuronParams,
    PCMSynapseConfig,
    PCMSynapses,
    STDPParams,
    Traces,
    assign_labels,
    lif_constant_input,
    lif_init,
    lif_rate_constant_input,
    lif_step,
    pcm_neuron_init,
    pcm_neuron_step,
    predict,
    stdp_dw,
    stdp_dw_sparse,
    stdp_step,
    stdp_window,
    stochastic_round,
)

# -- LIF ------------------------------------------------------------------------------------


def _constant_drive_run(p: LIFParams, drive: torch.Tensor, steps: int):
    """Hold the synaptic current at ``drive`` (i(0) = drive, inflow = its decay)."""
    state = lif_init(tuple(drive.shape), p)
    state = state._replace(i=drive.clone())
    inflow = drive * (1.0 - math.exp(-p.dt / p.tau_syn))
    vs, spikes = [], []
    for _ in range(steps):
        z, state = lif_step(inflow, state, p)
        vs.append(state.v.clone())
        spikes.append(z)
    return torch.stack(vs), torch.stack(spikes), state


def test_lif_matches_closed_form_below_threshold():
    p = LIFParams(dt=0.1, tau_mem=20.0, tau_syn=5.0, v_rest=-65.0, v_reset=-60.0,
                  v_th=-52.0, t_ref=2.0)
    drive = torch.tensor([4.0, 8.0, 12.0])  # v_inf = -61, -57, -53 mV: never fires
    vs, spikes, _ = _constant_drive_run(p, drive, 1000)
    assert spikes.sum() == 0
    for j, d in enumerate(drive.tolist()):
        for n in (1, 10, 100, 999):
            expected = lif_constant_input(-65.0, d, (n + 1) * p.dt, p)
            assert abs(float(vs[n, j]) - expected) < 1e-4


def test_lif_rate_matches_closed_form_above_threshold():
    p = LIFParams(dt=0.02, tau_mem=20.0, tau_syn=5.0, v_rest=-65.0, v_reset=-60.0,
                  v_th=-52.0, t_ref=2.0)
    drive = torch.tensor([15.0, 25.0, 40.0])
    steps = 50_000  # 1 s
    _, spikes, _ = _constant_drive_run(p, drive, steps)
    # skip the first spike (it starts from v_rest, not v_reset): rate from the ISIs
    for j, d in enumerate(drive.tolist()):
        times = spikes[:, j].nonzero().squeeze(1).double() * p.dt
        isi = float((times[-1] - times[0]) / (len(times) - 1))
        expected = lif_rate_constant_input(d, p)
        # grid error: at most two steps per interval (crossing + refractory rounding)
        assert abs(1000.0 / isi - expected) / expected < 2 * 2 * p.dt / isi + 1e-3
    assert lif_rate_constant_input(10.0, p) == 0.0  # v_inf below threshold


def test_lif_refractory_and_adaptive_threshold():
    p = LIFParams(dt=1.0, tau_mem=10.0, tau_syn=0.0, t_ref=5.0, theta_plus=0.5,
                  tau_theta=1e9)
    state = lif_init((1,), p)
    total = torch.zeros(1)
    times = []
    for k in range(200):
        z, state = lif_step(torch.tensor([20.0]), state, p)  # strong delta input
        total += z
        if z.item():
            times.append(k)
    assert int(total) == len(times) > 5
    assert min(b - a for a, b in itertools.pairwise(times)) >= 6  # t_ref + 1 step
    assert float(state.theta) == pytest.approx(0.5 * len(times), rel=1e-5)


def test_lif_params_validation():
    with pytest.raises(ValueError, match="tau_mem"):
        LIFParams(tau_mem=0.0)
    with pytest.raises(ValueError, match="v_reset"):
        LIFParams(v_reset=-50.0, v_th=-52.0)


# -- STDP -----------------------------------------------------------------------------------


def test_stdp_window_shape_and_sign():
    p = STDPParams(a_plus=0.01, a_minus=0.005, tau_plus=20.0, tau_minus=30.0)
    dt = torch.tensor([-60.0, -30.0, -1.0, 0.0, 1.0, 20.0, 40.0])
    w = stdp_window(dt, p)
    assert (w[dt > 0] > 0).all() and (w[dt < 0] < 0).all() and w[dt == 0] == 0
    assert float(w[5]) == pytest.approx(0.01 * math.exp(-1.0))
    assert float(w[1]) == pytest.approx(-0.005 * math.exp(-1.0))
    assert float(w[4]) > float(w[5]) > float(w[6])  # decays with |dt|
    assert abs(float(w[2])) > abs(float(w[1])) > abs(float(w[0]))


@pytest.mark.parametrize("lag", [-25, -3, 2, 7, 40])
def test_online_stdp_reproduces_window_for_one_pair(lag):
    p = STDPParams(a_plus=0.01, a_minus=0.004, tau_plus=15.0, tau_minus=25.0)
    dt = 0.5
    t_pre, t_post = 60, 60 + lag
    tr = Traces(pre=torch.zeros(1, 1), post=torch.zeros(1, 1))
    total = torch.zeros(1, 1)
    for k in range(200):
        pre = torch.tensor([[1.0 if k == t_pre else 0.0]])
        post = torch.tensor([[1.0 if k == t_post else 0.0]])
        d, tr = stdp_step(pre, post, tr, p, dt)
        total += d
    expected = float(stdp_window(torch.tensor(lag * dt), p))
    assert float(total) == pytest.approx(expected, rel=1e-5)


def test_sparse_stdp_equals_dense():
    g = torch.Generator().manual_seed(1)
    p = STDPParams(x_tar=0.1)
    tr = Traces(pre=torch.rand(4, 30, generator=g), post=torch.rand(4, 7, generator=g))
    pre = (torch.rand(4, 30, generator=g) < 0.2).float()
    post = (torch.rand(4, 7, generator=g) < 0.3).float()
    dense = stdp_dw(pre, post, tr, p)
    sparse = torch.zeros(30, 7)
    stdp_dw_sparse(sparse, pre.nonzero(as_tuple=True), post.nonzero(as_tuple=True), tr, p)
    torch.testing.assert_close(sparse, dense)


# -- reading pulsed PCM devices ---------------------------------------------------------------


def test_pcm_read_with_per_device_times():
    """PCM.read with a tensor of per-device times since the last pulse (STDP synapses,
    correlation detection) gives each device the drift and read noise of its own age
    (pcm-model.md sec. 3-4)."""
    g = torch.full((2, 20_000), 10.0)
    nu = torch.full_like(g, 0.06)
    t = torch.tensor([[3600.0], [86400.0]]).expand_as(g)
    out = PCM(read_noise_scale=0.0).read(g, nu, t)
    for row, ts in enumerate((3600.0, 86400.0)):
        expected = 10.0 * ((ts + 20.0) / 20.0) ** -0.06
        torch.testing.assert_close(out[row], torch.full_like(g[row], expected))
        # the tensor path equals the scalar-time path of inference
        torch.testing.assert_close(out[row], PCM(read_noise_scale=0.0).read(g[row], nu[row], ts))
    noisy = PCM().read(g, nu, t, torch.Generator().manual_seed(0))
    for row, ts in enumerate((3600.0, 86400.0)):
        expected = 10.0 * ((ts + 20.0) / 20.0) ** -0.06
        rel_std = float((noisy[row] / expected - 1).std())
        q = 0.0088 / (10.0 / 25.0) ** 0.65 * math.sqrt(math.log((ts + 20.0 + 250e-9) / 500e-9))
        assert rel_std == pytest.approx(q, rel=0.03)   # 20,000 samples: se of a std 0.5%
    with pytest.raises(ValueError, match="t must be >= 0"):
        PCM().read(g, nu, -t)


def test_snn_devices_are_the_in_situ_set_model():
    """Synapses, neurons and correlation detection use the one SET-pulse model."""
    from aimc.compute.correlation import CorrelationConfig
    from aimc.devices.pulsed import PulsedPCM
    assert isinstance(PCMSynapseConfig().device, PulsedPCM)
    assert isinstance(PCMNeuronParams().device, PulsedPCM)
    assert isinstance(CorrelationConfig().device, PulsedPCM)


# -- PCM neuron (Tuma 2016) -------------------------------------------------------------------


def test_pcm_neuron_rate_increases_with_input_and_isi_varies():
    p = PCMNeuronParams(g_th=8.0)
    gen = torch.Generator().manual_seed(0)
    inputs = torch.tensor([0.15, 0.3, 0.6, 1.0]).repeat_interleave(100)  # 100 neurons each
    state = pcm_neuron_init((inputs.numel(),), p, gen)
    spikes = []
    for _ in range(600):
        z, state = pcm_neuron_step(inputs, state, p, gen)
        spikes.append(z)
    spikes = torch.stack(spikes)
    rates = spikes.sum(0).view(4, 100).mean(1)
    assert (rates[1:] > rates[:-1] * 1.3).all()  # population rate codes the input
    # one neuron's interspike intervals vary from cycle to cycle
    times = spikes[:, -1].nonzero().squeeze(1).float()
    isi = times.diff()
    assert len(isi) > 20
    cv = float(isi.std() / isi.mean())
    assert 0.05 < cv < 1.0
    assert len(set(isi.tolist())) > 2


# -- PCM synapses ---------------------------------------------------------------------------


def test_stochastic_round_is_unbiased():
    x = torch.full((200_000,), 2.3)
    r = stochastic_round(x, torch.Generator().manual_seed(0))
    assert set(r.unique().tolist()) == {2.0, 3.0}
    assert float(r.mean()) == pytest.approx(2.3, abs=0.005)


def test_pcm_synapses_potentiate_depress_and_refresh():
    gen = torch.Generator().manual_seed(0)
    cfg = PCMSynapseConfig(drift=False, read_noise=False)
    syn = PCMSynapses(torch.full((200, 100), 0.3), cfg, 1.0, gen)
    w0 = syn.read(0.0)
    assert float(w0.mean()) == pytest.approx(0.3, abs=0.05)
    dw = torch.zeros(200, 100)
    dw[:100] = 2 * syn.eps
    dw[100:] = -2 * syn.eps
    syn.apply(dw, 1.0, gen)
    w1 = syn.read(1.0)
    up, down = (w1 - w0)[:100].mean(), (w1 - w0)[100:].mean()
    # 2 eps requested: two pulses, each slightly smaller than eps at G > 0 (non-linear)
    assert syn.eps < float(up) < 2.1 * syn.eps
    assert -2.1 * syn.eps < float(down) < -1.0 * syn.eps
    # alternating updates fill both devices until refreshes happen (30 pulses take a
    # device from RESET to about 12 uS)
    cfg = PCMSynapseConfig(drift=False, read_noise=False, refresh_level=11.0)
    small = PCMSynapses(torch.full((20, 50), 0.3), cfg, 1.0, gen)
    for k in range(30):
        small.apply(torch.full((20, 50), small.eps), 2.0 + k, gen)
        small.apply(torch.full((20, 50), -small.eps), 2.5 + k, gen)
    assert small.refreshes > 0
    assert (small.g < cfg.refresh_level + 3 * cfg.device.dg0).all()
    # a refresh RESETs both devices and writes the same weight back onto G+
    small.g[0, 0] = 22.0
    small.g[1, 0] = 22.0 - 0.3 * cfg.g_w  # w = 0.3, both devices above refresh_level
    before = small.refreshes
    small.apply(torch.zeros(20, 50), 100.0, gen)
    assert small.refreshes == before + 1000
    assert (small.g[1, 0] < 1.0).all() and (small.g[0, 0] < 10.0).all()
    w = small.conductance_weights()
    assert float(w.mean()) == pytest.approx(0.3, abs=0.06)


def test_pcm_synapse_accumulator_sends_whole_pulses():
    gen = torch.Generator().manual_seed(0)
    cfg = PCMSynapseConfig(drift=False, read_noise=False, accumulate=True)
    syn = PCMSynapses(torch.zeros(30, 40), cfg, 1.0, gen)
    start = syn.pulses
    for k in range(5):  # 5 x 0.45 eps = 2.25 eps: exactly 2 pulses per synapse, 0.25 left
        syn.apply(torch.full((30, 40), 0.45 * syn.eps), float(k), gen)
    assert syn.pulses - start == 2 * 30 * 40
    torch.testing.assert_close(syn.chi, torch.full((30, 40), 0.25 * syn.eps))
    # opposite small updates cancel in the accumulator: no pulses at all
    before = syn.pulses
    for k in range(10):
        syn.apply(torch.full((30, 40), 0.3 * syn.eps * (-1) ** k), 10.0 + k, gen)
    assert syn.pulses == before
    # without the accumulator the same updates are rounded stochastically into pulses
    rnd = PCMSynapses(torch.zeros(30, 40), PCMSynapseConfig(accumulate=False), 1.0, gen)
    start = rnd.pulses
    for k in range(10):
        rnd.apply(torch.full((30, 40), 0.3 * rnd.eps * (-1) ** k), float(k), gen)
    assert (rnd.pulses - start) / (10 * 30 * 40) == pytest.approx(0.3, abs=0.03)


def test_pcm_synapse_read_drifts_down():
    gen = torch.Generator().manual_seed(0)
    syn = PCMSynapses(torch.full((50, 50), 0.8), PCMSynapseConfig(read_noise=False), 1.0, gen)
    assert float(syn.read(86400.0).mean()) < 0.85 * float(syn.read(0.0).mean())


# -- Diehl & Cook network --------------------------------------------------------------------


def test_assign_and_predict():
    counts = torch.tensor([[5.0, 0, 1], [0, 4, 0], [6.0, 1, 0], [0, 0, 3]])
    labels = torch.tensor([0, 1, 0, 2])
    a = assign_labels(counts, labels, 3)
    assert a.tolist() == [0, 1, 2]
    assert predict(counts, a, 3).tolist() == [0, 1, 0, 2]


@pytest.mark.parametrize("synapse", ["ideal", "pcm"])
def test_diehl_cook_learns_and_normalises(synapse):
    # two prototype "images": the network should dedicate neurons to each
    x = torch.zeros(2, 784)
    x[0, :392], x[1, 392:] = 1.0, 1.0
    cfg = DiehlCookConfig(neurons=6, time_steps=100, batch=2, synapse=synapse, seed=0)
    net = DiehlCookNet(cfg)
    for _ in range(10):
        net.train_batch(x)
    w = net.syn.read(net.t)
    assert net.images == 20 and net.events > 0
    if synapse == "ideal":
        torch.testing.assert_close(w.sum(0), torch.full((6,), cfg.norm_total))
    else:
        assert net.syn.pulses > 0
    counts = net.responses(x)
    a = assign_labels(counts, torch.tensor([0, 1]), 2)
    assert (predict(counts, a, 2) == torch.tensor([0, 1])).all()
    with pytest.raises(ValueError, match="synapse"):
        DiehlCookConfig(synapse="rram")


def test_diehl_cook_state_dict_resumes_bit_exact(tmp_path):
    x = torch.zeros(4, 784)
    x[:, ::3] = 0.8
    cfg = DiehlCookConfig(neurons=5, time_steps=60, batch=2, synapse="pcm", seed=3)
    net = DiehlCookNet(cfg)
    net.train_batch(x[:2])
    torch.save({"config": cfg.to_dict(), "net": net.state_dict()}, tmp_path / "ck.pt")
    saved = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert saved["config"] == cfg.to_dict()
    twin = DiehlCookNet(cfg)
    twin.load_state_dict(saved["net"])
    net.train_batch(x[2:])
    twin.train_batch(x[2:])
    assert torch.equal(net.syn.g, twin.syn.g) and torch.equal(net.theta, twin.theta)


@pytest.mark.parametrize("exclusive", [False, True])
def test_diehl_cook_exclusive_gives_each_neuron_one_image_per_batch(exclusive):
    # 8 copies of one image: with shared weights the same neurons win every copy,
    # unless each neuron is claimed by the first image it fires for
    x = torch.zeros(8, 784)
    x[:, 100:500] = 1.0
    cfg = DiehlCookConfig(neurons=40, time_steps=150, batch=8, exclusive=exclusive, seed=1)
    net = DiehlCookNet(cfg)
    w = net.syn.read(net.t)
    theta0 = net.theta.clone()
    dw = torch.zeros_like(w)
    counts = net.run(x, w, torch.ones(8), dw)
    images_per_neuron = (counts > 0).sum(0)
    assert counts.sum() > 20
    if exclusive:
        assert int(images_per_neuron.max()) == 1
        # the threshold rises only by the spikes that were kept
        inc = net.theta - theta0 * math.exp(-8 * cfg.image_time * 1000 / cfg.lif.tau_theta)
        torch.testing.assert_close(inc, cfg.lif.theta_plus * counts.sum(0), atol=1e-5,
                                   rtol=1e-4)
    else:
        assert int(images_per_neuron.max()) >= 4
    # no effect without learning (labelling and test)
    counts_eval = net.run(x, w, torch.ones(8), None)
    assert int((counts_eval > 0).sum(0).max()) >= 4


def test_diehl_cook_theta_decays_over_the_batch_time():
    # theta decays over b images x image_time of simulated time, as shown one by one
    lif = LIFParams(theta_plus=0.0, tau_theta=2000.0)
    cfg = DiehlCookConfig(neurons=3, time_steps=20, batch=4, image_time=0.5, lif=lif,
                          max_retries=0)
    net = DiehlCookNet(cfg)
    net.theta = torch.tensor([1.0, 2.0, 4.0])
    net.train_batch(torch.zeros(4, 784))
    # 4 images x 500 ms at tau 2000 ms: factor exp(-1)
    torch.testing.assert_close(net.theta, torch.tensor([1.0, 2.0, 4.0]) * math.exp(-1.0))


@pytest.mark.parametrize("accumulate", [False, True])
def test_pcm_single_device_reset_depression_is_unbiased(accumulate):
    # depression RESETs a device holding w_k with probability |dw| / w_k: the mean change
    # equals the request, a depressed synapse drops to ~0 or keeps its weight, and the
    # G- reference devices are never programmed
    gen = torch.Generator().manual_seed(4)
    cfg = PCMSynapseConfig(drift=False, read_noise=False, depression="reset",
                           accumulate=accumulate)
    syn = PCMSynapses(torch.full((200, 200), 0.5), cfg, 1.0, gen)
    w0 = syn.conductance_weights()
    g_ref = syn.g[1].clone()
    request = -2 * syn.eps  # eps = 0.1: 0.2 of a weight of ~0.5, about 40% RESET
    syn.apply(torch.full((200, 200), request), 1.0, gen)
    w1 = syn.conductance_weights()
    change = w1 - w0
    n = change.numel()
    # mean change: binomial spread of (0.4 x 0.6 / n)^0.5 x 0.5 = 0.0017; 4 sigma
    assert float(change.mean()) == pytest.approx(request, abs=0.007)
    hit = change < -0.25
    assert float(hit.float().mean()) == pytest.approx(-request / float(w0.mean()), abs=0.03)
    assert float(w1[hit].max()) < 0.05  # RESET removes the whole weight
    assert float(change[~hit].abs().max()) == 0.0
    assert torch.equal(syn.g[1], g_ref) and syn.resets == int(hit.sum())
    # potentiation is SET pulses on G+ as for pairs
    syn.apply(torch.full((200, 200), 2 * syn.eps), 2.0, gen)
    assert float((syn.conductance_weights() - w1).mean()) > syn.eps
    assert n == 40000
    with pytest.raises(ValueError, match="depression"):
        PCMSynapseConfig(depression="partial")


def test_snn_mnist_variants_and_tiny_run(tmp_path):
    import json

    from aimc.experiments.snn_mnist import main, make_config

    cfg = make_config(400, "pcm-reset", 16, 0)
    assert cfg.synapse == "pcm" and cfg.pcm.depression == "reset"
    assert make_config(400, "pcm", 16, 0).pcm.depression == "pair"
    with pytest.raises(ValueError, match="synapse"):
        make_config(400, "rram", 16, 0)
    assert main(["--quick", "--neurons", "6", "--train", "32", "--assign", "32", "--test",
                 "32", "--synapses", "pcm-reset", "--no-progress", "--out",
                 str(tmp_path)]) == 0
    res = json.loads((tmp_path / "snn-mnist.json").read_text())
    methods = {r["method"] for r in res["rows"]}
    assert {"pcm-reset", "pcm-reset+drift"} <= methods
    assert res["details"]["pcm-reset"]["images"] == 32
    assert (tmp_path / "snn-mnist.png").exists()
    # energy of training and inference, from the run's counts
    energy = res["details"]["pcm-reset"]["energy"]
    train = energy["pcm90nm_joshi2020"]["train"]
    assert energy["train_counts"]["images"] == 32 and energy["train_counts"]["learning"]
    assert train["set_pulses"] == pytest.approx(
        res["details"]["pcm-reset"]["set_pulses"] * 27e-12)
    assert energy["pcm90nm_joshi2020"]["inference"]["plasticity"] == 0.0
    metrics = {r["metric"] for r in res["rows"]}
    assert {"energy_per_inference_j", "train_energy_j"} <= metrics
    # both neuron readouts, and the inference's own output spikes
    assert energy["inference_counts"]["output_spikes"] > 0
    integ = energy["pcm90nm_joshi2020"]["integrate"]
    assert integ["inference"]["readout"] == "integrate"
    assert integ["inference"]["total_j"] < energy["pcm90nm_joshi2020"]["inference"]["total_j"]
    assert {r.get("readout") for r in res["rows"] if r["metric"] == "train_energy_j"} == {
        "adc", "integrate"}


def test_interspike_interval_statistics_by_hand():
    from aimc.experiments.pcm_neurons import coding_correlation, interspike_intervals, isi_stats

    spikes = torch.zeros(20, 3, dtype=torch.bool)
    spikes[[2, 5, 8, 11], 0] = True        # neuron 0: every 3 steps
    spikes[[1, 5, 7, 11, 13], 1] = True    # neuron 1: 4, 2, 4, 2
    spikes[[4], 2] = True                  # neuron 2: no interval
    isi, who = interspike_intervals(spikes)
    assert sorted(zip(who.tolist(), isi.tolist(), strict=True)) == [
        (0, 3.0), (0, 3.0), (0, 3.0), (1, 2.0), (1, 2.0), (1, 4.0), (1, 4.0)]
    st = isi_stats(spikes)
    assert st["rate"] == pytest.approx(10 / 60)
    assert st["isi_mean"] == pytest.approx(21 / 7)
    # within: neuron 0 has CV 0, neuron 1 std(2,2,4,4, ddof 1) / 3
    assert st["isi_cv_within"] == pytest.approx((0 + (4 / 3) ** 0.5 / 3) / 2)
    assert st["isi_cv_between"] == pytest.approx(0.0)  # both neurons' mean ISI is 3
    s = torch.sin(torch.arange(50.0))
    assert coding_correlation(s, 2 * s + 1) == pytest.approx(1.0)
    assert coding_correlation(s, torch.ones(50)) == 0.0


def test_pcm_neurons_study_population_coding(tmp_path):
    import itertools
    import json

    from aimc.experiments.pcm_neurons import main

    assert main(["--neurons", "40", "--steps", "600", "--populations", "1", "30", "600",
                 "--warmup", "100", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "pcm-neurons.json").read_text())
    rates = [r["rate"] for r in doc["transfer"]]
    assert all(b > a for a, b in itertools.pairwise(rates))  # more input, more spikes
    assert all(0.05 < r["isi_cv_within"] < 0.5 for r in doc["transfer"])
    corr = {(r["variant"], r["neurons"]): r["correlation"] for r in doc["coding"]}
    # identical exact neurons fire in lockstep: the population is one neuron
    assert corr[("deterministic", 1)] == corr[("deterministic", 600)]
    # stochastic neurons spread out: a large population follows the fast input
    assert corr[("pcm", 600)] > 0.85 > corr[("d2d-only", 600)]
    assert corr[("pcm", 600)] > corr[("pcm", 30)] > corr[("pcm", 1)]
    e = doc["energy"]["pcm90nm_joshi2020"]
    assert e["spikes"] > 0 and e["total_j"] == pytest.approx(
        e["set_pulses"] + e["resets"] + e["threshold_reads"])
    assert (tmp_path / "pcm-neurons.png").exists()
