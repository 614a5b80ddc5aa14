"""AdaBS (adaptive batch-norm statistics), compensation combos, accuracy over time."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aimc
from aimc import presets
from aimc.inference import evaluate as ev
from aimc.nn.layers import CHIP_BUFFERS, GDC_LAYER, GDC_OFF


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def data():
    x, y, xt, yt = aimc.data.load_mnist_small()
    torch.manual_seed(0)
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for i in range(0, 1536, 64):  # a short training: accuracy well above chance
        opt.zero_grad()
        F.cross_entropy(net(x[i:i + 64]), y[i:i + 64]).backward()
        opt.step()
    calib = [(x[i:i + 100], y[i:i + 100]) for i in range(2000, 2200, 100)]
    test = [(xt[:250], yt[:250])]
    return net.eval(), calib, test


def _chip(net, calib, t=86_400.0):
    amodel = aimc.convert(net, presets.pcm_joshi2020())
    aimc.calibrate_inputs(amodel, calib, batches=2)
    aimc.program(amodel, seed=1)
    aimc.drift(amodel, t)
    return amodel


def _bn_stats(model):
    return {n: (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
            for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


def test_adabs_changes_only_running_stats(data):
    net, calib, _ = data
    amodel = _chip(net, calib)
    before = {k: v.clone() for k, v in amodel.state_dict().items()}
    aimc.compensate(amodel, "adabs", loader=calib)
    after = amodel.state_dict()
    stats = ("running_mean", "running_var", "num_batches_tracked")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"bn{i}.{s}" for i in (1, 2) for s in stats}
    assert not amodel.training
    assert all(m.momentum == 0.1 for m in amodel.modules() if isinstance(m, nn.BatchNorm2d))


def test_adabs_stats_are_the_cumulative_batch_statistics(data):
    net, calib, _ = data
    amodel = _chip(net, calib)
    seen = []
    hook = amodel.bn2.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    aimc.compensate(amodel, "adabs", loader=calib, batches=2)
    hook.remove()
    assert len(seen) == 2
    means = [s.mean(dim=(0, 2, 3)) for s in seen]
    variances = [s.var(dim=(0, 2, 3), unbiased=True) for s in seen]
    # momentum=None: equal-weight average over the calibration batches
    torch.testing.assert_close(amodel.bn2.running_mean, (means[0] + means[1]) / 2)
    torch.testing.assert_close(amodel.bn2.running_var, (variances[0] + variances[1]) / 2)
    assert int(amodel.bn2.num_batches_tracked) == 2


def test_adabs_never_leaks_into_the_next_time_or_chip(data):
    net, calib, _ = data
    amodel = _chip(net, calib)
    trained = _bn_stats(amodel)
    for undo in (lambda m: aimc.drift(m, 3600.0), lambda m: aimc.compensate(m, "gdc"),
                 lambda m: aimc.compensate(m, None), lambda m: aimc.program(m, seed=2)):
        aimc.compensate(amodel, "adabs", loader=calib)
        assert not torch.equal(amodel.bn1.running_mean, trained["bn1"][0])
        aimc.compensate(amodel, "adabs", loader=calib)  # twice in a row: same reference
        undo(amodel)
        for name, (mean, var, count) in _bn_stats(amodel).items():
            assert torch.equal(mean, trained[name][0])
            assert torch.equal(var, trained[name][1])
            assert torch.equal(count, trained[name][2])


def test_gdc_plus_adabs_combines_both(data):
    net, calib, test = data
    amodel = _chip(net, calib, t=31_536_000.0)
    aimc.compensate(amodel, "gdc+adabs", loader=calib)
    assert all(int(layer.gdc_mode) == GDC_LAYER for _, layer in aimc.analog_layers(amodel))
    trained = _bn_stats(net)
    assert not torch.equal(amodel.bn1.running_mean, trained["bn1"][0])
    aimc.compensate(amodel, "adabs", loader=calib)  # AdaBS alone: GDC off
    assert all(int(layer.gdc_mode) == GDC_OFF for _, layer in aimc.analog_layers(amodel))
    # after a year, AdaBS recovers accuracy lost without compensation (2 chips' worth of data)
    aimc.compensate(amodel, "none")
    acc_none = aimc.accuracy(amodel, test)
    aimc.compensate(amodel, "gdc+adabs", loader=calib)
    assert aimc.accuracy(amodel, test) > acc_none


def test_compensation_errors(data):
    net, calib, _ = data
    amodel = _chip(net, calib)
    with pytest.raises(ValueError, match="loader"):
        aimc.compensate(amodel, "adabs")
    with pytest.raises(ValueError, match="unknown compensation 'gdc\\+foo'"):
        aimc.compensate(amodel, "gdc+foo")
    with pytest.raises(ValueError, match="no batch-norm"):
        aimc.compensate(aimc.program(aimc.convert(nn.Linear(4, 2), presets.ideal())),
                        "adabs", loader=[torch.zeros(1, 4)])


def test_evaluate_over_time_uses_independent_chips_and_resumes(data, monkeypatch):
    net, calib, test = data
    amodel = aimc.convert(net, presets.pcm_joshi2020())
    aimc.calibrate_inputs(amodel, calib, batches=2)
    programmed = []
    real_program = ev.program
    monkeypatch.setattr(ev, "program", lambda m, seed: (programmed.append(seed),
                                                        real_program(m, seed=seed))[1])
    times = [1.0, 86_400.0]
    methods = ("gdc", "gdc+adabs")
    got = {}
    rows = aimc.evaluate_over_time(amodel, test, times, chips=3, compensation=methods,
                                   seed=10, calib_loader=calib,
                                   on_value=lambda c, t, m, a: got.__setitem__((c, t, m), a))
    assert programmed == [10, 11, 12]  # once per chip, never between times
    assert len(got) == 3 * 2 * 2 and {r["n"] for r in rows} == {3}
    # each chip is its own seed: chip 1 alone gives chip 1's numbers
    aimc.program(amodel, seed=11)
    aimc.drift(amodel, 86_400.0)
    aimc.compensate(amodel, "gdc")
    assert aimc.accuracy(amodel, test) == got[(1, 86_400.0, "pcm+gdc")]
    # chips differ (programming noise differs)
    assert len({got[(c, 86_400.0, "pcm+gdc")] for c in range(3)}) > 1 or \
        len({got[(c, 1.0, "pcm+gdc")] for c in range(3)}) > 1
    # resume: known values are reused, only missing ones evaluated, same rows
    programmed.clear()
    known = {k: v for k, v in got.items() if k[0] < 2}
    new = []
    rows2 = aimc.evaluate_over_time(amodel, test, times, chips=3, compensation=methods,
                                    seed=10, calib_loader=calib, known=known,
                                    on_value=lambda c, t, m, a: new.append((c, t, m)))
    assert programmed == [12]
    assert sorted(new) == sorted(k for k in got if k[0] == 2)
    assert [r["values"] for r in rows2] == [r["values"] for r in rows]
    with pytest.raises(ValueError, match="calib_loader"):
        aimc.evaluate_over_time(amodel, test, times, chips=1, compensation=["adabs"])
    # on_program sets each chip up right after it is programmed, before any time
    programmed.clear()
    set_up = []

    def on_program(m, chip):
        ages = {float(layer.t_s) for _, layer in aimc.analog_layers(m)}
        set_up.append((chip, programmed[-1], ages))

    aimc.evaluate_over_time(amodel, test, [3600.0], chips=2, compensation=["gdc"], seed=10,
                            on_program=on_program)
    assert set_up == [(0, 10, {0.0}), (1, 11, {0.0})]


def test_chip_buffers_untouched_by_adabs(data):
    net, calib, _ = data
    amodel = _chip(net, calib)
    bufs = {k: getattr(amodel.conv1, k).clone() for k in CHIP_BUFFERS}
    aimc.compensate(amodel, "gdc+adabs", loader=calib)
    aimc.compensate(amodel, "none")
    for k, v in bufs.items():
        assert torch.equal(getattr(amodel.conv1, k), v) or k == "alpha", k


def test_batch_norms_lists_only_layers_with_running_statistics():
    """AdaBS and HWA training act on exactly the batch-norm layers that keep statistics."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4),
                        nn.BatchNorm2d(4, track_running_stats=False), nn.Flatten(),
                        nn.Linear(8, 3), nn.BatchNorm1d(3), nn.LayerNorm(3))
    found = aimc.nn.batch_norms(net)
    assert found == [net[1], net[5]]
    analog = aimc.convert(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)),
                          presets.pcm_joshi2020())
    assert aimc.nn.batch_norms(analog) == [analog[1]]


