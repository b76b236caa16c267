"""Model factories for `initlab diagnose --model mymodels:FACTORY`, run from this folder (the README's
examples): a CNN and a small transformer language model, as PyTorch builds them."""

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
