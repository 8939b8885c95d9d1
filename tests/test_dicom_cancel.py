"""A folder of many DICOM images: listing and reading report each header, so Cancel stops them part way."""

from __future__ import annotations

import numpy as np
import pytest
from app_support import WAIT_MS

from engine import dicom_read
from engine.card import CT_WINDOW
from engine.dicom import save_dicom_series
from engine.dicom_read import list_series, load_dicom_series
from engine.volume import Volume, generated_affine

IMAGES = 40


class StopHere(Exception):
    """What a cancelled job's progress call raises."""


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    """A series of IMAGES small images (one file each)."""
    values = np.linspace(-500, 500, 8 * 8 * IMAGES, dtype=np.float32).reshape(8, 8, IMAGES)
    volume = Volume(values, generated_affine(32, (1.0, 1.0, 2.0)), CT_WINDOW, {"synthetic": True})
    return save_dicom_series(volume, tmp_path_factory.mktemp("dicom") / "series")


@pytest.fixture
def header_reads(monkeypatch):
    """How many files the reader has opened (each header read is one ``dcmread``)."""
    reads = []
    dcmread = dicom_read.pydicom.dcmread
    monkeypatch.setattr(dicom_read.pydicom, "dcmread", lambda *a, **k: (reads.append(1), dcmread(*a, **k))[1])
    return reads


def stop_at(text, seen):
    def progress(done, total, what):
        seen.append(what)
        if what == text:
            raise StopHere

    return progress


@pytest.mark.parametrize("read", [list_series, load_dicom_series], ids=["list", "load"])
def test_a_cancel_while_headers_are_read_stops_the_reading(many_images, header_reads, read):
    seen = []
    with pytest.raises(StopHere):
        read(many_images, progress=stop_at(f"reading header 10/{IMAGES}", seen))
    assert len(header_reads) == 9 and seen[0] == f"reading header 1/{IMAGES}"


def test_loading_reads_each_header_once_then_each_image(many_images, header_reads):
    seen = []
    volume = load_dicom_series(many_images, progress=stop_at("", seen))
    assert volume.array.shape == (8, 8, IMAGES) and len(header_reads) == IMAGES
    assert seen == [f"reading header {k}/{IMAGES}" for k in range(1, IMAGES + 1)] + [
        f"reading image {k}/{IMAGES}" for k in range(1, IMAGES + 1)
    ]


def test_cancelling_the_app_while_it_looks_into_a_folder(main_window, qtbot, many_images, monkeypatch):
    """File > Open DICOM series on a big folder, then Cancel: the job ends before every header is read."""
    from app.volume_files import open_dicom_series

    jobs, reads, shown = main_window.jobs, [], []
    dcmread = dicom_read.pydicom.dcmread

    def read_then_cancel(*args, **kwargs):
        reads.append(1)
        if len(reads) == 5:
            jobs.cancel()  # the user presses Cancel while the fifth header is read
        return dcmread(*args, **kwargs)

    monkeypatch.setattr(dicom_read.pydicom, "dcmread", read_then_cancel)
    outcomes = []
    jobs.job_finished.connect(lambda _ticket, outcome: outcomes.append(outcome))
    jobs.job_progress.connect(lambda _ticket, _done, _total, text: shown.append(text))
    open_dicom_series(main_window.context, many_images)
    qtbot.waitUntil(lambda: bool(outcomes), timeout=WAIT_MS)
    assert outcomes == ["cancelled"] and len(reads) == 5 and not main_window.dialogs
    assert f"reading header 1/{IMAGES}" in shown


def test_a_cancel_while_a_series_is_read_for_encoding_stops_the_reading(many_images, header_reads, tiny_model_file):
    """Encode > Open DICOM series reads the series before encoding it: Cancel stops that reading too."""
    from engine.checkpoints import read_model_card
    from engine.model_input import prepare_scan

    seen = []
    with pytest.raises(StopHere):
        prepare_scan(many_images, read_model_card(tiny_model_file), progress=stop_at(f"reading image 3/{IMAGES}", seen))
    assert len(header_reads) == IMAGES and seen[-3:] == [f"reading image {k}/{IMAGES}" for k in (1, 2, 3)]
