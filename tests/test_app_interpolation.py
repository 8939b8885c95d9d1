"""Interpolation panel under Xvfb: keyframe paths, a slider that never blocks the UI, exported sequences."""

from __future__ import annotations

import threading
from dataclasses import replace

import imageio.v2 as imageio_v2
import imageio.v3 as iio
import numpy as np
import torch
from app_support import WAIT_MS, open_and_wait

from app.render.scene3d import INTERACTIVE_UPDATE_RATE
from app.state import Latent, RenderMode
from engine.cli import main
from engine.latent import seed_to_z
from engine.nifti import load_nifti
from engine.reading import read_volume


def interpolation(window, qtbot, model_file, seeds=(1, 2)):
    """A small window with only the interpolation dock, so the three panes get a useful width."""
    for name, dock in window.docks.items():
        dock.setVisible(name == "interpolation")
    window.resize(1000, 700)
    open_and_wait(window, qtbot, model_file, seed=seeds[0])
    panel = window.panels["interpolation"]
    for seed in seeds:
        panel.add_seed(seed)
    return panel


def export_and_wait(panel, qtbot, **options):
    with qtbot.waitSignal(panel.exported, timeout=WAIT_MS) as finished:
        assert panel.export(**options) is not None
    return finished.args[0]


def test_keyframes_from_two_seeds_with_slerp_start_and_end_at_the_seeds(main_window, qtbot, tiny_model_file):
    panel = interpolation(main_window, qtbot, tiny_model_file, seeds=(1, 2, 3))
    state, dim = main_window.state, state_dim(main_window)
    panel.keys.keyframe_list.setCurrentRow(2)
    panel.keys.remove_selected()  # seed 3 goes; the path is seed 1 -> seed 2
    assert [k.label for k in panel.keyframes] == ["seed 1", "seed 2"]
    panel.keys.method_box.setCurrentText("slerp")
    panel.player.slider.setValue(500)
    assert state.latent.label == "slerp t=0.500 (seed 1 → seed 2)" and state.quality == "full"
    panel.player.slider.setValue(0)
    assert torch.equal(state.latent.z, seed_to_z(1, dim))
    panel.player.slider.setValue(1000)
    assert torch.equal(state.latent.z, seed_to_z(2, dim))
    assert state.path.t == 1.0 and [k.label for k in state.path.keyframes] == ["seed 1", "seed 2"]
    panel.keys.move_selected(-1)  # reordered: the views follow the new path at the same t
    assert [k.label for k in panel.keyframes] == ["seed 2", "seed 1"]
    assert torch.equal(state.latent.z, seed_to_z(1, dim))
    # the path lives in the application state: edited there, the panel and the views follow
    state.set_path(replace(state.path, method="lerp"))
    assert panel.keys.method_box.currentText() == "lerp" and state.latent.label.startswith("lerp t=1.000")

    scan = Latent(torch.randn(1, dim), "scan.nii.gz (encoded)")  # e.g. a bookmark or an encoded scan
    state.set_latent(scan)
    panel.keys.add_current()
    assert panel.keyframes[-1].label == "scan.nii.gz (encoded)" and torch.equal(panel.keyframes[-1].z, scan.z)

    values: list[int] = []
    panel.player.slider.valueChanged.connect(values.append)
    panel.player.frames_box.setValue(5)
    panel.player.fps_box.setValue(50)
    panel.player.loop_box.setChecked(True)
    panel.player.slider.setValue(0)
    panel.player.toggle_play()
    qtbot.waitUntil(lambda: 1000 in values and values[-1] < 1000, timeout=WAIT_MS)  # looped around
    assert state.quality == "preview"  # playing: anchor previews only
    panel.player.toggle_play()
    assert panel.player.play_button.text() == "Play" and state.quality == "full"  # stopped: refined
    assert values[: values.index(1000) + 1] == [0, 250, 500, 750, 1000]  # 5 frames along the path


def state_dim(window) -> int:
    return window.state.model.card.config.latent_dim


def test_export_gives_exactly_n_nifti_files_and_movie_frames(main_window, qtbot, tiny_model_file, tmp_path):
    panel = interpolation(main_window, qtbot, tiny_model_file)
    frames = 5
    result = export_and_wait(panel, qtbot, nifti_folder=tmp_path, movie=tmp_path / "path.gif", frames=frames)
    files = sorted(tmp_path.glob("*.nii.gz"))
    assert len(files) == frames == result.frames and files == result.files
    assert len(list(tmp_path.glob("*.json"))) == frames  # a provenance sidecar each
    first, last = load_nifti(files[0]), load_nifti(files[-1])
    assert first.array.std() > 0 and np.abs(first.array - last.array).mean() > 1.0  # HU
    assert "seed 1 → seed 2" in first.provenance["latent_origin"]
    gif = iio.improps(tmp_path / "path.gif")
    assert gif.n_images == frames and gif.shape[1] >= 256
    assert np.stack(iio.imread(tmp_path / "path.gif")).std() > 1

    assert panel.export(movie=tmp_path / "path.avi") is None and "ends in .gif or .mp4" in main_window.dialogs.pop()

    dicom = tmp_path / "dicom"
    dicom.mkdir()
    result = export_and_wait(panel, qtbot, dicom_folder=dicom, frames=3)
    assert sorted(p.name for p in dicom.iterdir()) == [f"frame{i:04d}_full" for i in range(3)]
    assert read_volume(dicom / "frame0000_full").array.std() > 0 and len(result.files) == 3

    result = export_and_wait(panel, qtbot, movie=tmp_path / "turn.mp4", view="3d", frames=3)
    assert result.movie == tmp_path / "turn.mp4" and not main_window.dialogs
    reader = imageio_v2.get_reader(tmp_path / "turn.mp4", format="FFMPEG")
    assert reader.count_frames() == 3 and reader.get_data(0).std() > 1
    reader.close()


