"""A/B comparison window under Xvfb: two latents side by side, their difference, the probe."""

from __future__ import annotations

import numpy as np
import torch
from app_support import WAIT_MS, open_and_wait

from engine.generate import SampleRequest, sample_volume


def test_two_seeds_side_by_side_with_their_difference_and_linked_crosshair(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file, seed=1)
    window = main_window.open_compare()
    qtbot.waitExposed(window)
    window.seed_boxes["a"].setValue(1)
    window.seed_boxes["b"].setValue(2)
    with qtbot.waitSignal(main_window.jobs.job_finished, timeout=WAIT_MS, check_params_cb=lambda t, o: o == "done"):
        window.compare()
    qtbot.waitUntil(lambda: "difference" in window.volumes, timeout=WAIT_MS)
    model = main_window.state.model.model
    a, b = (sample_volume(model, SampleRequest(seed)).array for seed in (1, 2))
    np.testing.assert_allclose(window.volumes["a"].array, a, atol=0.05)
    np.testing.assert_allclose(window.volumes["difference"].array, a - b, atol=0.1)
    assert window.volumes["difference"].provenance["synthetic"] is True
    assert window.panes["b"].plotter.renderers[0].camera is window.panes["a"].plotter.renderers[0].camera

    main_window.state.set_crosshair([10.0, -5.0, 20.0])  # the crosshair moves in every pane; the probe follows
    for pane in window.panes.values():
        assert np.allclose(pane.crosshair, [10.0, -5.0, 20.0])
    values = window.probe_values()
    assert np.isclose(values["difference"], values["a"] - values["b"], atol=1e-3)
    assert f"A {values['a']:.1f}" in window.probe.text()

    main_window.panels["latent"].set_seed(3)  # the shown latent as B
    window.use_current("b")
    assert window.latents["b"].seed == 3 and torch.equal(window.latents["b"].z, main_window.state.latent.z)
    assert window.colour_bar.high.text().startswith("+")

    # new volumes fill the panes one per turn of the event loop: three scenes at once would stall the UI
    swapped = {"a": window.volumes["b"], "b": window.volumes["a"], "difference": window.volumes["difference"]}
    window.show_volumes(swapped)
    assert window.panes["b"].volume is not swapped["b"] and window.volumes is not swapped  # (A's may be set)
    qtbot.waitUntil(lambda: window.volumes is swapped, timeout=WAIT_MS)
    assert all(pane.volume is swapped[name] for name, pane in window.panes.items())


def test_the_same_seed_under_two_models(main_window, qtbot, tiny_model_file, tmp_path):
    from app_support import make_tiny_model

    from engine.checkpoints import load_model

    other = make_tiny_model(tmp_path / "other.safetensors", seed=5)  # the same size, other weights
    open_and_wait(main_window, qtbot, tiny_model_file, seed=1)
    window = main_window.open_compare()
    qtbot.waitExposed(window)
    window.seed_boxes["a"].setValue(4)
    window.seed_boxes["b"].setValue(4)
    with qtbot.waitSignal(main_window.jobs.job_finished, timeout=WAIT_MS, check_params_cb=lambda t, o: o == "done"):
        window.set_model_b(str(other))
    assert window.model_b is not None and "other" in window.model_b_button.text()
    with qtbot.waitSignal(main_window.jobs.job_finished, timeout=WAIT_MS, check_params_cb=lambda t, o: o == "done"):
        window.compare()
    qtbot.waitUntil(lambda: "difference" in window.volumes, timeout=WAIT_MS)
    b = sample_volume(load_model(other), SampleRequest(4)).array
    np.testing.assert_allclose(window.volumes["b"].array, b, atol=0.05)  # seed 4 under the other model
    assert np.abs(window.volumes["difference"].array).mean() > 1.0  # HU: two models, one seed, not alike

    window.set_model_b(None)  # back to one model: seed 4 against itself
    with qtbot.waitSignal(main_window.jobs.job_finished, timeout=WAIT_MS, check_params_cb=lambda t, o: o == "done"):
        window.compare()
    qtbot.waitUntil(lambda: np.abs(window.volumes["difference"].array).max() < 1e-3, timeout=WAIT_MS)
