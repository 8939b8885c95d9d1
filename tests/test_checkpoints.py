"""Model files: official layouts in every form, our format, and every kind of bad file."""

import pytest
import torch
from reference_hagan import random_official_state, write_official_checkpoint

from engine.card import CT_WINDOW, ModelCard
from engine.checkpoints import (
    convert_official,
    find_official_files,
    load_model,
    read_model_card,
    read_official_state_dict,
    save_model,
)
from engine.errors import CheckpointError
from engine.model import HAGANModel
from engine.models.hagan import HAGANConfig


@pytest.fixture(scope="module")
def official_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    states = write_official_checkpoint(folder, 128, iteration=80000)
    write_official_checkpoint(folder, 128, iteration=30500, networks=("Generator",))
    return folder, states


def test_a_folder_picks_the_newest_iteration_with_its_siblings(official_folder):
    folder, _ = official_folder
    files = find_official_files(folder)
    assert {p: f.name for p, f in files.items()} == {
        "G": "G_iter80000.pth",
        "E": "E_iter80000.pth",
        "Sub_E": "Sub_E_iter80000.pth",
        "D": "D_iter80000.pth",
    }
    assert set(find_official_files(folder / "G_iter30500.pth")) == {"G"}


def test_official_files_load_every_network_exactly(official_folder):
    folder, states = official_folder
    model = load_model(folder, resolution=128, parts=("G", "E", "Sub_E", "D"))
    for part, net in model.networks().items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, states[part][key]), (part, key)
    assert model.card.config == HAGANConfig.official(128)
    assert model.card.content_hash.startswith("sha256:")


def test_bare_state_dicts_without_the_wrapper_load_too(tmp_path):
    states = write_official_checkpoint(tmp_path, 128, wrapped=False, networks=("Generator", "Encoder"))
    model = load_model(tmp_path / "G_iter80000.pth", resolution=128)
    assert torch.equal(model.generator.fc1.weight, states["G"]["fc1.weight"])
    assert model.encoder is not None and model.sub_encoder is None


def test_official_files_need_their_resolution(official_folder):
    with pytest.raises(CheckpointError, match="do not record their resolution"):
        load_model(official_folder[0])


def test_the_wrong_resolution_is_named(official_folder):
    with pytest.raises(CheckpointError, match=r"looks like a 128\^3 model"):
        load_model(official_folder[0], resolution=256)
    with pytest.raises(CheckpointError, match="exist at 128 and 256, not 64"):
        load_model(official_folder[0], resolution=64)  # G alone would load at any size


def test_conversion_round_trips_the_weights_and_card(official_folder, tmp_path):
    folder, states = official_folder
    out = convert_official(folder, 128, tmp_path / "m.safetensors", spacing_mm=(0.7, 0.7, 1.25))
    card = read_model_card(out)
    assert card.parts == ("G", "E", "Sub_E") and card.spacing_mm == (0.7, 0.7, 1.25)
    assert card.intensity == CT_WINDOW and "G_iter80000.pth" in card.source
    model = load_model(out)
    assert torch.equal(model.sub_encoder.conv5.weight, states["Sub_E"]["conv5.weight"])
    # the converted file and the official files are the same model: same content hash
    assert card.content_hash == load_model(folder, resolution=128).card.content_hash


def test_half_precision_files_are_half_the_size_and_close(tmp_path):
    model = HAGANModel.build(ModelCard(config=HAGANConfig(resolution=64, g_width=16, d_width=8, e_width=8)))
    full = save_model(model, tmp_path / "f32.safetensors")
    half = save_model(model, tmp_path / "f16.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded = load_model(half)
    assert (loaded.generator.fc1.weight - model.generator.fc1.weight).abs().max() < 1e-3


def test_a_modified_file_fails_its_content_hash(tmp_path):
    model = HAGANModel.build(ModelCard(config=HAGANConfig(resolution=32, g_width=16, d_width=8, e_width=8)))
    path = save_model(model, tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="content hash"):
        load_model(path)


def test_save_is_atomic_and_leaves_no_partial_file(tmp_path, monkeypatch):
    model = HAGANModel.build(ModelCard(config=HAGANConfig(resolution=32, g_width=16, d_width=8, e_width=8)))
    path = save_model(model, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("engine.checkpoints.save_file", crash)
    with pytest.raises(CheckpointError, match=r"could not write the model file \(disk full\)"):
        save_model(model, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


# -- bad files: one line naming the cause ---------------------------------------------------


def _bad_files(folder, official_folder):
    g = (official_folder / "G_iter80000.pth").read_bytes()
    cases = {
        "text.pth": (b"model weights, honestly\n", "not a PyTorch checkpoint"),
        "page.pth": (b"<!DOCTYPE html><html>Virus scan warning</html>", "HTML page"),
        "truncated.pth": (g[: len(g) // 2], "truncated"),
        "empty.pth": (b"", "empty file"),
    }
    for name, (content, _) in cases.items():
        (folder / name).write_bytes(content)
    return {name: cause for name, (_, cause) in cases.items()}


def test_bad_official_files_give_one_line_causes(tmp_path, official_folder):
    for name, cause in _bad_files(tmp_path, official_folder[0]).items():
        with pytest.raises(CheckpointError) as error:
            read_official_state_dict(tmp_path / name)
        message = str(error.value)
        assert cause in message and name in message and "\n" not in message


def test_a_state_dict_of_another_shape_names_the_tensor_and_both_shapes(tmp_path):
    state = random_official_state(128, "Generator", seed=0)
    state["tp_conv3.weight"] = torch.zeros(5, 5, 3, 3, 3)
    torch.save({"model": state}, tmp_path / "G_iter1.pth")
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "G_iter1.pth", resolution=128)
    message = str(error.value)
    assert "G_iter1.pth: 'tp_conv3.weight' has shape (5, 5, 3, 3, 3)" in message
    assert "expects (256, 512, 3, 3, 3)" in message and "\n" not in message


def test_objects_beyond_tensors_are_never_unpickled(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"model": {"fc1.weight": torch.zeros(1)}, "x": Payload()}, tmp_path / "G_iter1.pth")
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        read_official_state_dict(tmp_path / "G_iter1.pth")


def test_our_format_rejects_damaged_and_foreign_files(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable .safetensors"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "missing.safetensors")
