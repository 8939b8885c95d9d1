"""Model files: our single-file ``.safetensors`` format and the official HA-GAN ``.pth`` files.

Our format: the tensors of every network present, prefixed ``G.``, ``E.``, ``Sub_E.`` (and
``D.`` when asked for), with the JSON model card in the safetensors metadata under
``model_card``. The card's ``content_hash`` is a SHA-256 of the tensors, checked on load. The
card's ``family`` says which model class the file becomes: ``HAGANModel`` ("ha-gan") or
``SplitShuffleModel`` ("split-shuffle", networks G and D).

Official files (``G_iterN.pth``, ``E_iterN.pth``, ``Sub_E_iterN.pth``, ``D_iterN.pth``) hold either
``{'model': state_dict, 'optimizer': ...}`` with ``module.``-prefixed keys or a bare state dict.
They do not record their resolution, so the caller must give it. They are read with
``torch.load(weights_only=True)`` only: no arbitrary unpickling, ever.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import atomic_write
from .card import CT_WINDOW, ModelCard, default_spacing
from .errors import CheckpointError, ConfigError, first_line
from .model import MODEL_CLASSES, AnyModel, HAGANModel
from .model_input import official_preprocessing
from .models.hagan import HAGANConfig
from .volume import IntensityMapping

OFFICIAL_PARTS = ("G", "E", "Sub_E", "D")
_OFFICIAL_NAME = re.compile(r"^(G|E|Sub_E|D)_iter(\d+)\.pth$")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"  # legacy (pre-1.6) torch.save files start with a binary pickle


# -- our format ------------------------------------------------------------------------------


def save_model(model: AnyModel, path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Path:
    """Write every network of ``model`` and its card to one ``.safetensors`` file, atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: model files end in .safetensors")
    tensors = {
        f"{prefix}.{key}": value.detach().to("cpu", dtype if value.is_floating_point() else value.dtype).contiguous()
        for prefix, net in model.networks().items()
        for key, value in net.state_dict().items()
    }
    model.card.parts = tuple(model.networks())
    model.card.content_hash = tensor_hash(tensors)
    try:
        atomic_write(
            path, lambda tmp: save_file(tensors, str(tmp), metadata={"model_card": model.card.to_json()}), fsync=True
        )
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: could not write the model file ({first_line(error, 200)})") from None
    return path


def read_model_card(path: str | os.PathLike) -> ModelCard:
    """The card of one of our model files, without reading the weights."""
    path = _existing(path)
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable .safetensors model file ({first_line(error, 200)})") from None
    if "model_card" not in metadata:
        raise CheckpointError(f"{path}: .safetensors file without a model card (not made by this engine)")
    try:
        return ModelCard.from_json(metadata["model_card"])
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None


def load_model(
    path: str | os.PathLike,
    resolution: int | None = None,
    device: torch.device | str = "cpu",
    parts: tuple[str, ...] = ("G", "E", "Sub_E"),
) -> AnyModel:
    """Load our ``.safetensors`` file (either family), or official HA-GAN files (a file or their folder).

    ``parts`` names the networks wanted; the generator is required, the others are loaded when
    the file has them. Official files need ``resolution`` (128 or 256); our files record it.
    """
    path = _existing(path)
    if path.is_file() and path.suffix == ".safetensors":
        model = _load_ours(path, parts)
    else:
        if resolution is None:
            raise CheckpointError(f"{path}: official HA-GAN files do not record their resolution; give it (128 or 256)")
        model = load_official(path, resolution, parts)
    return model.to(device).eval()


def _load_ours(path: Path, parts: tuple[str, ...]) -> AnyModel:
    card = read_model_card(path)
    try:
        with safe_open(str(path), "pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: damaged model file ({first_line(error, 200)})") from None
    if not card.content_hash:
        raise CheckpointError(f"{path}: the model card has no content_hash, so the weights cannot be checked")
    if tensor_hash(tensors) != card.content_hash:
        raise CheckpointError(f"{path}: weights do not match the card's content hash (file modified or damaged)")
    present = {key.split(".", 1)[0] for key in tensors}
    if "G" not in present:
        raise CheckpointError(f"{path}: the file holds no generator (G.* tensors)")
    model = MODEL_CLASSES[card.family].build(card, tuple(p for p in parts if p in present), empty=True)
    what = f"{card.config.resolution}^{getattr(card.config, 'dims', 3)} {card.family}"
    for prefix, net in model.networks().items():
        state = {k[len(prefix) + 1 :]: v.float() for k, v in tensors.items() if k.startswith(prefix + ".")}
        load_checked(net, state, f"{path}", f"{what} {prefix}")
    return model


