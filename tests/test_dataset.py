"""VolumeFolder, EpochSampler and endless batches: both folder kinds, labels, checks, augmentation, resume."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from engine.data.dataset import (
    EpochSampler,
    VolumeFolder,
    augment_volume,
    batches,
    seeded_generator,
)
from engine.data.preprocess import MANIFEST, PreprocessSettings, preprocess_folder
from engine.errors import ConfigError

SIZE = 16
NAMES = [f"case{n}" for n in range(5)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A NIfTI folder of five small CT volumes (LPS, anisotropic) and its preprocessed copy."""
    root = tmp_path_factory.mktemp("data")
    (root / "nifti").mkdir()
    rng = np.random.default_rng(0)
    for n, name in enumerate(NAMES):
        hu = rng.uniform(-1100, 700, size=(16, 18, 20 + n)).astype(np.float32)
        affine = np.diag([-0.9, -0.8, 1.0 + 0.1 * n, 1.0])
        nib.save(nib.Nifti1Image(hu, affine), str(root / "nifti" / f"{name}.nii.gz"))
    preprocess_folder(root / "nifti", root / "pre", PreprocessSettings("ct", size=SIZE), workers=1, progress=False)
    return root / "nifti", root / "pre"


def copy_folder(source, target):
    shutil.copytree(source, target)
    return target


def write_labels(path, rows):
    path.write_text("file,label\n" + "".join(f"{f},{label}\n" for f, label in rows))
    return path


def test_preprocessed_and_nifti_folders_give_the_same_items(folders):
    nifti, pre = folders
    a = VolumeFolder(pre)
    b = VolumeFolder(nifti, modality="ct", size=SIZE)
    assert len(a) == len(b) == 5 and [p.name for p in a.paths] == [f"{n}.npy" for n in NAMES]
    for index in range(5):
        (va, la), (vb, lb) = a[index], b[index]
        assert va.shape == vb.shape == (1, SIZE, SIZE, SIZE) and va.dtype == vb.dtype == torch.float32
        assert va.min() >= -1 and va.max() <= 1 and la == lb == -1
        assert torch.allclose(va, vb, atol=1e-3)  # float16 storage


def test_nifti_folder_needs_a_modality_and_settings_must_match_the_manifest(folders, tmp_path):
    nifti, pre = folders
    with pytest.raises(ConfigError, match="modality"):
        VolumeFolder(nifti)
    with pytest.raises(ConfigError, match="size=16, not 32"):
        VolumeFolder(pre, size=32)
    with pytest.raises(ConfigError, match="modality"):
        VolumeFolder(pre, modality="mri")
    assert len(VolumeFolder(pre, modality="ct", window=(-1024, 600), size=SIZE)) == 5
    with pytest.raises(ConfigError, match="no usable volumes"):
        VolumeFolder(tmp_path)


def test_labels_from_a_csv_next_to_the_data_or_given_explicitly(folders, tmp_path):
    nifti, pre = folders
    pre = copy_folder(pre, tmp_path / "pre")
    write_labels(pre / "labels.csv", [(f"{n}.npy", i % 2) for i, n in enumerate(NAMES)])
    data = VolumeFolder(pre)
    assert data.labels == [0, 1, 0, 1, 0] and data[3][1] == 1 and data.num_classes == 2
    # NIfTI names work for both folder kinds
    explicit = write_labels(tmp_path / "classes.csv", [(f"{n}.nii.gz", 2) for n in NAMES])
    assert VolumeFolder(pre, labels=explicit).labels == [2] * 5
    assert VolumeFolder(nifti, modality="ct", size=SIZE, labels=explicit).labels == [2] * 5
    assert VolumeFolder(pre, labels=False).labels == [-1] * 5


def test_a_file_without_a_label_is_named_at_construction(folders, tmp_path):
    _, pre = folders
    partial = write_labels(tmp_path / "partial.csv", [(f"{n}.npy", 0) for n in NAMES if n != "case3"])
    with pytest.raises(ConfigError, match=r"no label for 1 file\(s\): case3\.npy"):
        VolumeFolder(pre, labels=partial)
    (tmp_path / "bad.csv").write_text("name,class\ncase0.npy,1\n")
    with pytest.raises(ConfigError, match="header 'file,label'"):
        VolumeFolder(pre, labels=tmp_path / "bad.csv")
    (tmp_path / "word.csv").write_text("file,label\ncase0.npy,lung\n")
    with pytest.raises(ConfigError, match="line 2: label 'lung'"):
        VolumeFolder(pre, labels=tmp_path / "word.csv")
    with pytest.raises(ConfigError, match="no such labels file"):
        VolumeFolder(pre, labels=tmp_path / "absent.csv")


