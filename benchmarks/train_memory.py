"""Training memory and time: HA-GAN's hierarchical step against a full-resolution baseline.

Both use the same generator layers and batch. HA-GAN's G and D updates see one S/8 slab plus the
S/4 anchor; the baseline generates the whole S^3 volume (G^A then G^H on the full feature map)
and judges it with a discriminator on the full volume (the same spectrally normalised stride-2
convolutions down to 4^3). Rows: the GAN updates alone (D then G) for both, and HA-GAN's whole
iteration (plus E^H and E^G). Each case runs in its own process; peak memory is that process's
peak resident set on the CPU, or torch.cuda.max_memory_allocated on CUDA.

    python benchmarks/train_memory.py [--sizes 64 128] [--device cpu|cuda] [--preset small] [--batch 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.models.hagan import Discriminator, Encoder, Generator, HAGANConfig, SubEncoder  # noqa: E402
from engine.models.layers import SNConv3d  # noqa: E402
from engine.training.config import PRESETS  # noqa: E402


class FullVolumeDiscriminator(nn.Module):
    """The baseline's D: stride-2 4^3 convolutions from S^3 to 4^3, then a 4^3 kernel to a logit."""

    def __init__(self, resolution: int, width: int):
        super().__init__()
        layers, channels, size = [], 1, resolution
        out = width
        while size > 4:
            layers += [SNConv3d(channels, out, 4, 2, 1), nn.LeakyReLU(0.2)]
            channels, out, size = out, min(out * 2, 32 * width), size // 2
        layers.append(SNConv3d(channels, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        return self.net(volume).flatten(1)


def run_case(case: str, size: int, preset: str, batch: int, device: str, iterations: int) -> dict:
    """Time per iteration and peak memory of one case (run inside a fresh process)."""
    torch.manual_seed(0)
    config = HAGANConfig(resolution=size, **PRESETS[preset])
    dev = torch.device(device)
    G, bce = Generator(config).to(dev), F.binary_cross_entropy_with_logits
    opt_g = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.0, 0.999))
    x = torch.rand(batch, 1, size, size, size, device=dev) * 2 - 1
    t = config.slab_thickness
    if case == "baseline":
        D = FullVolumeDiscriminator(size, 2 * config.d_width).to(dev)
    else:
        D = Discriminator(config).to(dev)
        E, sub_E = Encoder(config).to(dev), SubEncoder(config).to(dev)
        opt_e = torch.optim.Adam([*E.parameters(), *sub_E.parameters()], 1e-4, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 4e-4, betas=(0.0, 0.999))

    def judge(z: torch.Tensor, crop: int) -> torch.Tensor:
        features = G.features(z)
        if case == "baseline":
            return D(G.full(features))
        return D(G.slab(features, crop), G.anchor(features), crop).logit

    def real_logit(crop: int) -> torch.Tensor:
        if case == "baseline":
            return D(x)
        return D(x[:, :, crop : crop + t], F.avg_pool3d(x, 4), crop).logit

    def iteration() -> None:
        crop = 4 * int(torch.randint(0, config.max_slab_start // 4 + 1, (1,)))
        z = torch.randn(batch, config.latent_dim, device=dev)
        with torch.no_grad():
            fake_features = G.features(z)
        real = real_logit(crop)
        if case == "baseline":
            fake = D(G.full(fake_features))
        else:
            fake = D(G.slab(fake_features, crop), G.anchor(fake_features), crop).logit
        opt_d.zero_grad()
        (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))).backward()
        opt_d.step()
        out = judge(torch.randn(batch, config.latent_dim, device=dev), crop)
        opt_g.zero_grad()
        bce(out, torch.ones_like(out)).backward()
        opt_g.step()
        if case == "hagan-full-iteration":
            slab = x[:, :, crop : crop + t]
            e_loss = F.l1_loss(G.high_res(E(slab)), slab)
            feats = torch.cat([E(x[:, :, k * t : (k + 1) * t]).detach() for k in range(8)], dim=2)
            z_hat = sub_E(feats)
            sub_loss = F.l1_loss(G.slab(G.features(z_hat), crop), slab)
            opt_e.zero_grad()
            (e_loss + sub_loss).backward()
            opt_e.step()

    iteration()  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(iterations):
        iteration()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / iterations
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
    return {"seconds": seconds, "peak_gib": peak}


def measure(case: str, size: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", case, "--sizes", str(size), "--preset", args.preset]
    command += ["--batch", str(args.batch), "--device", args.device, "--iterations", str(args.iterations)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    output, errors = child.stdout.read().decode(), child.stderr.read().decode()
    if status != 0:
        return {"error": (errors.strip().splitlines() or ["failed"])[-1]}
    result = json.loads(output.strip().splitlines()[-1])
    if result["peak_gib"] is None:
        result["peak_gib"] = usage.ru_maxrss / 2**20  # KiB on Linux
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="small")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.sizes[0], args.preset, args.batch, args.device, args.iterations)))
        return
    print(f"device {args.device}, preset {args.preset} ({PRESETS[args.preset]}), batch {args.batch}, float32")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores\n")
    header = f"{'size':<6}{'case':<34}{'s / iteration':>15}{'peak memory':>14}{'vs baseline':>13}"
    print(header + "\n" + "-" * len(header))
    labels = {
        "baseline": "full-resolution baseline (D + G)",
        "hagan-gan": "HA-GAN (D + G)",
        "hagan-full-iteration": "HA-GAN whole iteration (+ E, Sub_E)",
    }
    for size in args.sizes:
        results = {case: measure(case, size, args) for case in labels}
        base = results["baseline"]
        for case, label in labels.items():
            r = results[case]
            if "error" in r:
                print(f"{size:<6}{label:<34}{'failed: ' + r['error'][:60]:>42}")
                continue
            ratio = f"{r['peak_gib'] / base['peak_gib']:.2f}x mem" if "error" not in base else "-"
            print(f"{size:<6}{label:<34}{r['seconds']:>13.2f} s{r['peak_gib']:>10.2f} GiB{ratio:>13}")
    print("\npeak memory: whole process on the CPU (includes torch itself, ~0.3 GiB); GPU: allocated tensors")


if __name__ == "__main__":
    main()
