"""The same DCGAN and GAN step in PyTorch, for a side-by-side throughput figure.

Architecture as tfinpaint's (`tfinpaint/models.py`): G is a dense layer to 4x4x8c, batch
norm, ReLU, then 5x5 stride-2 transposed convolutions ('same' padding) to tanh; D is 5x5
stride-2 convolutions with LeakyReLU 0.2, batch norm on all but the first, and a dense
logit. The step is pytorch/examples' DCGAN step: D on a real and a generated batch, one
Adam update, then G's update through D on the same generated batch.

torch is not a dependency of tfinpaint: this module is imported only when it is installed.
"""

import time

import torch
from torch import nn

KERNEL, PAD = 5, 2


def _up(c_in, c_out, bn=True):
    layers = [nn.ConvTranspose2d(c_in, c_out, KERNEL, 2, PAD, output_padding=1, bias=not bn)]
    return layers + [nn.BatchNorm2d(c_out, momentum=0.1, eps=1e-5), nn.ReLU(True)] if bn else layers


class Generator(nn.Module):
    def __init__(self, width=64, latent_dim=100, channels=3):
        super().__init__()
        self.top = width * 8
        self.project = nn.Linear(latent_dim, 16 * self.top, bias=False)
        self.body = nn.Sequential(
            nn.BatchNorm2d(self.top, eps=1e-5),
            nn.ReLU(True),
            *_up(self.top, self.top // 2),
            *_up(self.top // 2, self.top // 4),
            *_up(self.top // 4, self.top // 8),
            *_up(self.top // 8, channels, bn=False),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.body(self.project(z).view(-1, self.top, 4, 4))


class Discriminator(nn.Module):
    def __init__(self, width=64, channels=3):
        super().__init__()
        layers, c_in = [], channels
        for i in range(4):
            c_out = width * 2**i
            layers.append(nn.Conv2d(c_in, c_out, KERNEL, 2, PAD, bias=i == 0))
            if i:
                layers.append(nn.BatchNorm2d(c_out, eps=1e-5))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * 16, 1))

    def forward(self, x):
        return self.body(x)


def images_per_second(width=64, batch_size=64, steps=20, warmup=3, latent_dim=100) -> float:
    """Training images/s of pytorch/examples' DCGAN step on random real batches."""
    torch.manual_seed(0)
    g, d = Generator(width, latent_dim), Discriminator(width)
    g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loss = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch_size, 1), torch.zeros(batch_size, 1)
    real = torch.rand(batch_size, 3, 64, 64) * 2 - 1

    def step():
        d.zero_grad()
        z = torch.rand(batch_size, latent_dim) * 2 - 1
        fake = g(z)
        d_loss = loss(d(real), ones) + loss(d(fake.detach()), zeros)
        d_loss.backward()
        d_opt.step()
        g.zero_grad()
        g_loss = loss(d(fake), ones)
        g_loss.backward()
        g_opt.step()

    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - t)
