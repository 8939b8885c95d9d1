"""2D overlays of a view: labels pinned to its edges and corners, a scale bar, a colour bar.

Every overlay has its own place, so none covers another: orientation letters at the middle of
each edge, the SYNTHETIC label in the upper right corner one line below the top letter, the view's
name in the lower left corner, the scale bar in the lower right corner. Positions are in pixels
from a corner of the view, so they hold at any view size.
"""

from __future__ import annotations

from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor
from vtkmodules.vtkRenderingCore import (
    vtkActor2D,
    vtkCoordinate,
    vtkPolyDataMapper2D,
    vtkRenderer,
    vtkTextActor,
)

SCALE_STEPS_MM = (1, 2, 5, 10, 20, 50, 100, 200)  # the bar shows the longest of these that fits
SCALE_MAX_PIXELS = 90  # at most this long, and at most a quarter of the view's width
MARGIN = 4  # pixels between an overlay and the view's edge

# anchor (normalized viewport x, y), horizontal and vertical justification
PLACES = {
    "top": ((0.5, 1.0), "centered", "top"),
    "bottom": ((0.5, 0.0), "centered", "bottom"),
    "left": ((0.0, 0.5), "left", "centered"),
    "right": ((1.0, 0.5), "right", "centered"),
    "upper_right": ((1.0, 1.0), "right", "top"),
    "upper_left": ((0.0, 1.0), "left", "top"),
    "lower_left": ((0.0, 0.0), "left", "bottom"),
    "lower_right": ((1.0, 0.0), "right", "bottom"),
}


def _hex_rgb(color: str) -> tuple[float, float, float]:
    color = color.lstrip("#")
    return tuple(int(color[i : i + 2], 16) / 255 for i in (0, 2, 4))


def _anchored(coordinate: vtkCoordinate, anchor: tuple[float, float], offset: tuple[float, float]) -> None:
    """Place ``coordinate`` at ``offset`` pixels from a point given in normalized viewport units."""
    reference = vtkCoordinate()
    reference.SetCoordinateSystemToNormalizedViewport()
    reference.SetValue(anchor[0], anchor[1], 0)
    coordinate.SetCoordinateSystemToDisplay()
    coordinate.SetReferenceCoordinate(reference)
    coordinate.SetValue(offset[0], offset[1], 0)


def text_label(text: str, place: str, color: str, size: int, lines_down: int = 0) -> vtkTextActor:
    """A label at an edge or a corner of the view; ``lines_down`` moves it below other labels there."""
    (x, y), horizontal, vertical = PLACES[place]
    actor = vtkTextActor()
    actor.SetInput(text)
    prop = actor.GetTextProperty()
    prop.SetFontSize(size)
    prop.SetColor(*_hex_rgb(color))
    prop.SetBold(place in ("top", "bottom", "left", "right"))
    getattr(prop, f"SetJustificationTo{horizontal.capitalize()}")()
    getattr(prop, f"SetVerticalJustificationTo{vertical.capitalize()}")()
    dx = MARGIN if x == 0.0 else -MARGIN if x == 1.0 else 0
    dy = MARGIN if y == 0.0 else -MARGIN - lines_down * round(size * 1.5) if y == 1.0 else 0
    _anchored(actor.GetPositionCoordinate(), (x, y), (dx, dy))
    actor.SetPickable(False)
    return actor


class ScaleBar:
    """A horizontal bar of a round length in mm with its label, in the lower right corner of a 2D view.

    Its length follows the camera's zoom: ``update`` runs before each render of the view."""

    def __init__(self, renderer: vtkRenderer, color: str = "#dddddd", size: int = 9):
        self.renderer = renderer
        self.points = vtkPoints()
        self.points.SetNumberOfPoints(4)
        lines = vtkCellArray()
        for a, b in ((0, 1), (0, 2), (1, 3)):  # the bar and two ticks
            lines.InsertNextCell(2)
            lines.InsertCellPoint(a)
            lines.InsertCellPoint(b)
        polydata = vtkPolyData()
        polydata.SetPoints(self.points)
        polydata.SetLines(lines)
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputData(polydata)
        viewport = vtkCoordinate()
        viewport.SetCoordinateSystemToViewport()  # points in pixels from the view's lower left corner
        mapper.SetTransformCoordinate(viewport)
        self.bar = vtkActor2D()
        self.bar.SetMapper(mapper)
        self.bar.GetProperty().SetColor(*_hex_rgb(color))
        self.bar.GetProperty().SetLineWidth(2)
        self.label = text_label("", "lower_right", color, size)
        self.label.GetTextProperty().SetJustificationToCentered()
        self.label.GetTextProperty().SetBold(False)
        self.polydata, self.size, self.length_mm = polydata, size, 0.0
        renderer.AddViewProp(self.bar)
        renderer.AddViewProp(self.label)
        self._observer = renderer.AddObserver("StartEvent", lambda *_: self.update())

    def update(self) -> None:
        """Fit the bar to the view's current zoom (pixels per mm of the parallel camera)."""
        width, height = self.renderer.GetSize()
        camera = self.renderer.GetActiveCamera()
        scale = camera.GetParallelScale()
        if not width or not height or scale <= 0:
            return
        pixels_per_mm = height / (2.0 * scale)
        longest = min(SCALE_MAX_PIXELS, width / 4)
        fitting = [s for s in SCALE_STEPS_MM if s * pixels_per_mm <= longest]
        visible = bool(fitting)
        self.bar.SetVisibility(visible)
        self.label.SetVisibility(visible)
        if not visible:
            return
        self.length_mm = float(fitting[-1])
        length = self.length_mm * pixels_per_mm
        right, bottom = width - MARGIN - 2, MARGIN + self.size + 6
        tick = 4
        for index, (x, y) in enumerate(
            ((right - length, bottom), (right, bottom), (right - length, bottom + tick), (right, bottom + tick))
        ):
            self.points.SetPoint(index, x, y, 0)
        self.points.Modified()
        self.label.SetInput(f"{self.length_mm:g} mm")
        _anchored(self.label.GetPositionCoordinate(), (1.0, 0.0), (-MARGIN - 2 - length / 2, MARGIN))

    def remove(self) -> None:
        self.renderer.RemoveObserver(self._observer)
        self.renderer.RemoveViewProp(self.bar)
        self.renderer.RemoveViewProp(self.label)


def color_bar(lookup_table, title: str) -> vtkScalarBarActor:
    """A vertical colour bar for a slice's lookup table (it follows the table's range)."""
    bar = vtkScalarBarActor()
    bar.SetLookupTable(lookup_table)
    bar.SetTitle(title)
    bar.SetNumberOfLabels(5)
    bar.SetLabelFormat("%.3g")
    bar.SetOrientationToVertical()
    bar.SetBarRatio(0.25)
    bar.UnconstrainedFontSizeOn()
    for prop in (bar.GetTitleTextProperty(), bar.GetLabelTextProperty()):
        prop.SetColor(0.87, 0.87, 0.87)
        prop.SetFontSize(11)
        prop.SetBold(False)
        prop.SetItalic(False)
        prop.SetShadow(False)
    coordinate = bar.GetPositionCoordinate()
    coordinate.SetCoordinateSystemToNormalizedViewport()
    coordinate.SetValue(0.25, 0.06)  # below the view's label in the upper right corner
    bar.SetWidth(0.5)
    bar.SetHeight(0.74)
    return bar
