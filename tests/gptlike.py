"""GPT-2's layout from plain torch.nn (``wte``, ``wpe``, blocks ``h.i`` with ``attn.c_attn``/``c_proj``
and ``mlp.c_fc``/``c_proj``, ``ln_f``, a ``head``), shared by the recipe and audit tests. There is no
forward pass: the tests initialize and measure tensors. :class:`CausalSelfAttention` is the attention
with its forward pass, for the tests that run one."""

from torch import nn
from torch.nn import functional as F


class Attn(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)


class CausalSelfAttention(Attn):
    """GPT-2's attention: q, k, v from one fused ``c_attn``, causal, heads of d / heads features."""

    def __init__(self, d, heads=4):
        super().__init__(d)
        self.heads = heads

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in self.c_attn(x).split(d, -1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)


class GPTBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(d), Attn(d), nn.LayerNorm(d), MLP(d)


class GPT(nn.Module):
    """``tie``: the head is the token embedding."""

    def __init__(self, n_layer=4, d=64, vocab=100, ctx=32, tie=False):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.h = nn.ModuleList([GPTBlock(d) for _ in range(n_layer)])
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        if tie:
            self.head.weight = self.wte.weight
