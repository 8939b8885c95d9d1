"""DICOM series out and in: geometry and values checked against dcm2niix, synthetic markers, hostile series."""

from __future__ import annotations

import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import HTJ2KLossless, JPEGLSLossless, generate_uid

from engine import __version__
from engine.card import CT_WINDOW
from engine.checkpoints import read_model_card
from engine.cli import main
from engine.dicom import save_dicom_series
from engine.dicom_read import SeveralSeriesError, list_series, load_dicom_series
from engine.errors import VolumeError
from engine.metrics.realset import find_real_set
from engine.nifti import save_nifti
from engine.reading import read_volume
from engine.volume import IntensityMapping, Volume, generated_affine

HASH = "sha256:0123456789abcdef0123456789abcdef"


def known_volume(shape=(20, 18, 12), affine=None, intensity=CT_WINDOW, seed=5) -> Volume:
    """A volume with a gradient (so flips and shifts show) plus noise, in the window's units."""
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*(np.linspace(0, 1, n) for n in shape), indexing="ij")
    unit = (0.5 * i + 0.3 * j + 0.2 * k + 0.05 * rng.standard_normal(shape)).clip(0, 1)
    values = intensity.low + (intensity.high - intensity.low) * unit
    affine = generated_affine(32, (1.5, 1.25, 2.0)) if affine is None else affine
    provenance = {"synthetic": True, "model": "tiny-ct", "model_hash": HASH, "seed": 7, "truncation": 0.8}
    return Volume(values.astype(np.float32), affine, intensity, {**provenance, "operation": "full"})


def oblique_affine() -> np.ndarray:
    """Anisotropic voxels, a 7 degree rotation about z and an off-centre origin, i running right to left."""
    angle = np.deg2rad(7.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.9, 1.1, 2.5])
    affine[:3, 3] = (40.0, -12.5, 88.0)
    return affine


def dcm2niix(folder, out_dir) -> nib.Nifti1Image:
    """The independent converter's NIfTI of one series folder."""
    if shutil.which("dcm2niix") is None:
        pytest.fail("dcm2niix is not installed; scripts/setup.sh installs it")
    out_dir.mkdir()
    subprocess.run(["dcm2niix", "-z", "n", "-f", "converted", "-o", str(out_dir), str(folder)], check=True, text=True,
                   capture_output=True)  # fmt: skip
    return nib.load(str(out_dir / "converted.nii"))


@pytest.mark.parametrize(
    "affine, intensity, modality, tolerance",
    [
        (None, CT_WINDOW, "ct", 0.5),  # CT: int16 HU with slope 1, so at most half a HU of rounding
        (oblique_affine(), CT_WINDOW, "ct", 0.5),
        (None, IntensityMapping(0.0, 1.0, ""), "mri", 1e-4),  # MR: a slope spanning 16 bits
        (None, IntensityMapping(-1.0, 1.0, ""), "ct", 1e-4),  # a CT model's raw output: not HU, so a slope too
    ],
    ids=["ct", "ct-oblique", "mr", "ct-raw"],
)
def test_dcm2niix_reads_our_series_as_our_nifti_export(tmp_path, affine, intensity, modality, tolerance):
    volume = known_volume(affine=affine, intensity=intensity)
    series = save_dicom_series(volume, tmp_path / "series", modality)
    sop_class = pydicom.dcmread(next(series.iterdir())).SOPClassUID
    assert sop_class == (pydicom.uid.CTImageStorage if modality == "ct" else pydicom.uid.MRImageStorage)
    ours = nib.as_closest_canonical(nib.load(str(save_nifti(volume, tmp_path / "ours.nii.gz"))))
    theirs = nib.as_closest_canonical(dcm2niix(series, tmp_path / "converted"))
    assert theirs.shape == ours.shape
    assert np.abs(theirs.affine - ours.affine).max() <= 1e-3  # mm (and direction cosines)
    assert np.abs(theirs.get_fdata() - ours.get_fdata()).max() <= tolerance


def test_our_reader_gives_back_the_volume_and_its_geometry(tmp_path):
    volume = known_volume(affine=oblique_affine())
    again = read_volume(save_dicom_series(volume, tmp_path / "series"))
    canonical = nib.as_closest_canonical(nib.Nifti1Image(volume.array, volume.affine))
    assert np.abs(again.affine - canonical.affine).max() < 1e-4
    assert np.abs(again.array - canonical.get_fdata()).max() <= 0.5
    assert again.intensity.unit == "HU" and again.provenance["synthetic"] is True
    assert again.provenance["seed"] == 7 and again.provenance["model_hash"] == HASH