def tensor_hash(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the tensors, in name order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        value = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
        if value.numel():
            digest.update(memoryview(value.view(torch.uint8).numpy()))  # no copy of the bytes
    return "sha256:" + digest.hexdigest()


# -- official HA-GAN files --------------------------------------------------------------------


def find_official_files(path: str | os.PathLike) -> dict[str, Path]:
    """The official files that belong together: from their folder (newest iteration) or a G file."""
    path = _existing(path)
    if path.is_dir():
        iterations = [int(m.group(2)) for p in path.glob("G_iter*.pth") if (m := _OFFICIAL_NAME.match(p.name))]
        if not iterations:
            raise CheckpointError(f"{path}: no official generator file (G_iterN.pth) in this folder")
        folder, iteration = path, max(iterations)
    else:
        match = _OFFICIAL_NAME.match(path.name)
        if match is None:
            return {"G": path}  # a generator under another name
        if match.group(1) != "G":
            raise CheckpointError(f"{path}: give the generator file (G_iterN.pth) or the folder holding them")
        folder, iteration = path.parent, int(match.group(2))
    found = {part: folder / f"{part}_iter{iteration}.pth" for part in OFFICIAL_PARTS}
    return {part: file for part, file in found.items() if file.exists()}


def read_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """One official file -> a bare state dict (``module.`` prefixes removed)."""
    path = _existing(path)
    with open(path, "rb") as handle:
        head = handle.read(64)
    if not head:
        raise CheckpointError(f"{path}: empty file")
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC)):
        kind = "an HTML page (a failed download?)" if head.lstrip().startswith(b"<") else "not a PyTorch checkpoint"
        raise CheckpointError(f"{path}: {kind}")
    try:
        # zip checkpoints are memory-mapped: no copy of the weights, pages read as used
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=head.startswith(_ZIP_MAGIC))
    except Exception as error:
        raise CheckpointError(f"{path}: {_explain_load_error(error, head)}") from None
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors (neither {{'model': ...}} nor a bare one)")
    if not all(isinstance(key, str) for key in state):
        raise CheckpointError(f"{path}: a state dict's keys are layer names; this one has other keys")
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_official(path: str | os.PathLike, resolution: int, parts: tuple[str, ...] = ("G", "E", "Sub_E")) -> HAGANModel:
    """Official HA-GAN files (folder or G file) -> a model with an inferred model card."""
    if resolution not in (128, 256):
        raise CheckpointError(f"{path}: official HA-GAN models exist at 128 and 256, not {resolution}")
    files = find_official_files(path)
    if "G" not in files:
        raise CheckpointError(f"{path}: the generator file of this iteration is missing")
    states = {part: read_official_state_dict(file) for part, file in files.items() if part in parts or part == "G"}
    config = _infer_official_config(states, resolution, files["G"])
    card = ModelCard(
        config=config,
        name=f"HA-GAN official {resolution}",
        modality="ct",
        intensity=CT_WINDOW,
        spacing_mm=default_spacing(resolution),
        source="official HA-GAN checkpoint: " + ", ".join(f.name for f in files.values()),
        notes="Converted from the official release; modality, window and spacing are the reference "
        "defaults (CT, [-1024, 600] HU, nominal spacing), not read from the file.",
        preprocessing=official_preprocessing(resolution),
    )
    model = HAGANModel.build(card, tuple(states), empty=True)
    for part, net in model.networks().items():
        hint = _official_hint(part, states[part], resolution)
        load_checked(net, states[part], str(files[part]), f"{resolution}^3 official {part}", hint)
    # The same hash our files carry, so bookmarks and provenance can name an official model too.
    card.content_hash = tensor_hash(
        {f"{p}.{k}": v for p, state in states.items() if p != "D" for k, v in state.items()}
    )
    return model


