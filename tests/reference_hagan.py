"""An independent, straightforward HA-GAN forward pass for tests.

Built only from the official key/shape listing (tests/data/hagan_official_state_dict.json) and the
published layer description, with plain functional ops over a state dict: it shares no code with engine.models.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

# Every key and shape of the official HA-GAN checkpoints (128 and 256).
LISTING = Path(__file__).resolve().parent / "data" / "hagan_official_state_dict.json"


def official_listing() -> dict:
    return json.loads(LISTING.read_text())


def official_keys(resolution: int, network: str) -> dict[str, tuple[int, ...]]:
    entries = official_listing()["variants"][str(resolution)][network]["state_dict"]
    return {e["key"]: tuple(e["shape"]) for e in entries}


def random_official_state(resolution: int, network: str, seed: int, num_class: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the official layout, scaled so activations stay in a useful range."""
    shapes = official_keys(resolution, network)
    if num_class and network == "Generator":
        shapes["fc1.weight"] = (shapes["fc1.weight"][0], shapes["fc1.weight"][1] + num_class)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith(".u0"):
            value = torch.randn(shape, generator=gen)
        elif key.endswith(".sv0"):
            value = torch.ones(shape)
        elif len(shape) > 1:  # weights: unit-variance outputs
            fan_in = 1
            for s in shape[1:]:
                fan_in *= s
            value = torch.randn(shape, generator=gen) * (1.0 / fan_in) ** 0.5
        elif key.split(".")[-2].startswith("bn") and key.endswith("weight"):
            value = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        else:
            value = 0.1 * torch.randn(shape, generator=gen)
        state[key] = value
    return state


def _block(sd, x, conv, norm, up):
    if up:
        x = F.interpolate(x, scale_factor=2)  # default mode: nearest
    x = F.conv3d(x, sd[f"{conv}.weight"], sd[f"{conv}.bias"], padding=1)
    return F.relu(F.group_norm(x, 8, sd[f"{norm}.weight"], sd[f"{norm}.bias"]))


def reference_features(sd, z, resolution, onehot=None):
    """G^A: fc1 -> (512, 4^3) -> tp_conv1..5; upsampling before 2, 3, 4 and (256 only) 5."""
    if onehot is not None:
        z = torch.cat([z, onehot], dim=1)
    x = F.linear(z, sd["fc1.weight"], sd["fc1.bias"]).view(-1, 512, 4, 4, 4)
    x = _block(sd, x, "tp_conv1", "bn1", up=False)
    x = _block(sd, x, "tp_conv2", "bn2", up=True)
    x = _block(sd, x, "tp_conv3", "bn3", up=True)
    x = _block(sd, x, "tp_conv4", "bn4", up=True)
    return _block(sd, x, "tp_conv5", "bn5", up=resolution == 256)


def reference_high_res(sd, h):
    x = _block(sd, h, "tp_conv6", "bn6", up=True)
    x = F.interpolate(x, scale_factor=2)
    return torch.tanh(F.conv3d(x, sd["tp_conv7.weight"], sd["tp_conv7.bias"], padding=1))


def reference_low_res(sd, h):
    x = _block(sd, h, "sub_G.tp_conv1", "sub_G.bn1", up=False)
    x = _block(sd, x, "sub_G.tp_conv2", "sub_G.bn2", up=False)
    return torch.tanh(F.conv3d(x, sd["sub_G.tp_conv3.weight"], sd["sub_G.tp_conv3.bias"], padding=1))


@torch.no_grad()
def reference_eval(sd, z, resolution, onehot=None):
    """Official eval mode: G^A then G^H on the whole latent feature map."""
    return reference_high_res(sd, reference_features(sd, z, resolution, onehot))


@torch.no_grad()
def reference_train(sd, z, resolution, crop, onehot=None):
    """Official train mode: (slab for crop index ``crop``, low-resolution volume)."""
    h = reference_features(sd, z, resolution, onehot)
    c = crop // 4
    return reference_high_res(sd, h[:, :, c : c + resolution // 32]), reference_low_res(sd, h)


def write_official_checkpoint(
    folder: Path,
    resolution: int,
    iteration: int = 80000,
    wrapped: bool = True,
    num_class: int = 0,
    networks=("Generator", "Encoder", "Sub_Encoder", "Discriminator"),
):
    """Official-format files (G/E/Sub_E/D_iterN.pth) with random weights; returns the state dicts."""
    names = {"Generator": "G", "Encoder": "E", "Sub_Encoder": "Sub_E", "Discriminator": "D"}
    states = {}
    for i, network in enumerate(networks):
        state = random_official_state(resolution, network, seed=100 + i, num_class=num_class)
        states[names[network]] = state
        prefixed = {"module." + k: v for k, v in state.items()}
        payload = {"model": prefixed, "optimizer": {"state": {}, "param_groups": []}} if wrapped else prefixed
        torch.save(payload, folder / f"{names[network]}_iter{iteration}.pth")
    return states