def test_every_file_carries_the_synthetic_markers(tmp_path):
    folder = save_dicom_series(known_volume(), tmp_path / "series", "ct")
    files = sorted(folder.iterdir())
    assert len(files) == 12
    for path in files:
        ds = pydicom.dcmread(path)
        assert str(ds.PatientName) == "SYNTHETIC^tiny-ct"
        assert ds.PatientID == "SYN-0123456789abcdef"
        assert ds.SeriesDescription.startswith("SYNTHETIC") and ds.ImageComments.startswith("SYNTHETIC")
        provenance = json.loads(ds.ImageComments.split("Provenance: ", 1)[1])
        assert provenance["model_hash"] == HASH and provenance["seed"] == 7 and provenance["truncation"] == 0.8
        assert provenance["engine_version"] == __version__
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.BurnedInAnnotation == "NO"
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage and ds.Modality == "CT"
        assert ds.RescaleType == "HU" and float(ds.RescaleSlope) == 1.0
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (-600.0, 1500.0)  # the CT lung preset
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "PatientBirthDate"):
            assert not ds.get(keyword)
        for keyword in ("InstitutionName", "OperatorsName", "DeviceSerialNumber", "OtherPatientIDs"):
            assert keyword not in ds


def test_no_file_name_of_an_encoded_scan_reaches_the_headers(tmp_path):
    volume = known_volume()
    volume.provenance.update(latent_origin="encoded Doe_John_1957", source_file="/data/Doe_John_1957.nii.gz")
    volume.provenance.pop("seed")
    folder = save_dicom_series(volume, tmp_path / "series")
    for path in folder.iterdir():
        assert b"Doe_John" not in path.read_bytes()


def test_uids_are_fresh_per_export_and_one_frame_of_reference_per_latent(tmp_path):
    volume = known_volume()
    anchor = Volume(volume.array[::2, ::2, ::2], generated_affine(32, (1.5, 1.25, 2.0), "anchor"), CT_WINDOW,
                    {**volume.provenance, "operation": "anchor"})  # fmt: skip
    other_seed = Volume(volume.array, volume.affine, CT_WINDOW, {**volume.provenance, "seed": 8})
    headers = {}
    for name, v in (("a", volume), ("b", volume), ("anchor", anchor), ("other", other_seed)):
        headers[name] = pydicom.dcmread(next(save_dicom_series(v, tmp_path / name).iterdir()))
    a, b = headers["a"], headers["b"]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert a[keyword].value != b[keyword].value
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID == headers["anchor"].FrameOfReferenceUID
    assert headers["other"].FrameOfReferenceUID != a.FrameOfReferenceUID
    assert headers["anchor"].SeriesNumber != a.SeriesNumber


def test_exports_are_atomic_replace_earlier_exports_and_spare_other_folders(tmp_path):
    def stop(done, total):
        if done == 5:
            raise KeyboardInterrupt  # as a cancelled job or a killed process would

    with pytest.raises(KeyboardInterrupt):
        save_dicom_series(known_volume(), tmp_path / "series", progress=stop)
    assert list(tmp_path.iterdir()) == []  # neither a partial series nor a temporary folder
    save_dicom_series(known_volume(shape=(8, 8, 20)), tmp_path / "series")
    save_dicom_series(known_volume(), tmp_path / "series")
    assert len(list((tmp_path / "series").iterdir())) == 12 and len(list(tmp_path.iterdir())) == 1
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(VolumeError, match="notes: exists and is not an earlier DICOM export"):
        save_dicom_series(known_volume(), tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_slices_are_ordered_by_position_not_by_file_name(tmp_path):
    volume = known_volume()
    folder = save_dicom_series(volume, tmp_path / "series")
    files = sorted(folder.iterdir())
    for path in files:
        path.rename(path.with_name("tmp-" + path.name))
    for index, path in enumerate(reversed(sorted(folder.iterdir()))):  # the last slice now sorts first
        path.rename(folder / f"slice{index:03d}")  # no .dcm suffix either: found by the DICM preamble
    assert np.abs(read_volume(folder).array - volume.array).max() <= 0.5


# -- hostile series ---------------------------------------------------------------------------------


@pytest.fixture
def series(tmp_path):
    return save_dicom_series(known_volume(), tmp_path / "series")


def edit(path, change) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


def test_a_missing_slice_is_refused(series):
    (series / "IM0006.dcm").unlink()
    with pytest.raises(VolumeError, match=r"IM0007\.dcm: 1 missing slice\(s\) before it"):
        read_volume(series)


def test_a_duplicated_position_is_refused(series):
    shutil.copy(series / "IM0004.dcm", series / "IM0004-copy.dcm")
    edit(series / "IM0004-copy.dcm", lambda ds: setattr(ds, "SOPInstanceUID", generate_uid()))
    with pytest.raises(VolumeError, match=r"IM0004.*duplicated position"):
        read_volume(series)


def test_a_tilted_slice_is_refused(series):
    edit(series / "IM0005.dcm", lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0.996195, 0.087156]))
    with pytest.raises(VolumeError, match=r"IM0005\.dcm: orientation .*mixed orientations"):
        read_volume(series)


