"""Model factories for `initlab diagnose --model mymodels:FACTORY`, run from this folder (the README's
examples): a CNN, a small transformer language model and a GPT-2-style model, as PyTorch builds them
(and, for `initlab audit`, the GPT-2-style one initialized by its recipe)."""

import torch
from torch import nn


def make_cnn():
    """Eight 3x3 convolutions of 16 channels with ReLU, average pooling, a Linear readout (3 x 16 x 16 images)."""
    layers, c = [], 3
    for _ in range(8):
        layers += [nn.Conv2d(c, 16, 3, padding=1), nn.ReLU()]
        c = 16
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


class TinyLM(nn.Module):
    """Token ids -> Embedding -> 4 post-norm TransformerEncoderLayers (d = 64) -> a Linear over the vocabulary."""

    def __init__(self, vocab=1000, d=64, layers=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True),
                                             layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        return self.head(self.encoder(self.embed(ids)))


def make_lm():
    """The TinyLM above, on token ids of a 1000-word vocabulary."""
    return TinyLM()


class _Attn(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):  # causal self-attention, GPT-2's layout
        b, t, d = x.shape
        q, k, v = self.c_attn(x).view(b, t, 3, 4, d // 4).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), _Attn(d), nn.LayerNorm(d)
        self.mlp = nn.Sequential()
        self.mlp.c_fc, self.mlp.act, self.mlp.c_proj = nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    """GPT-2's layout from plain torch.nn (wte, wpe, blocks h.i with attn.c_attn/c_proj and
    mlp.c_fc/c_proj, ln_f, a head), 12 blocks of width 64."""

    def __init__(self, vocab=1000, d=64, n_layer=12, ctx=64):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.h = nn.ModuleList([_Block(d) for _ in range(n_layer)])
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for block in self.h:
            x = block(x)
        return self.head(self.ln_f(x))


def make_gpt():
    """TinyGPT as PyTorch builds it (each layer's default reset: not GPT-2's recipe)."""
    return TinyGPT()


def make_gpt2_initialized():
    """TinyGPT initialized by GPT-2's recipe (`initlab.initialize(model, "gpt2", n_layer=12)`)."""
    import initlab

    model = TinyGPT()
    initlab.initialize(model, "gpt2", n_layer=12, seed=0)
    return model