def convert_official(
    source: str | os.PathLike,
    resolution: int,
    out: str | os.PathLike,
    modality: str = "ct",
    intensity: IntensityMapping | None = None,
    spacing_mm: tuple[float, float, float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Official files -> one of our model files (G, E and Sub_E; D is for training only)."""
    model = load_official(source, resolution)
    model.card.modality = modality
    if intensity is not None:
        model.card.intensity = intensity
    elif modality != "ct":
        model.card.intensity = IntensityMapping(0.0, 1.0, "")
    if spacing_mm is not None:
        model.card.spacing_mm = tuple(spacing_mm)
    mapping = model.card.intensity
    model.card.preprocessing = official_preprocessing(resolution, modality, (mapping.low, mapping.high))
    return save_model(model, out, dtype)


def _infer_official_config(states: dict, resolution: int, g_file: Path) -> HAGANConfig:
    g = states["G"]
    for key in ("fc1.weight", "tp_conv7.weight"):
        if key not in g:
            raise CheckpointError(f"{g_file}: no '{key}': not an HA-GAN generator")
    for part, key, dims in (("G", "fc1.weight", 2), ("G", "tp_conv7.weight", 5), ("Sub_E", "conv5.weight", 5)):
        tensor = states.get(part, {}).get(key)
        if tensor is not None and tensor.dim() != dims:
            raise CheckpointError(f"{g_file}: '{key}' of {part} has {tensor.dim()} dimensions, HA-GAN's has {dims}")
    if "conv7.weight" in states.get("D", {}) and states["D"]["conv7.weight"].dim() != 5:
        raise CheckpointError(f"{g_file}: 'conv7.weight' of D is not a 3-D convolution weight")
    fc_in = g["fc1.weight"].shape[1]
    latent_dim = (
        states["Sub_E"]["conv5.weight"].shape[0] if "conv5.weight" in states.get("Sub_E", {}) else min(fc_in, 1024)
    )
    widths = {"g_width": g["tp_conv7.weight"].shape[1]}
    if "conv5.weight" in states.get("Sub_E", {}):
        widths["e_width"] = states["Sub_E"]["conv5.weight"].shape[1] // 8
    if "conv7.weight" in states.get("D", {}):
        widths["d_width"] = states["D"]["conv7.weight"].shape[0] // 8
    try:
        return HAGANConfig(resolution=resolution, latent_dim=latent_dim, num_class=fc_in - latent_dim, **widths)
    except ConfigError as error:
        raise CheckpointError(f"{g_file}: not an HA-GAN layout ({error})") from None


def _official_hint(part: str, state: dict, resolution: int) -> str:
    """D and Sub_E reveal the resolution (only 256 has a first ``conv1``); G does not."""
    if part not in ("D", "Sub_E"):
        return ""
    looks = 256 if ("conv1.weight" in state) else 128
    return f" (this {part} file looks like a {looks}^3 model; check the resolution)" if looks != resolution else ""


# -- shared helpers ---------------------------------------------------------------------------


def load_checked(net: torch.nn.Module, state: dict, where: str, what: str, hint: str = "") -> None:
    """load_state_dict with a one-line error naming the first mismatch and its shapes."""
    expected = net.state_dict()
    wrong = [
        (k, tuple(state[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    more = lambda items: f" (and {len(items) - 1} more)" if len(items) > 1 else ""  # noqa: E731
    if wrong:
        key, got, want = wrong[0]
        raise CheckpointError(f"{where}: '{key}' has shape {got}, a {what} expects {want}{more(wrong)}{hint}")
    if missing:
        raise CheckpointError(f"{where}: '{missing[0]}' is missing for a {what}{more(missing)}{hint}")
    if unexpected:
        raise CheckpointError(f"{where}: unexpected '{unexpected[0]}' for a {what}{more(unexpected)}{hint}")
    # NaN or Inf weights would give a NaN or constant volume only after the whole forward pass
    broken = [k for k, v in state.items() if v.is_floating_point() and not all_finite(v)]
    if broken:
        raise CheckpointError(f"{where}: '{broken[0]}' holds NaN or infinite weights{more(broken)}")
    # assign: the file's tensors become the parameters (networks may be built empty, on "meta")
    net.load_state_dict({k: v.to(expected[k].dtype).contiguous() for k, v in state.items()}, assign=True)


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether no value is NaN or infinite: a sum is finite only then (or overflows: then the exact,
    8x slower elementwise check decides)."""
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def _explain_load_error(error: Exception, head: bytes) -> str:
    text = str(error)
    if "central directory" in text or "unexpected EOF" in text or isinstance(error, EOFError):
        return "truncated or damaged file (incomplete archive); download it again"
    if "Weights only load failed" in text:
        return "holds Python objects other than tensors; refusing to unpickle it (weights_only)"
    if isinstance(error, KeyError) or head.startswith(_PICKLE_MAGIC):
        return f"not a valid PyTorch checkpoint ({type(error).__name__}: {first_line(error, 200)})"
    return f"cannot be read as a PyTorch checkpoint ({first_line(error, 200)})"


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    return path