def test_uneven_spacing_is_refused(series):
    def shift(ds):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 0.7]

    edit(series / "IM0005.dcm", shift)
    with pytest.raises(VolumeError, match=r"IM000[56]\.dcm: uneven spacing"):
        read_volume(series)


@pytest.mark.parametrize("keep", [-20, 600], ids=["in-the-pixels", "in-the-header"])
def test_a_truncated_file_is_refused(series, keep):
    path = series / "IM0003.dcm"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(VolumeError, match=r"IM0003\.dcm: truncated"):
        read_volume(series)


def test_a_multi_frame_file_is_refused(series):
    edit(series / "IM0002.dcm", lambda ds: setattr(ds, "NumberOfFrames", 2))
    with pytest.raises(VolumeError, match=r"IM0002\.dcm: a multi-frame image"):
        read_volume(series)


def test_a_compressed_file_without_a_decoder_is_refused(series):
    missing = [u for u in (JPEGLSLossless, HTJ2KLossless) if not pydicom.pixels.get_decoder(u).is_available]
    if not missing:
        pytest.skip("decoders for JPEG-LS and HTJ2K are installed here")

    def compress(ds):
        ds.file_meta.TransferSyntaxUID = missing[0]
        ds.PixelData = encapsulate([b"\xff\xd8" + bytes(60)])

    edit(series / "IM0008.dcm", compress)
    with pytest.raises(VolumeError, match=r"IM0008\.dcm: compressed as .* and no decoder for it is installed"):
        read_volume(series)


