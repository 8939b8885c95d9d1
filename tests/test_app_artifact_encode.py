"""Artifact check (full versus stitched slabs, seam scores), encoding a real scan, and evaluation from the app."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from app_support import WAIT_MS, frame, open_and_wait, wait_for_parts
from PySide6.QtCore import Qt
from scipy.ndimage import gaussian_filter

from engine.metrics.seams import slab_boundaries
from engine.nifti import save_nifti


def show_dock(window, qtbot, name: str):
    """Bring a tabbed dock to the front and wait until its panel is on screen."""
    window.docks[name].raise_()
    panel = window.panels[name]
    qtbot.waitUntil(panel.isVisible, timeout=WAIT_MS)
    return panel


def test_compare_shows_stitched_difference_boundaries_and_seam_scores(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    panel = show_dock(main_window, qtbot, "artifact")
    qtbot.mouseClick(panel.compare_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.result is not None, timeout=WAIT_MS)
    result, full = panel.result, main_window.state.volumes["full"]
    assert result.boundaries == slab_boundaries(32) and len(result.boundaries) == 7
    assert panel.table.rowCount() == 8 and panel.table.item(7, 0).text() == "mean"  # 7 boundaries + their mean
    assert np.allclose(result.full.array, full.array, atol=1e-3)  # the same latent as the views show
    assert np.abs(result.stitched.array - result.full.array).max() > 1.0  # independent slabs differ (HU)
    assert np.mean(result.scores_stitched) > np.mean(result.scores_full)
    assert len(panel.stitched.planes["boundaries"][1]) == 7 and panel.difference.cmap == "RdBu_r"
    for pane in (panel.stitched, panel.difference):
        assert frame(pane).std() > 1
    bar = panel.difference._color_bar  # the difference map says which colour is how many HU
    assert bar is not None and bar.GetTitle() == "HU" and bar.GetLookupTable().GetRange()[0] < 0
    assert panel.stitched._color_bar is None
    assert panel.plot is not None and len(panel.plot.listDataItems()) == 2  # full and stitched profiles
    panel.table.selectRow(3)  # a row of the table picks that boundary for the profile
    assert panel.boundary_box.currentData() == result.boundaries[3]
    panel.profile_box.setCurrentIndex(panel.profile_box.findData("line"))
    assert len(panel.plot.listDataItems()) == 2 and not main_window.dialogs


def test_encode_a_scan_then_use_its_latent(main_window, qtbot, tiny_model_file, tmp_path):
    open_and_wait(main_window, qtbot, tiny_model_file, seed=2)
    scan = save_nifti(main_window.state.volumes["full"], tmp_path / "scan.nii.gz")
    panel = show_dock(main_window, qtbot, "encode")
    panel.open_path(str(scan))
    qtbot.waitUntil(lambda: panel.encoded is not None, timeout=WAIT_MS)
    assert "PSNR" in panel.metrics.text() and "dB" in panel.metrics.text() and "SSIM" in panel.metrics.text()
    # the foreground's figures sit next to what a blank or a mean-valued volume would score
    assert "foreground" in panel.metrics.text() and "blank: PSNR" in panel.metrics.text()
    assert all(pane.volume is not None for pane in panel.panes.values())
    assert frame(panel.panes["difference"]).std() > 1
    qtbot.wait(50)  # the metrics wrap inside the dock instead of widening the panel past it
    assert panel.width() <= main_window.docks["encode"].width()
    assert panel.use_button.isEnabled()
    wait_for_parts(main_window, qtbot, lambda: qtbot.mouseClick(panel.use_button, Qt.MouseButton.LeftButton))
    latent = main_window.state.latent
    assert latent.label == "encoded scan" and latent.seed is None
    assert np.allclose(latent.z.numpy(), panel.encoded[1].z.numpy())
    assert main_window.state.volumes["full"].provenance["latent_origin"] == "encoded scan"
    assert not main_window.dialogs


def test_a_corrupt_scan_gives_one_dialog(main_window, qtbot, tiny_model_file, tmp_path):
    open_and_wait(main_window, qtbot, tiny_model_file)
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b this is not a NIfTI file")
    panel = main_window.panels["encode"]
    panel.open_path(str(bad))
    qtbot.waitUntil(lambda: len(main_window.dialogs) > 0, timeout=WAIT_MS)
    qtbot.wait(200)
    assert len(main_window.dialogs) == 1 and "broken.nii.gz" in main_window.dialogs[0]
    assert panel.encoded is None and not panel.use_button.isEnabled() and panel.open_button.isEnabled()


def write_real_scans(folder, count: int = 2) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        smooth = gaussian_filter(rng.normal(size=(36, 34, 30)), 2.0)
        hu = (smooth / smooth.std() * 400 - 300).astype(np.float32)
        nib.save(nib.Nifti1Image(hu, np.diag([1.2, 1.2, 1.5, 1.0])), folder / f"real{i}.nii.gz")


def test_evaluation_dialog_runs_cancels_and_writes_the_report(main_window, qtbot, tiny_model_file, tmp_path):
    open_and_wait(main_window, qtbot, tiny_model_file)
    write_real_scans(tmp_path / "real")
    dialog = main_window.panels["artifact"].open_evaluation()
    dialog.real_edit.setText(str(tmp_path / "real"))
    dialog.samples_box.setValue(2)
    dialog.extractor_box.setCurrentIndex(dialog.extractor_box.findData("none"))
    assert not dialog.weights_row.isEnabled()  # weights only for Med3D
    report = tmp_path / "report.json"
    dialog.report_edit.setText(str(report))

    dialog.start()
    dialog.cancel()
    qtbot.waitUntil(lambda: dialog.ticket is None, timeout=WAIT_MS)
    assert dialog.status.text() == "Cancelled." and dialog.report is None and not report.exists()

    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60_000)
    text = dialog.table.toPlainText()
    assert "seam score stitched" in text and "intensity W1 HU" in text
    written = json.loads(report.read_text())
    assert written["settings"]["samples"] == 2 and written["real_set"]["count"] == 2
    assert written["metrics"]["seam_score"]["boundaries"] == slab_boundaries(32)
    assert dialog.run_button.isEnabled() and not dialog.cancel_button.isEnabled() and not main_window.dialogs


def test_a_comparison_finished_while_its_dock_is_closed_is_all_there_when_shown(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    panel = show_dock(main_window, qtbot, "artifact")
    main_window.docks["artifact"].hide()  # the user closed it while it runs: its panes never paint
    qtbot.waitUntil(lambda: not panel.isVisible(), timeout=WAIT_MS)
    panel.compare()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=WAIT_MS)
    assert panel.table.rowCount() == 8 and panel.difference.volume is panel.result.difference
    main_window.docks["artifact"].show()
    show_dock(main_window, qtbot, "artifact")
    assert frame(panel.stitched).std() > 1