def test_a_turning_isosurface_movie_builds_its_surfaces_off_the_ui_thread(
    main_window, qtbot, tiny_model_file, tmp_path, monkeypatch
):
    from app.render import scene3d, turntable

    panel = interpolation(main_window, qtbot, tiny_model_file)
    state = main_window.state
    state.set_render_mode(RenderMode.ISOSURFACE)
    state.set_iso_value(float(np.percentile(state.volumes["full"].array, 70)))  # a surface in any tiny volume
    surface_threads: list[int] = []

    def recording(image, level):
        surface_threads.append(threading.get_ident())
        return real(image, level)

    real = scene3d.isosurface
    for module in (scene3d, turntable):  # wherever the movie takes its surfaces from
        monkeypatch.setattr(module, "isosurface", recording, raising=False)
    result = export_and_wait(panel, qtbot, movie=tmp_path / "surface.gif", view="3d", frames=3)
    assert result.movie == tmp_path / "surface.gif" and not main_window.dialogs
    assert len(surface_threads) == 3 and threading.get_ident() not in surface_threads
    frames = np.stack(iio.imread(tmp_path / "surface.gif")).astype(float)
    assert len(frames) == 3 and frames[0].std() > 1
    assert np.abs(frames[0] - frames[1]).mean() > 1  # the camera turns around the surface


def test_an_exported_sequence_has_the_frames_and_names_of_the_command_line(
    main_window, qtbot, tiny_model_file, tmp_path
):
    panel = interpolation(main_window, qtbot, tiny_model_file, seeds=(1, 2, 3))
    export_and_wait(panel, qtbot, nifti_folder=tmp_path, frames=4)  # the middle keyframe falls between frames
    argv = ["interpolate", "--checkpoint", str(tiny_model_file), "--seeds", "1,2,3", "--frames", "4"]
    assert main([*argv, "--out", str(tmp_path / "cli")]) == 0
    names = [f"frame{i:04d}_full.nii.gz" for i in range(4)]
    assert sorted(p.name for p in tmp_path.glob("*.nii.gz")) == names
    assert sorted(p.name for p in (tmp_path / "cli").glob("*.nii.gz")) == names
    for name in names:
        app, cli = load_nifti(tmp_path / name), load_nifti(tmp_path / "cli" / name)
        assert app.provenance["latent"] == cli.provenance["latent"], name
        assert np.array_equal(app.array, cli.array), name


def test_moving_the_slider_never_runs_the_generator_on_the_ui_thread(main_window, qtbot, tiny_model_file):
    """Dragging the slider draws anchor previews, and every forward pass runs off the UI thread.

    (How long the UI thread stalls is measured by benchmarks/ui_latency.py, not asserted here.)
    """
    panel = interpolation(main_window, qtbot, tiny_model_file)
    state, hierarchy = main_window.state, main_window.hierarchy
    shown: list[set] = []
    coarse: list[bool] = []  # per drawing: was the anchor's 3D view allowed its interactive level of detail
    hierarchy.rendered.connect(lambda parts: (shown.append(set(parts)), coarse.append(interactive(hierarchy.anchor))))
    forward_threads: set[int] = set()
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: forward_threads.add(threading.get_ident())
    )
    try:
        panel.player.slider.setSliderDown(True)
        for value in range(0, 1001, 20):
            panel.player.slider.setValue(value)
            qtbot.wait(20)
        is_preview = ["anchor" in parts and "full" not in parts for parts in shown]
        previews = sum(is_preview)
        panel.player.slider.setSliderDown(False)

        def refined() -> bool:
            full = state.volumes.get("full")
            return (
                full is not None
                and full.provenance.get("latent_origin") == state.latent.label
                and hierarchy.full.volume is full
            )

        qtbot.waitUntil(refined, timeout=WAIT_MS)
    finally:
        hook.remove()
    assert state.quality == "full" and "t=1.000" in state.latent.label
    assert previews >= 2  # the panes followed the slider with anchor previews while it moved
    assert forward_threads and threading.get_ident() not in forward_threads
    # previews may coarsen the 3D ray casting; the refined result is drawn at full quality
    assert sum(c for c, p in zip(coarse, is_preview) if p) >= 2 and not any(
        interactive(pane) for pane in hierarchy.panes.values()
    )


def interactive(pane) -> bool:
    return pane.plotter.ren_win.GetDesiredUpdateRate() >= INTERACTIVE_UPDATE_RATE