def test_augmentation_is_reproducible_per_seed_epoch_index_and_changes_the_data(folders):
    _, pre = folders
    plain, one, two = (
        VolumeFolder(pre),
        VolumeFolder(pre, augment=True, seed=3),
        VolumeFolder(pre, augment=True, seed=3),
    )
    assert torch.equal(one[(1, 2)][0], two[(1, 2)][0])
    assert not torch.equal(one[(1, 2)][0], one[(2, 2)][0])
    assert not torch.equal(one[(1, 2)][0], plain[2][0])
    assert not torch.equal(one[(1, 2)][0], VolumeFolder(pre, augment=True, seed=4)[(1, 2)][0])
    one.set_epoch(1)
    assert torch.equal(one[2][0], two[(1, 2)][0])
    assert all(one[(e, 0)][0].abs().max() <= 1 for e in range(4))


def test_augmentation_flips_left_right_along_network_w():
    volume = torch.full((1, SIZE, SIZE, SIZE), -0.5)
    volume[0, 4, 5, 2] = 0.9
    columns = set()
    for epoch in range(16):
        out = augment_volume(volume.clone(), seeded_generator(2, 0, epoch, 0))
        d, h, w = np.unravel_index(int(out[0].argmax()), (SIZE,) * 3)
        assert (d, h) == (4, 5) and out.min() >= -1 and out.max() <= 1
        columns.add(int(w))
    assert columns == {2, SIZE - 1 - 2}


def test_validate_drops_bad_arrays_with_a_warning_or_refuses_them_when_strict(folders, tmp_path):
    _, pre = folders
    pre = copy_folder(pre, tmp_path / "pre")
    np.save(pre / "case1.npy", np.zeros((SIZE,) * 3, np.float16))
    np.save(pre / "case2.npy", np.zeros((SIZE, SIZE, 8), np.float16) + np.linspace(-1, 1, 8, dtype=np.float16))
    nan = np.load(pre / "case4.npy")
    nan[0, 0, 0] = np.nan
    np.save(pre / "case4.npy", nan)
    with pytest.raises(
        ConfigError, match=r"3 unusable.*case1\.npy \(every voxel.*case2\.npy \(shape.*case4\.npy \(has NaN"
    ):
        VolumeFolder(pre, strict=True)
    with pytest.warns(UserWarning, match="skipped 3"):
        data = VolumeFolder(pre)
    assert [p.name for p in data.paths] == ["case0.npy", "case3.npy"]
    assert [(p.name, cause.split()[0]) for p, cause in data.skipped] == [
        ("case1.npy", "every"),
        ("case2.npy", "shape"),
        ("case4.npy", "has"),
    ]
    assert len(VolumeFolder(pre, validate=False)) == 5
    (pre / "case0.npy").unlink()
    with pytest.warns(UserWarning, match=r"case0\.npy \(file is missing\)"):
        assert len(VolumeFolder(pre)) == 1


def test_validate_checks_nifti_headers(folders, tmp_path):
    nifti, _ = folders
    nifti = copy_folder(nifti, tmp_path / "nifti")
    (nifti / "notes.nii").write_text("not an image")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), str(nifti / "series.nii.gz"))
    with pytest.raises(ConfigError, match=r"notes\.nii \(not a readable.*series\.nii\.gz \(a single 3-D"):
        VolumeFolder(nifti, modality="ct", size=SIZE, strict=True)
    with pytest.warns(UserWarning):
        assert len(VolumeFolder(nifti, modality="ct", size=SIZE)) == 5


def test_summary_describes_the_data_for_a_model_card(folders, tmp_path):
    nifti, pre = folders
    summary = VolumeFolder(pre).summary()
    assert summary["count"] == 5 and summary["skipped"] == 0 and summary["kind"] == "preprocessed"
    assert summary["modality"] == "ct" and summary["size"] == SIZE and summary["orientation"] == "RAS"
    assert summary["intensity"] == {"low": -1024.0, "high": 600.0, "unit": "HU", "kind": "window"}
    manifest = json.loads((pre / MANIFEST).read_text())
    assert summary["preprocessing"] == manifest["settings"] and summary["num_classes"] == 0
    # median of (16 x 0.9, 18 x 0.8, (20 + n) x (1 + 0.1 n)) / 16
    assert summary["spacing_mm"] == pytest.approx([0.9, 0.9, 22 * 1.2 / 16], abs=1e-5)
    assert VolumeFolder(nifti, modality="ct", size=SIZE).summary()["spacing_mm"] == summary["spacing_mm"]


# -- sampling -------------------------------------------------------------------------------------


def test_each_epoch_has_a_new_permutation_fixed_by_the_seed():
    sampler = EpochSampler(50, seed=7)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == sorted(second) == list(range(50)) and first != second
    again = EpochSampler(50, seed=7)
    assert list(again) == first and list(EpochSampler(50, seed=8)) != first
    again.set_epoch(1)
    assert list(again) == second


