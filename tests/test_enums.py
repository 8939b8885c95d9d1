"""The named choices are string enums inside the engine, and plain strings wherever a user or a file sees them."""

import json
from dataclasses import asdict

import pytest
import torch

from engine.card import ModelCard
from engine.cli import main
from engine.enums import Family, Part, Precision
from engine.models.hagan import HAGANConfig
from engine.training.config import TrainConfig, train_arguments


def test_sample_writes_plain_part_and_precision_names(tmp_path, tiny_model_file):
    out = tmp_path / "samples"
    assert (
        main(["sample", "--checkpoint", str(tiny_model_file), "--seeds", "0", "--part", "anchor", "--out", str(out)])
        == 0
    )
    assert main(["sample", "--checkpoint", str(tiny_model_file), "--seed", "1", "--out", str(out)]) == 0  # defaults
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["seed0000_anchor.nii.gz", "seed0001_full.nii.gz"]
    for name, part in (("seed0000_anchor.json", "anchor"), ("seed0001_full.json", "full")):
        text = (out / name).read_text()
        provenance = json.loads(text)["provenance"]
        assert provenance["operation"] == part and provenance["precision"] == "fp32"
        assert "Part." not in text and "Precision." not in text


@pytest.mark.parametrize(
    "args, shown",
    [
        (["sample", "--part", "whole"], "(choose from 'full', 'anchor', 'slab', 'stitched')"),
        (["sample", "--precision", "fp8"], "(choose from 'auto', 'fp32', 'tf32', 'bf16', 'fp16')"),
        (["gallery", "--level", "half"], "(choose from 'anchor', 'full')"),
        (["train", "--phantoms", "knee"], "(choose from 'chest-ct', 'brain-mri')"),
        (["train", "--precision", "tf32"], "(choose from 'fp32', 'bf16', 'fp16')"),
    ],
)
def test_refused_choices_are_listed_as_plain_strings(capsys, args, shown):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert shown in error and "<" not in error


def test_model_card_json_holds_the_family_as_a_plain_string():
    card = ModelCard(config=HAGANConfig(resolution=32, latent_dim=16, g_width=16, d_width=8, e_width=8))
    assert card.family == Family.HA_GAN
    text = card.to_json()
    assert json.loads(text)["family"] == "ha-gan" and "Family." not in text
    assert ModelCard.from_dict(json.loads(text)).family == "ha-gan"


def test_run_settings_built_from_members_stay_plain_strings(tmp_path):
    """The settings are pickled into run checkpoints, which load with weights_only=True: no enum may reach them."""
    config = TrainConfig(
        data="phantoms:chest-ct",
        out=str(tmp_path / "run"),
        family=Family.SPLIT_SHUFFLE,
        precision=Precision.BF16,
        resolution=32,
        preset="tiny",
    )
    values = asdict(config)
    assert type(values["family"]) is str and type(values["precision"]) is str
    torch.save({"config": values}, tmp_path / "checkpoint.pt")
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["config"] == values
    config.save(tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["family"] == "split-shuffle" and saved["precision"] == "bf16"
    arguments = " ".join(train_arguments(config))
    assert "--family split-shuffle" in arguments and "--precision bf16" in arguments


def test_members_are_their_strings():
    assert Part.FULL == "full" and f"seed{3:04d}_{Part.SLAB}" == "seed0003_slab"
    assert {Part.ANCHOR: 1}["anchor"] == 1 and json.dumps({Part.FULL: Precision.FP32}) == '{"full": "fp32"}'
