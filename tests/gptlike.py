"""GPT-2's layout from plain torch.nn (``wte``, ``wpe``, blocks ``h.i`` with ``attn.c_attn``/``c_proj``
and ``mlp.c_fc``/``c_proj``, ``ln_f``, a ``head``), shared by the recipe and audit tests. There is no
forward pass: the tests initialize and measure tensors."""

from torch import nn


class Attn(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)


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
