"""AnalogMultiheadAttention: attention with its projections on PCM tiles."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import aimc
from aimc.energy import estimate
from aimc.nn import AnalogMultiheadAttention
from aimc.training import HWAConfig, prepare_hwa


def _pair(batch_first: bool, seed: int = 0, config=None):
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first)
    return mha, aimc.convert(nn.Sequential(mha), config or aimc.presets.ideal())[0]


def _calls(batch_first: bool):
    """(args, kwargs) of torch's forward: self- and cross-attention, both masks, causal,
    per-head weights, unbatched."""
    def b(t):  # (B, L, E) -> the layer's layout
        return t if batch_first else t.transpose(0, 1)
    x, kv, v2 = torch.randn(3, 5, 16), torch.randn(3, 7, 16), torch.randn(3, 7, 16)
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[:, -2:] = True
    return [
        ((b(x), b(x), b(x)), {}),
        ((b(x), b(kv), b(kv)), {"key_padding_mask": pad}),
        ((b(x), b(x), b(x)), {"attn_mask": causal}),
        ((b(x), b(x), b(x)), {"attn_mask": torch.randn(12, 5, 5)}),
        ((b(x), b(x), b(x)), {"attn_mask": causal, "is_causal": True,
                              "average_attn_weights": False}),
        ((b(x), b(kv), b(kv)), {"need_weights": False}),
        ((b(x), b(kv), b(v2)), {}),  # three inputs: three reads of in_proj
        ((x[0], kv[0], kv[0]), {}),
    ]


@pytest.mark.parametrize("batch_first", [True, False])
def test_ideal_chip_and_training_mode_compute_torch_attention(batch_first):
    mha, a = _pair(batch_first)
    mha.eval()
    a.eval()
    aimc.program(a, seed=0)
    with torch.no_grad():
        for args, kw in _calls(batch_first):
            want, got = mha(*args, **kw), a(*args, **kw)
            torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-4)
            if want[1] is None:
                assert got[1] is None
            else:
                torch.testing.assert_close(got[1], want[1], atol=1e-6, rtol=1e-4)
    # training mode (no noise hook): the digital layer, with the same gradients
    mha.train()
    a.train()
    args, kw = _calls(batch_first)[1]
    mha(*args, **kw)[0].square().sum().backward()
    a(*args, **kw)[0].square().sum().backward()
    torch.testing.assert_close(a.in_proj.weight.grad, mha.in_proj_weight.grad, atol=1e-5,
                               rtol=1e-4)
    torch.testing.assert_close(a.out_proj.weight.grad, mha.out_proj.weight.grad, atol=1e-5,
                               rtol=1e-4)


def test_convert_transformer_and_back():
    torch.manual_seed(1)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every weight layer has an analog version now
        a = aimc.convert(enc, aimc.presets.ideal()).eval()
    assert isinstance(a.layers[1].self_attn, AnalogMultiheadAttention)
    assert a.layers[0].self_attn.in_proj.weight.shape == (48, 16)
    names = [n for n, _ in aimc.analog_layers(a)]
    assert "layers.0.self_attn.in_proj" in names and "layers.1.self_attn.out_proj" in names
    aimc.program(a, seed=0)
    x = torch.randn(2, 6, 16)
    causal = nn.Transformer.generate_square_subsequent_mask(6)
    with torch.no_grad():
        torch.testing.assert_close(a(x, mask=causal), enc(x, mask=causal), atol=1e-5,
                                   rtol=1e-4)
    back = aimc.to_digital(a)
    assert type(back.layers[0].self_attn) is nn.MultiheadAttention
    assert back.state_dict().keys() == enc.state_dict().keys()


def test_pcm_chip_is_reproducible_and_gdc_follows_the_drift():
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    x = torch.randn(8, 10, 32)
    cfg = aimc.presets.pcm_joshi2020()
    cfg.tile.out_noise, cfg.tile.adc_bits, cfg.tile.dac_bits = 0.0, 0, 0
    cfg.tile.input_range = "dynamic"  # three inputs: no single-input calibration pass
    a, b = (aimc.convert(nn.Sequential(mha), cfg).eval() for _ in range(2))
    for m in (a, b):
        aimc.program(m, seed=4)
        aimc.drift(m, 3.15e7)
    with torch.no_grad():
        want = mha(x, x, x)[0]
        got_a, got_b = a[0](x, x, x)[0], b[0](x, x, x)[0]
        assert torch.equal(got_a, got_b)
        err_raw = float((got_a - want).abs().mean())
        aimc.compensate(a, "gdc")
        err_gdc = float((a[0](x, x, x)[0] - want).abs().mean())
    assert err_gdc < 0.6 * err_raw


def test_unsupported_attention_stays_digital_and_bad_inputs_raise():
    with pytest.warns(UserWarning, match="MultiheadAttention"):
        kept = aimc.convert(nn.Sequential(nn.MultiheadAttention(16, 4, kdim=8, vdim=8)),
                            aimc.presets.ideal())
    assert type(kept[0]) is nn.MultiheadAttention
    with pytest.raises(ValueError, match="multiple of num_heads"):
        AnalogMultiheadAttention(10, 4)
    _, a = _pair(True)
    with pytest.raises(ValueError, match="features"):
        a(torch.randn(2, 3, 8), torch.randn(2, 3, 8), torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="key_padding_mask"):
        x = torch.randn(2, 3, 16)
        a(x, x, x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))


def test_hwa_noise_reaches_the_projections():
    mha, a = _pair(True, config=aimc.presets.pcm_joshi2020())
    x = torch.randn(3, 5, 16)
    prepare_hwa(a, HWAConfig(noise="gaussian", eta=0.1), seed=0)
    a.train()
    noisy = a(x, x, x)[0]
    assert float((noisy - mha(x, x, x)[0]).detach().abs().max()) > 1e-3
    noisy.sum().backward()
    assert a.in_proj.weight.grad is not None and a.in_proj_bias.grad is not None


def test_energy_costs_projections_on_tiles_and_attention_digitally():
    torch.manual_seed(3)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    a = aimc.convert(nn.TransformerEncoder(layer, 1, enable_nested_tensor=False),
                     aimc.presets.pcm_joshi2020())
    table = estimate(a, "pcm90nm_joshi2020", (5, 16), baselines=())
    rows = {r["name"]: r for r in table.rows}
    assert table.totals["complete"] and not table.unsupported
    assert rows["layers.0.self_attn.in_proj"]["kind"] == "analog"
    assert rows["layers.0.self_attn.in_proj"]["macs"] == 5 * 16 * 48
    # scores: 2 heads x 5 x 5 x 8; scores times values: the same count
    assert rows["layers.0.self_attn:matmul"]["kind"] == "digital"
    assert rows["layers.0.self_attn:matmul"]["macs"] == 2 * 5 * 5 * 8
    assert rows["layers.0.self_attn:matmul#2"]["macs"] == 2 * 5 * 5 * 8
    assert table.totals["weights"] == 48 * 16 + 16 * 16 + 2 * 32 * 16
    assert table.totals["tiles"] == 4


def test_whole_transformer_with_decoder_converts_and_computes_on_an_ideal_chip():
    # encoder self-attention, decoder self-attention with a causal mask, and the decoder's
    # cross-attention on the encoder's memory (key and value the same tensor)
    torch.manual_seed(4)
    model = nn.Transformer(d_model=16, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=32, dropout=0.0, batch_first=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = aimc.convert(model, aimc.presets.ideal()).eval()
    # 1 encoder layer: attention (2) + feed-forward (2); 1 decoder layer: 2 attentions (4)
    # + feed-forward (2)
    assert sum(1 for _ in aimc.analog_layers(a)) == 10
    aimc.program(a, seed=0)
    src, tgt = torch.randn(2, 7, 16), torch.randn(2, 5, 16)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    with torch.no_grad():
        torch.testing.assert_close(a(src, tgt, tgt_mask=mask), model(src, tgt, tgt_mask=mask),
                                   atol=1e-5, rtol=1e-4)


def test_several_inputs_calibrate_with_a_forward_function():
    # A bare attention layer takes (query, key, value): the calibration passes feed it
    # through forward=, so it can run with static DAC ranges and calibrated ADC ranges.
    # Exact devices and no output noise: what remains is the 8-bit DAC and ADC.
    torch.manual_seed(3)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    q, kv = torch.randn(6, 5, 16), torch.randn(6, 7, 16) * 3
    cfg = aimc.presets.ideal()
    cfg.tile.dac_bits, cfg.tile.adc_bits, cfg.tile.out_bound = 8, 8, 10.0
    cfg.tile.input_range = "static"
    layer = aimc.convert(mha, cfg).eval()

    def feed(m, batch):
        return m(batch[0], batch[1], batch[1])

    with pytest.raises(TypeError):
        aimc.calibrate_inputs(layer, [(q, kv)])  # model(q) alone: key and value missing
    ranges = aimc.calibrate_inputs(layer, [(q, kv)], forward=feed, quantile=1.0)
    # in_proj reads the query and the key/value inputs; out_proj the attention's output
    assert ranges["in_proj"] == pytest.approx(float(torch.cat([q, kv], 1).abs().max()))
    aimc.program(layer, seed=0)
    with torch.no_grad():
        want = mha(q, kv, kv)[0]
        err_fixed = float((layer(q, kv, kv)[0] - want).abs().mean())
        bounds = aimc.calibrate_outputs(layer, [(q, kv)], forward=feed, quantile=1.0)
        err_calibrated = float((layer(q, kv, kv)[0] - want).abs().mean())
    assert set(bounds) == {"in_proj", "out_proj"} and all(0 < b < 5 for b in bounds.values())
    sat = aimc.adc_saturation(layer, [(q, kv)], forward=feed)
    assert sat["in_proj"] <= 1 / (6 * 12 * 48) and sat["out_proj"] <= 1 / (6 * 5 * 16)
    # the ADC's 255 levels now span the outputs rather than +-10
    assert err_calibrated < 0.5 * err_fixed
