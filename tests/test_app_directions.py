"""Directions panel under Xvfb: sliders that move the shown latent along unit SeFa directions, names, sweeps."""

from __future__ import annotations

import torch
from app_support import WAIT_MS, open_and_wait

from app.direction_names import DirectionNames
from engine.checkpoints import load_model
from engine.directions import sefa
from engine.latent import seed_to_z


def directions(window, qtbot, model_file, seed=3):
    for name, dock in window.docks.items():
        dock.setVisible(name == "directions")
    window.resize(1100, 750)
    open_and_wait(window, qtbot, model_file, seed=seed)
    panel = window.panels["directions"]
    qtbot.waitUntil(lambda: len(panel.sliders) == panel.count_box.value(), timeout=WAIT_MS)
    return panel


def test_a_slider_at_zero_leaves_the_latent_and_at_x_moves_it_along_the_unit_direction(
    main_window, qtbot, tiny_model_file
):
    panel = directions(main_window, qtbot, tiny_model_file)
    state = main_window.state
    base = seed_to_z(3, 16)
    expected = sefa(load_model(tiny_model_file, device="cpu", parts=("G",)), panel.count_box.value())
    assert torch.equal(torch.from_numpy(panel.directions.vectors), torch.from_numpy(expected.vectors))
    for k, alpha in ((0, 1.5), (0, -2.25), (2, 3.0)):
        panel.reset()
        assert torch.equal(state.latent.z, base) and state.latent.label == "seed 3"  # at 0: the latent itself
        panel.set_alpha(k, alpha)
        n = torch.from_numpy(expected.vectors[k])
        step = state.latent.z[0] - base[0]
        torch.testing.assert_close(step, alpha * n / n.norm(), atol=1e-5, rtol=0)
        assert state.quality == "full" and f"{alpha:+.2f}σ direction {k + 1}" in state.latent.label
    panel.set_alpha(2, 0.0)
    assert torch.equal(state.latent.z, base)

    shown = []
    main_window.generation.volumes_shown.connect(shown.append)
    panel.set_alpha(1, 2.0)  # the moved latent reaches the views
    qtbot.waitUntil(lambda: any("+2.00σ" in label for label in shown), timeout=WAIT_MS)
    main_window.panels["latent"].set_seed(5)  # a latent from elsewhere: the sliders start again from it
    assert panel.alphas == [0.0] * len(panel.sliders) and torch.equal(panel.base.z, seed_to_z(5, 16))


def test_direction_names_are_kept_per_model(main_window, qtbot, tiny_model_file, app_home):
    panel = directions(main_window, qtbot, tiny_model_file)
    panel.name_edits[0].setText("body size")
    panel.name_edits[0].editingFinished.emit()
    assert panel.sweep_box.itemText(0) == "body size"
    stored = DirectionNames(app_home / "directions.json")
    assert stored.names(main_window.state.model.card.content_hash) == {0: "body size"}
    assert stored.names("another model") == {}
    panel.set_alpha(0, 1.0)
    assert "+1.00σ body size" in main_window.state.latent.label


def test_a_sweep_exports_frames_from_minus_to_plus_three_sigma(main_window, qtbot, tiny_model_file, tmp_path):
    from engine.nifti import load_nifti

    panel = directions(main_window, qtbot, tiny_model_file)
    panel.frames_box.setValue(3)
    ended: dict[int, str] = {}
    main_window.jobs.job_finished.connect(lambda ticket, outcome: ended.__setitem__(ticket, outcome))
    ticket = panel.export_sweep(1, nifti_folder=tmp_path)
    assert ticket is not None
    qtbot.waitUntil(lambda: ticket in ended, timeout=WAIT_MS)  # that job, not another one
    assert ended[ticket] == "done"
    files = sorted(tmp_path.glob("*.nii.gz"))
    assert [f.name for f in files] == [f"sweep{i:04d}_full.nii.gz" for i in range(3)]
    n = torch.from_numpy(panel.directions.vectors[1])
    for path, alpha in zip(files, (-3.0, 0.0, 3.0)):
        latent = torch.tensor(load_nifti(path).provenance["latent"])
        torch.testing.assert_close(latent, seed_to_z(3, 16)[0] + alpha * n / n.norm(), atol=1e-5, rtol=0)
