"""The baseline an artist would otherwise follow: a plain PyTorch DCGAN written from the paper.

Radford, Metz and Chintala (2015), as the paper describes it and nothing more: a generator of
fractionally-strided convolutions with BatchNorm and ReLU and a tanh output; a discriminator of
strided convolutions with LeakyReLU(0.2) and BatchNorm (not on its first layer) and a sigmoid;
weights from N(0, 0.02); Adam at 0.0002 with beta1 0.5; mini-batches of 128; z of 100 from a normal
distribution. Unconditional, no flips, RGB. It trains on a folder of images for a budget of CPU
minutes (this process's CPU time, as `artctl train --budget-clock cpu` counts), then renders the
seed contract's latents and scores them with artctl's pixel-art scores, so it sits in the same table
as artctl's recipes.

    .venv/bin/python -m bench.textbook_dcgan --data data/nouns --minutes 12 --out runs/arms/textbook
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

Z = 100


def generator() -> nn.Module:
    def up(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]

    return nn.Sequential(
        nn.ConvTranspose2d(Z, 256, 4, 1, 0, bias=False),  # 1 -> 4
        nn.BatchNorm2d(256),
        nn.ReLU(True),
        *up(256, 128),  # 8
        *up(128, 64),  # 16
        nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),  # 32
        nn.Tanh(),
    )


def discriminator() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 64, 4, 2, 1, bias=False),  # 16
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False),  # 8
        nn.BatchNorm2d(128),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(128, 256, 4, 2, 1, bias=False),  # 4
        nn.BatchNorm2d(256),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(256, 1, 4, 1, 0, bias=False),
        nn.Sigmoid(),
    )


def init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def load_folder(folder: Path) -> torch.Tensor:
    files = sorted(p for p in folder.rglob("*.png"))
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()  # uint8, scaled per batch


def train(data: torch.Tensor, minutes: float, seed: int = 0, batch: int = 128) -> tuple[nn.Module, dict]:
    torch.manual_seed(seed)
    G, D = generator(), discriminator()
    G.apply(init)
    D.apply(init)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    start, steps = time.process_time(), 0
    wall = time.perf_counter()
    while time.process_time() - start < minutes * 60:
        real = data[torch.randint(0, len(data), (batch,))].float() / 127.5 - 1.0
        fake = G(torch.randn(batch, Z, 1, 1))
        loss_d = bce(D(real).flatten(), ones) + bce(D(fake.detach()).flatten(), zeros)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = bce(D(fake).flatten(), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        steps += 1
    info = {
        "steps": steps,
        "kimg": steps * batch / 1000,
        "cpu_minutes": (time.process_time() - start) / 60,
        "wall_minutes": (time.perf_counter() - wall) / 60,
    }
    return G.eval(), info


@torch.no_grad()
def render(G: nn.Module, n: int) -> np.ndarray:
    """Seeds 0..n-1 through the seed contract's latents (artctl-latent-v1), as uint8 NHWC."""
    from artctl.seeds import latent

    out = []
    for start in range(0, n, 256):
        z = np.stack([latent(s, Z) for s in range(start, min(n, start + 256))])
        x = G(torch.from_numpy(z).reshape(-1, Z, 1, 1))
        out.append(((x + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=12.0, help="CPU minutes (this process, all threads)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=2000, help="samples to score")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_folder(args.data)
    G, info = train(data, args.minutes)
    images = render(G, args.n)
    from artctl_trainer.datasets import read_palette_file
    from artctl_trainer.nouns import load_art
    from artctl_trainer.pixelart import pixel_art_scores

    palette = read_palette_file(args.data / "palette.json")
    art = load_art() if (args.data / "parts.jsonl").is_file() else None
    scores = pixel_art_scores(images, palette, None, art)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(G.state_dict(), args.out / "G.pt")
    grid = images[:64].reshape(8, 8, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(256, 256, 3)
    Image.fromarray(grid).resize((1024, 1024), Image.Resampling.NEAREST).save(args.out / "samples.png")
    np.save(args.out / "samples.npy", images)
    doc = {"arm": "textbook-dcgan", **info, "threads": args.threads, "pixel_art": scores}
    (args.out / "result.json").write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
