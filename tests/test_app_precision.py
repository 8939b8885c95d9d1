"""The app previews in bf16 only where the CPU runs it natively, and exports exact fp32 volumes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from app_support import WAIT_MS, open_and_wait, wait_for_parts

from app.state import FULL, PREVIEW, Latent
from engine.cli import main
from engine.device import cpu_has_bf16
from engine.latent import seed_to_z
from engine.nifti import load_nifti


def slide_to(window, qtbot, seed: int) -> dict:
    """A slider move (PREVIEW) to ``seed``'s latent: the anchor preview that comes back."""
    latent = Latent(seed_to_z(seed, 16), f"seed {seed}", seed)
    wait_for_parts(window, qtbot, lambda: window.state.set_latent(latent, PREVIEW), parts=("anchor",))
    return window.state.volumes["anchor"].provenance


def test_previews_use_bf16_where_allowed_and_the_export_equals_the_fp32_cli(
    main_window, qtbot, tiny_model_file, tmp_path
):
    from app.volume_files import export_volume

    panel = main_window.panels["model"]
    open_and_wait(main_window, qtbot, tiny_model_file, seed=3)
    offered = [panel.preview_precision_box.itemData(i) for i in range(panel.preview_precision_box.count())]
    assert ("bf16" in offered) == cpu_has_bf16()
    assert panel.export_precision_box.currentData() == "fp32"
    assert main_window.state.volumes["full"].provenance["precision"] == "fp32"

    preview = slide_to(main_window, qtbot, 4)
    assert preview["precision"] == ("bf16" if cpu_has_bf16() else "fp32")

    latent = main_window.state.latent
    wait_for_parts(main_window, qtbot, lambda: main_window.state.set_latent(latent, FULL), parts=("anchor", "full"))
    shown = main_window.state.volumes
    assert shown["full"].provenance["precision"] == "fp32" and shown["anchor"].provenance["precision"] == "fp32"
    exported = tmp_path / "app.nii.gz"
    export_volume(main_window.context, "full", exported)
    qtbot.waitUntil(lambda: exported.exists() and not main_window.jobs.busy(), timeout=WAIT_MS)

    cli = tmp_path / "cli.nii.gz"
    command = ["sample", "--checkpoint", str(tiny_model_file), "--seed", "4", "--precision", "fp32", "--out", str(cli)]
    assert main(command) == 0
    ours, theirs = load_nifti(exported), load_nifti(cli)
    assert ours.provenance["precision"] == theirs.provenance["precision"] == "fp32"
    # the same arithmetic; only the thread count (the app leaves a core to the UI) may reorder sums
    assert ours.array.std() > 1 and np.abs(ours.array - theirs.array).max() < 0.05  # HU
    assert not main_window.dialogs


def test_without_bf16_instructions_previews_stay_exact(main_window, qtbot, tiny_model_file, monkeypatch):
    monkeypatch.setattr("engine.precision.cpu_has_bf16", lambda: False)
    panel = main_window.panels["model"]
    open_and_wait(main_window, qtbot, tiny_model_file, seed=1)
    boxes = (panel.preview_precision_box, panel.export_precision_box)
    assert all(box.findData("bf16") < 0 for box in boxes)
    main_window.generation.preview_precision = "bf16"  # a choice remembered from another machine
    assert slide_to(main_window, qtbot, 2)["precision"] == "fp32"
    assert not main_window.dialogs


@pytest.mark.parametrize("instructions", [True, False])
def test_gallery_thumbnails_use_the_preview_precision_and_gallery_exports_stay_exact(
    main_window, qtbot, tiny_model_file, tmp_path, monkeypatch, instructions
):
    if not instructions:
        monkeypatch.setattr("engine.precision.cpu_has_bf16", lambda: False)
    bf16 = instructions and cpu_has_bf16()
    open_and_wait(main_window, qtbot, tiny_model_file, seed=0)
    view = main_window.gallery
    view.size_box.setCurrentIndex(view.size_box.findData(9))
    with qtbot.waitSignal(view.page_filled, timeout=WAIT_MS):
        main_window.tabs.setCurrentWidget(view)
        view.show_page(0)
    assert main_window.generation.precision_for(PREVIEW) == ("bf16" if bf16 else "fp32")
    spec, maker = view.spec(), view.loader.maker
    for seed in view.seeds:
        shown = view.thumbnails[seed]
        assert maker.cached(seed, replace(spec, precision="bf16" if bf16 else "fp32"), memory_only=True) is shown
        if bf16:
            assert maker.cached(seed, replace(spec, precision="fp32"), memory_only=True) is None

    view.list.setCurrentRow(1)  # seed 1
    ended = []
    main_window.jobs.job_finished.connect(lambda ticket, outcome: ended.append(ticket))
    ticket = view.export(tmp_path)
    qtbot.waitUntil(lambda: ticket in ended, timeout=WAIT_MS)
    cli = tmp_path / "cli.nii.gz"
    assert main(["sample", "--checkpoint", str(tiny_model_file), "--seed", "1", "--out", str(cli)]) == 0
    ours, theirs = load_nifti(tmp_path / "seed0001_full.nii.gz"), load_nifti(cli)
    assert ours.provenance["precision"] == theirs.provenance["precision"] == "fp32"
    assert ours.array.std() > 1 and np.abs(ours.array - theirs.array).max() < 0.05  # HU: thread count only
    assert not main_window.dialogs