def test_models_of_several_inputs_run_every_pass_through_forward():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 32), nn.Linear(6, 32)
            self.bn = nn.BatchNorm1d(32)
            self.head = nn.Linear(32, 3)

        def forward(self, u, v):
            return self.head(torch.relu(self.bn(self.a(u) + self.b(v))))

    torch.manual_seed(5)
    net = TwoInputs()
    u, v = torch.randn(400, 8), torch.randn(400, 6)
    net.train()
    net.bn.momentum = None  # batch-norm statistics of exactly this data
    net(u, v)
    net.eval()
    with torch.no_grad():
        y = net(u, v).argmax(dim=-1)  # labels the digital network gets all right
    batches = [(u[i:i + 100], v[i:i + 100], y[i:i + 100]) for i in range(0, 400, 100)]

    def feed(m, b):
        return m(b[0], b[1])

    assert aimc.accuracy(net, batches, feed) == 1.0
    with pytest.raises(TypeError):
        aimc.accuracy(net, batches)  # model(u) alone
    amodel = aimc.convert(net, presets.pcm_joshi2020())
    aimc.calibrate_inputs(amodel, batches, forward=feed)
    rows = aimc.evaluate_over_time(amodel, batches, [1.0, 86_400.0], chips=2,
                                   compensation=("gdc", "gdc+adabs"), calib_loader=batches,
                                   forward=feed)
    acc = {(r["method"], r["t_s"]): r["mean"] for r in rows}
    assert set(acc) == {(m, t) for m in ("pcm+gdc", "pcm+gdc+adabs") for t in (1.0, 86_400.0)}
    assert min(acc.values()) > 0.7  # 0.84-0.91 measured; chance is 1/3