@pytest.mark.parametrize("length, world, batch", [(23, 3, 2), (40, 4, 5), (9, 2, 1)])
def test_ranks_take_disjoint_slices_that_add_up_to_the_global_batches(length, world, batch):
    single = EpochSampler(length, seed=1).permutation().tolist()
    ranks = [EpochSampler(length, seed=1, rank=r, world_size=world) for r in range(world)]
    per_rank = [list(s) for s in ranks]
    assert len({len(p) for p in per_rank}) == 1 and len(per_rank[0]) == length // world
    assert len(set().union(*per_rank)) == sum(map(len, per_rank))  # disjoint
    steps = len(per_rank[0]) // batch
    for t in range(steps):
        together = [i for p in per_rank for i in p[t * batch : (t + 1) * batch]]
        assert sorted(together) == sorted(single[t * batch * world : (t + 1) * batch * world])


def test_without_drop_last_every_item_is_seen_and_ranks_stay_equal():
    ranks = [list(EpochSampler(10, seed=2, rank=r, world_size=3, drop_last=False)) for r in range(3)]
    assert [len(r) for r in ranks] == [4, 4, 4] and set().union(*ranks) == set(range(10))


def test_sampler_state_resumes_the_exact_remaining_sequence():
    sampler = EpochSampler(30, seed=5, rank=1, world_size=2)
    sampler.set_epoch(3)
    iterator = iter(sampler)
    seen = [next(iterator) for _ in range(6)]
    rest = list(iterator)
    state = sampler.state_dict(consumed=6)
    assert state == {"epoch": 3, "position": 6}
    resumed = EpochSampler(30, seed=5, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert len(resumed) == 9 and list(resumed) == rest
    assert list(resumed) == seen + rest  # the next pass of the same epoch starts from its beginning
    partial = iter(resumed)
    [next(partial) for _ in range(4)]
    assert resumed.state_dict() == {"epoch": 3, "position": 4}
    with pytest.raises(ConfigError):
        resumed.load_state_dict({"epoch": 0, "position": 99})


def take(loader, count):
    return [next(loader) for _ in range(count)]


def test_batches_run_through_epochs_and_restore_exactly(folders, tmp_path):
    _, pre = folders
    pre = copy_folder(pre, tmp_path / "pre")
    write_labels(pre / "labels.csv", [(f"{n}.npy", i) for i, n in enumerate(NAMES)])
    data = VolumeFolder(pre, augment=True, seed=11)
    loader = batches(data, EpochSampler(len(data), seed=1), batch_size=2)
    first = take(loader, 3)  # two batches per epoch (the fifth item is dropped)
    state = loader.state_dict()
    assert state == {"epoch": 1, "position": 2}
    rest = take(loader, 3)
    volumes, labels = rest[0]
    assert volumes.shape == (2, 1, SIZE, SIZE, SIZE) and labels.dtype == torch.int64
    assert set(labels.tolist()) <= set(range(5))

    restored = batches(data, EpochSampler(len(data), seed=1), batch_size=2, state=state)
    for (va, la), (vb, lb) in zip(rest, take(restored, 3)):
        assert torch.equal(va, vb) and torch.equal(la, lb)
    epoch0 = [i for _, labels in first[:2] for i in labels.tolist()]
    assert epoch0 == EpochSampler(5, seed=1).indices()[:4]  # label i is item i


def test_worker_processes_give_the_same_batches(folders):
    _, pre = folders
    data = VolumeFolder(pre, augment=True, seed=2)
    serial = take(batches(data, EpochSampler(5, seed=3), 2), 5)
    loader = batches(data, EpochSampler(5, seed=3), 2, num_workers=2)
    parallel = take(loader, 3)
    loader.load_state_dict({"epoch": 1, "position": 2})  # jump while workers hold prefetched batches
    parallel += take(loader, 2)
    for (va, _), (vb, _) in zip(serial, parallel):
        assert torch.equal(va, vb)


def test_too_few_volumes_for_one_batch_is_a_config_error(folders):
    _, pre = folders
    data = VolumeFolder(pre)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        batches(data, EpochSampler(5, world_size=2, rank=0), batch_size=3)
    with pytest.raises(ConfigError, match="covers 4"):
        batches(data, EpochSampler(4), batch_size=2)


def test_phantoms_with_workers_are_made_at_the_start_and_give_the_same_batches():
    """--workers N on phantoms: every phantom is made up front in N processes, then served from
    memory in the same order as without workers (a GPU must not wait for phantoms to be drawn)."""
    from engine.data.phantoms import PhantomDataset
    from engine.training.data import CachedDataset, data_stream

    def stream(workers):
        data = CachedDataset(PhantomDataset("chest-ct", 32, 4, base_seed=11))
        return data, data_stream(data, 2, seed=3, workers=workers, show_progress=False)

    (serial_data, serial), (parallel_data, parallel) = stream(0), stream(2)
    assert not serial_data.cache and sorted(parallel_data.cache) == [0, 1, 2, 3]
    for _ in range(3):
        (a, _), (b, _) = next(serial), next(parallel)
        assert a.shape == (2, 1, 32, 32, 32) and torch.equal(a, b)
