"""Multi-head attention with its weight matrices on PCM tiles.

The projections of attention (Vaswani et al. 2017) are weight matrices: the input
projection W_in (3E x E: queries, keys and values) and the output projection W_out
(E x E). Each is an :class:`AnalogLinear` on its own tiles. The attention itself,
softmax(Q K^T / sqrt(d)) V, multiplies activations by activations: nothing is stored in a
crossbar, so it runs in the digital periphery, as in analog transformer accelerators
(e.g. Spoon et al., Front. Comput. Neurosci. 2021, with the AIHWKit PCM model).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import AnalogConfig
from .layers import AnalogLinear, join_name


def attention_mask(attn_mask: Tensor | None, key_padding_mask: Tensor | None, batch: int,
                   heads: int, q_len: int, k_len: int, is_causal: bool, dtype: torch.dtype,
                   device: torch.device | None = None) -> Tensor | None:
    """The additive mask (B, heads, L, S) of ``nn.MultiheadAttention``'s two masks, or None.

    Boolean masks mark what may *not* be attended (True -> -inf); float masks are added.
    ``attn_mask`` is (L, S) or (B * heads, L, S); ``key_padding_mask`` is (B, S). With
    ``is_causal`` and no ``attn_mask``, position i attends to positions <= i.
    """
    def additive(m: Tensor) -> Tensor:
        if m.dtype == torch.bool:
            return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill_(
                m, float("-inf"))
        return m.to(dtype)

    if attn_mask is None and is_causal:
        attn_mask = torch.ones(q_len, k_len, dtype=torch.bool, device=device).triu_(1)
    mask = None
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (q_len, k_len):
                raise ValueError(f"attn_mask must be ({q_len}, {k_len}), got "
                                 f"{tuple(attn_mask.shape)}")
            mask = additive(attn_mask).view(1, 1, q_len, k_len)
        elif attn_mask.dim() == 3 and tuple(attn_mask.shape) == (batch * heads, q_len, k_len):
            mask = additive(attn_mask).view(batch, heads, q_len, k_len)
        else:
            raise ValueError(f"attn_mask must be ({q_len}, {k_len}) or ({batch * heads}, "
                             f"{q_len}, {k_len}), got {tuple(attn_mask.shape)}")
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (batch, k_len):
            raise ValueError(f"key_padding_mask must be ({batch}, {k_len}), got "
                             f"{tuple(key_padding_mask.shape)}")
        pad = additive(key_padding_mask).view(batch, 1, 1, k_len)
        mask = pad if mask is None else mask + pad
    return mask


class AnalogMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with its input and output projections on PCM tiles.

    Same forward as torch's (query, key, value, key_padding_mask, need_weights,
    attn_mask, average_attn_weights, is_causal; batch-first or not, unbatched inputs).
    Children: ``in_proj`` (an :class:`AnalogLinear`, 3E x E, holding torch's
    ``in_proj_weight``) and ``out_proj`` (E x E); ``in_proj_bias`` stays a Parameter of
    this module, added digitally. ``in_proj`` is read once per distinct input: for
    self-attention one read gives Q, K and V; for cross-attention on a memory (key and
    value the same tensor) one read of the query and one of the memory; the outputs of
    the other rows of a read are dropped. Not supported (the layer then stays
    digital in :func:`aimc.convert`): ``kdim``/``vdim`` other than ``embed_dim``,
    ``add_bias_kv``, ``add_zero_attn``.
    """

    _qkv_same_embed_dim = True  # read by torch's transformer layers

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0,
                 bias: bool = True, batch_first: bool = False,
                 config: AnalogConfig | None = None, name: str = "", device=None,
                 dtype=None) -> None:
        super().__init__()
        if not (isinstance(embed_dim, int) and isinstance(num_heads, int) and embed_dim > 0
                and num_heads > 0 and embed_dim % num_heads == 0):
            raise ValueError(f"AnalogMultiheadAttention: embed_dim ({embed_dim!r}) must be a "
                             f"positive multiple of num_heads ({num_heads!r})")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"AnalogMultiheadAttention: dropout must be in [0, 1], "
                             f"got {dropout!r}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first = float(dropout), bool(batch_first)
        config = config if config is not None else AnalogConfig()
        kw = dict(device=device, dtype=dtype)
        self.in_proj = AnalogLinear(embed_dim, 3 * embed_dim, False, config,
                                    join_name(name, "in_proj"), **kw)
        self.in_proj_bias = (nn.Parameter(torch.empty(3 * embed_dim, **kw)) if bias
                             else None)
        self.out_proj = AnalogLinear(embed_dim, embed_dim, bias, config,
                                     join_name(name, "out_proj"), **kw)
        if device != "meta":  # torch's initialisation
            nn.init.xavier_uniform_(self.in_proj.weight)
            if bias:
                nn.init.zeros_(self.in_proj_bias)
                nn.init.zeros_(self.out_proj.bias)

    @staticmethod
    def supports(m: nn.MultiheadAttention) -> bool:
        """Whether ``m`` has an analog version (same q/k/v sizes, no extra key/value
        biases or zero attention)."""
        return bool(m._qkv_same_embed_dim and m.bias_k is None and not m.add_zero_attn)

    @classmethod
    def from_digital(cls, m: nn.MultiheadAttention, config: AnalogConfig, name: str = ""
                     ) -> AnalogMultiheadAttention:
        """An analog copy of ``m`` sharing its Parameters (``in_proj_weight`` becomes
        ``in_proj.weight``, the same tensor)."""
        if not cls.supports(m):
            raise ValueError(f"AnalogMultiheadAttention: '{name or 'the attention'}' uses "
                             "kdim/vdim, add_bias_kv or add_zero_attn, which have no analog "
                             "version")
        new = cls(m.embed_dim, m.num_heads, m.dropout, m.in_proj_bias is not None,
                  m.batch_first, config, name, device="meta")
        new.in_proj.weight = m.in_proj_weight
        new.in_proj_bias = m.in_proj_bias
        new.out_proj.weight, new.out_proj.bias = m.out_proj.weight, m.out_proj.bias
        for key in ("in_proj", "out_proj"):
            getattr(new, key)._init_analog(config, join_name(name, key))
        new.train(m.training)
        return new

    def to_torch(self) -> nn.MultiheadAttention:
        """The plain ``nn.MultiheadAttention`` holding this layer's Parameters."""
        m = nn.MultiheadAttention(self.embed_dim, self.num_heads, self.dropout,
                                  bias=self.in_proj_bias is not None,
                                  batch_first=self.batch_first, device="meta")
        m.in_proj_weight = self.in_proj.weight
        m.in_proj_bias = self.in_proj_bias
        m.out_proj.weight, m.out_proj.bias = self.out_proj.weight, self.out_proj.bias
        m.train(self.training)
        return m

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}")

    def _project(self, x: Tensor, part: int | None) -> Tensor:
        """Rows ``part`` (0 = Q, 1 = K, 2 = V; None = all three) of the input projection
        of ``x``, bias included."""
        y = self.in_proj(x)
        if self.in_proj_bias is not None:
            y = y + self.in_proj_bias
        if part is None:
            return y
        e = self.embed_dim
        return y[..., part * e:(part + 1) * e]

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        unbatched = query.dim() == 2
        if query.dim() not in (2, 3) or key.dim() != query.dim() or value.dim() != query.dim():
            raise ValueError("AnalogMultiheadAttention: query, key and value must all be "
                             "(L, E) or all batched (3-D)")
        if query.shape[-1] != self.embed_dim:
            raise ValueError(f"AnalogMultiheadAttention: expected {self.embed_dim} features, "
                             f"got {query.shape[-1]}")
        if unbatched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        # (B, L, E) from here on
        # One read of in_proj per distinct input: Q, K and V of self-attention together,
        # K and V of a shared memory together.
        if query is key and key is value:
            q, k, v = self._project(query, None).chunk(3, dim=-1)
        elif key is value:
            q = self._project(query, 0)
            _, k, v = self._project(key, None).chunk(3, dim=-1)
        else:
            q, k, v = (self._project(t, i) for i, t in enumerate((query, key, value)))
        batch, q_len, k_len = q.shape[0], q.shape[1], k.shape[1]
        h, d = self.num_heads, self.head_dim
        q, k, v = (t.reshape(batch, -1, h, d).transpose(1, 2) for t in (q, k, v))
        mask = attention_mask(attn_mask, key_padding_mask, batch, h, q_len, k_len,
                              is_causal, q.dtype, q.device)
        # Digital: activations times activations, nothing stored in a crossbar.
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d)
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        attn = F.dropout(weights, self.dropout, training=True) if (
            self.training and self.dropout) else weights
        out = torch.matmul(attn, v).transpose(1, 2).reshape(batch, q_len, self.embed_dim)
        out = self.out_proj(out)
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        # the weights the values were multiplied by (after dropout in training, as torch)
        w = attn.mean(dim=1) if average_attn_weights else attn
        return out, (w.squeeze(0) if unbatched else w)


__all__ = ["AnalogMultiheadAttention", "attention_mask"]