def test_several_series_are_listed_and_one_can_be_chosen(tmp_path, capsys):
    first = save_dicom_series(known_volume(), tmp_path / "first")
    second = save_dicom_series(known_volume(seed=9), tmp_path / "second")
    for path in second.iterdir():
        path.rename(first / ("b-" + path.name))
    found = list_series(first)
    assert len(found) == 2 and all(s.count == 12 for s in found)
    with pytest.raises(SeveralSeriesError) as error:
        read_volume(first)
    assert all(s.uid in str(error.value) for s in found) and "--series" in str(error.value)
    chosen = load_dicom_series(first, found[1].uid)
    assert chosen.provenance["series_uid"] == found[1].uid
    # the CLI: exit 2, one line that lists the series
    assert main(["info", "--volume", str(first)]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and found[0].uid in message and found[1].uid in message
    assert main(["info", "--volume", str(first), "--series", found[0].uid]) == 0


# -- the commands ------------------------------------------------------------------------------------


def test_sample_writes_a_series_folder_per_volume(tmp_path, tiny_model_file):
    model = str(tiny_model_file)
    assert main(["sample", "--checkpoint", model, "--seeds", "1,2", "--format", "dicom", "--out", str(tmp_path)]) == 0
    assert main(["sample", "--checkpoint", model, "--seed", "1", "--part", "anchor", "--format", "dicom",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    assert main(["sample", "--checkpoint", model, "--seed", "1", "--out", str(tmp_path / "seed1.nii.gz")]) == 0
    full = read_volume(tmp_path / "seed0001_full")
    nifti = read_volume(tmp_path / "seed1.nii.gz")
    assert full.array.shape == (32, 32, 32) and np.abs(full.array - nifti.array).max() <= 0.5
    assert np.abs(full.affine - nifti.affine).max() < 1e-4
    uid = {name: pydicom.dcmread(next((tmp_path / name).iterdir())).FrameOfReferenceUID
           for name in ("seed0001_full", "seed0001_anchor", "seed0002_full")}  # fmt: skip
    assert uid["seed0001_full"] == uid["seed0001_anchor"] != uid["seed0002_full"]


def test_an_existing_series_folder_is_replaced_only_with_force(tmp_path, tiny_model_file, capsys):
    args = ["sample", "--checkpoint", str(tiny_model_file), "--seed", "1", "--format", "dicom", "--out", str(tmp_path)]
    assert main(args) == 0
    first = sorted((tmp_path / "seed0001_full").iterdir())
    capsys.readouterr()
    assert main(args) == 2
    assert "seed0001_full: already exists; give --force" in capsys.readouterr().err
    assert sorted((tmp_path / "seed0001_full").iterdir()) == first
    assert main([*args, "--force"]) == 0


def test_interpolate_writes_dicom_frames(tmp_path, tiny_model_file):
    args = ["interpolate", "--checkpoint", str(tiny_model_file), "--seeds", "1,2", "--steps", "2", "--part", "anchor"]
    assert main([*args, "--format", "dicom", "--out", str(tmp_path)]) == 0
    frames = sorted(p.name for p in tmp_path.iterdir())
    assert frames == ["frame0000_anchor", "frame0001_anchor", "frame0002_anchor"]
    ds = pydicom.dcmread(next((tmp_path / "frame0001_anchor").iterdir()))
    assert "slerp(seed 1 -> seed 2" in ds.ImageComments and ds.SeriesDescription.startswith("SYNTHETIC")


def test_encode_preprocess_and_real_sets_take_dicom_folders(tmp_path, tiny_model_file, capsys):
    scans = tmp_path / "scans"
    scans.mkdir()
    for seed in (1, 2):
        save_dicom_series(known_volume(shape=(24, 24, 16), seed=seed), scans / f"scan{seed}")
    assert main(["preprocess", "--input", str(scans), "--out", str(tmp_path / "pre"), "--modality", "ct",
                 "--size", "16", "--workers", "1"]) == 0  # fmt: skip
    manifest = json.loads((tmp_path / "pre" / "manifest.json").read_text())
    assert [f["name"] for f in manifest["files"]] == ["scan1", "scan2"]
    real = find_real_set(scans)
    assert real.kind == "dicom" and len(real) == 2
    card = read_model_card(tiny_model_file)  # the real set is prepared as this model's training data was
    size = card.config.resolution
    assert real.load(0, card).shape == (1, 1, size, size, size)
    z = tmp_path / "z.npy"
    assert main(["encode", "--model", str(tiny_model_file), "--volume", str(scans / "scan1"), "--out", str(z)]) == 0
    assert np.load(z).shape == (1, 16)
    for path in (scans / "scan2").iterdir():  # two series in one folder: encode asks which
        path.rename(scans / "scan1" / ("b-" + path.name))
    capsys.readouterr()
    encode = ["encode", "--model", str(tiny_model_file), "--volume", str(scans / "scan1"), "--out", str(z)]
    assert main([*encode, "--force"]) == 2
    assert "choose one with --series UID" in capsys.readouterr().err
    # commands that take every folder as one volume say so
    assert main(["preprocess", "--input", str(scans), "--out", str(tmp_path / "pre2"), "--modality", "ct",
                 "--size", "16", "--workers", "1"]) == 2  # fmt: skip
    assert "scan1: holds 2 DICOM series; keep one series per folder" in capsys.readouterr().err
    with pytest.raises(VolumeError, match="a real set takes one series per folder"):
        find_real_set(scans).load(0, card)
    uid = list_series(scans / "scan1")[1].uid
    args = ["encode", "--model", str(tiny_model_file), "--volume", str(scans / "scan1"), "--series", uid]
    assert main([*args, "--out", str(z), "--force"]) == 0


# -- the app -----------------------------------------------------------------------------------------


def menu_action(menu, *path):
    """The action reached through sub-menus by their texts (without the & shortcuts)."""
    for text in path:
        action = next(a for a in menu.actions() if a.text().replace("&", "") == text)
        menu = action.menu() or menu
    return action


def test_a_series_exported_from_the_app_opens_with_the_model_values_at_the_same_mm(
    main_window, qtbot, tiny_model_file, tmp_path, monkeypatch
):
    from app_support import WAIT_MS, open_and_wait, wait_for_parts
    from PySide6.QtWidgets import QFileDialog

    from app.render.slices import Grid

    open_and_wait(main_window, qtbot, tiny_model_file, seed=3)
    generated = main_window.state.volumes["full"]
    out = tmp_path / "full-seed3"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(out), ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(out))
    menu_action(main_window.file_menu, "Export as DICOM series", "Full volume…").trigger()
    qtbot.waitUntil(lambda: out.is_dir() and not main_window.jobs.busy(), timeout=WAIT_MS)
    assert pydicom.dcmread(next(out.iterdir())).PatientName == "SYNTHETIC^tiny-ct"
    started = []
    main_window.jobs.job_started.connect(lambda _ticket, label: started.append(label))
    wait_for_parts(main_window, qtbot, menu_action(main_window.file_menu, "Open DICOM series…").trigger)
    assert started == [f"Opening {out.name}"]  # one job (one bar) reads the headers, then the images
    pane = main_window.hierarchy.full
    assert pane.volume is not generated and pane.volume.provenance["source_file"] == str(out)
    assert main_window.state.file_source == str(out) and out.name in pane.header.text()  # its own title and window
    assert pane.box_bounds("slab") is None  # no model slab box on a scan from a file
    model_grid = Grid.from_volume(generated)
    rng = np.random.default_rng(0)
    low, high = np.array(model_grid.bounds[::2]), np.array(model_grid.bounds[1::2])
    positions = [low, high, *(low + (high - low) * rng.uniform(0, 1, 3) for _ in range(50))]
    differences = [abs(pane.grid.value(p) - model_grid.value(p)) for p in positions]
    assert max(differences) <= 1.0  # HU
    assert np.ptp([model_grid.value(p) for p in positions]) > 10  # the positions see different tissue
    probe = positions[2]  # the readout under the panes: the probe a user sees
    main_window.state.set_crosshair(probe)
    where = f"Crosshair  full: ({probe[0]:.1f}, {probe[1]:.1f}, {probe[2]:.1f}) mm  voxel "
    line = main_window.hierarchy.probe_line
    qtbot.waitUntil(lambda: where in line.text(), timeout=WAIT_MS)
    shown = float(line.text().split(where)[1].split(")  ")[1].split(" HU")[0])
    assert abs(shown - model_grid.value(probe)) <= 1.0
    assert not main_window.dialogs


def test_the_app_asks_which_series_and_explains_a_broken_one(main_window, qtbot, tmp_path, monkeypatch):
    from app_support import WAIT_MS, wait_for_parts

    import app.volume_files
    from app.volume_files import open_dicom_series

    folder = save_dicom_series(known_volume(), tmp_path / "mixed")
    for path in save_dicom_series(known_volume(shape=(16, 16, 8), seed=2), tmp_path / "second").iterdir():
        path.rename(folder / ("b-" + path.name))
    offered = []

    def choose(parent, series):
        offered.extend(series)
        return next(s.uid for s in series if s.count == 8)

    monkeypatch.setattr(app.volume_files, "choose_series", choose)
    wait_for_parts(main_window, qtbot, lambda: open_dicom_series(main_window.context, folder))
    assert sorted(s.count for s in offered) == [8, 12]
    assert main_window.hierarchy.full.volume.array.shape == (16, 16, 8)
    (folder / "b-IM0004.dcm").unlink()
    open_dicom_series(main_window.context, folder, offered[0].uid if offered[0].count == 8 else offered[1].uid)
    qtbot.waitUntil(lambda: bool(main_window.dialogs), timeout=WAIT_MS)
    assert len(main_window.dialogs) == 1 and "b-IM0005.dcm: 1 missing slice(s)" in main_window.dialogs[0]
    assert "\n" not in main_window.dialogs[0]


def test_the_encode_panel_encodes_a_dicom_series_the_user_picks(
    main_window, qtbot, tiny_model_file, tmp_path, monkeypatch
):
    from app_support import WAIT_MS, open_and_wait
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    import app.panels.encode_panel

    open_and_wait(main_window, qtbot, tiny_model_file, seed=2)
    scan = main_window.state.volumes["full"]
    folder = save_dicom_series(scan, tmp_path / "scans")
    for path in save_dicom_series(known_volume(shape=(16, 16, 8), seed=2), tmp_path / "other").iterdir():
        path.rename(folder / ("b-" + path.name))  # a second series in the same folder
    offered = []

    def choose(parent, series):
        offered.extend(series)
        return next(s.uid for s in series if s.count == scan.array.shape[2])

    monkeypatch.setattr(app.panels.encode_panel, "choose_series", choose)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    main_window.docks["encode"].raise_()
    panel = main_window.panels["encode"]
    qtbot.waitUntil(panel.isVisible, timeout=WAIT_MS)
    assert panel.dicom_button.isEnabled()
    qtbot.mouseClick(panel.dicom_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.encoded is not None, timeout=WAIT_MS)
    assert sorted(s.count for s in offered) == sorted([8, scan.array.shape[2]])
    assert panel.encoded[0] == "scans" and "PSNR" in panel.metrics.text()
    original = panel.panes["original"].volume
    assert original.array.shape == scan.array.shape  # the chosen series, not the 16x16x8 one
    assert np.corrcoef(original.array.ravel(), scan.array.ravel())[0, 1] > 0.99
    monkeypatch.setattr(app.panels.encode_panel, "choose_series", lambda parent, series: None)  # Cancel
    qtbot.mouseClick(panel.dicom_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "No series chosen in scans" in panel.status.text(), timeout=WAIT_MS)
    assert not main_window.dialogs
