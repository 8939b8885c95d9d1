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
