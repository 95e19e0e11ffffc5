"""Map regions: polygon and box membership, Plotly selections resolved on every point, and the
density-preserving drawn sample of a big map."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import PrismError
from core.measures.regions import (
    PointIndex,
    density_sample,
    grid_cells,
    points_in_polygon,
    rows_in_shapes,
)


def _grid(step: float = 0.5, low: float = -1.0, high: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.meshgrid(np.arange(low, high + step / 2, step), np.arange(low, high + step / 2, step))
    return x.ravel(), y.ravel()


def _in_star(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Inside a counter-clockwise polygon that is star-shaped around the origin, vertices in
    order of angle: left of the edge spanning the point's angle (a different rule from ray
    casting, so it checks the index rather than repeating it)."""
    angles = np.mod(np.arctan2(py, px), 2 * np.pi)
    sector = np.searchsorted(angles, np.mod(np.arctan2(y, x), 2 * np.pi), side="right") - 1
    a, b = sector % px.size, (sector + 1) % px.size
    cross = (px[b] - px[a]) * (y - py[a]) - (py[b] - py[a]) * (x - px[a])
    return cross > 0


def test_planted_points_inside_and_outside_a_triangle() -> None:
    inside = np.array([[1.0, 0.5], [2.0, 1.0], [1.5, 0.2]])
    outside = np.array([[0.0, 3.0], [3.5, 0.5], [-1.0, 0.0], [2.0, 2.5]])
    points = np.vstack([inside, outside])
    mask = points_in_polygon(points[:, 0], points[:, 1], [0, 4, 2], [0, 0, 2])
    assert mask.tolist() == [True] * 3 + [False] * 4


def test_concave_polygon_leaves_its_notch_out() -> None:
    x, y = _grid()
    # An L: the square [0, 4]² without its upper-right quarter [2, 4]².
    ell_x, ell_y = [0, 4, 4, 2, 2, 0], [0, 0, 2, 2, 4, 4]
    mask = points_in_polygon(x, y, ell_x, ell_y)
    expected = (x >= 0) & (x < 4) & (y >= 0) & (y < 4) & ~((x >= 2) & (y >= 2))
    assert mask.tolist() == expected.tolist()
    assert not points_in_polygon(np.array([3.0]), np.array([3.0]), ell_x, ell_y)[0]


def test_points_on_a_shared_edge_belong_to_exactly_one_side() -> None:
    x, y = _grid(step=0.25)  # many points lie exactly on the edges and the vertices
    left = points_in_polygon(x, y, [0, 2, 2, 0], [0, 0, 4, 4])
    right = points_in_polygon(x, y, [2, 4, 4, 2], [0, 0, 4, 4])
    whole = points_in_polygon(x, y, [0, 4, 4, 0], [0, 0, 4, 4])
    assert not (left & right).any()
    assert ((left | right) == whole).all()
    on_edge = np.isclose(x, 2.0) & (y > 0) & (y < 4)
    assert on_edge.sum() > 0 and (left[on_edge] ^ right[on_edge]).all()
    # Two triangles tiling the square along a diagonal: no point counted twice or missed.
    lower = points_in_polygon(x, y, [0, 4, 4], [0, 0, 4])
    upper = points_in_polygon(x, y, [0, 4, 0], [0, 4, 4])
    assert not (lower & upper).any() and ((lower | upper) == whole).all()


def test_index_is_exact_on_a_many_vertex_concave_lasso() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20_000), rng.normal(size=20_000)
    angle = np.linspace(0, 2 * np.pi, 300, endpoint=False)
    radius = 1.0 + 0.5 * np.sin(5 * angle)  # a star: concave everywhere
    px, py = radius * np.cos(angle), radius * np.sin(angle)
    index = PointIndex(x, y)
    mask = index.in_polygon(px, py)
    assert mask.tolist() == _in_star(x, y, px, py).tolist()
    assert 0 < mask.sum() < x.size
    # The index does not change its inputs and answers again the same way.
    assert index.in_polygon(px, py).tolist() == mask.tolist()


def test_degenerate_polygons_hold_nothing() -> None:
    x, y = _grid()
    assert not points_in_polygon(x, y, [0, 1], [0, 1]).any()
    assert not points_in_polygon(x, y, [0, 1, 2], [1, 1, 1]).any()  # zero area
    assert not points_in_polygon(x, y, [], []).any()


def test_box_is_closed_and_takes_ranges_in_any_order() -> None:
    x, y = _grid()
    index = PointIndex(x, y)
    mask = index.in_box([3, 1], [2, 0.5])
    expected = (x >= 1) & (x <= 3) & (y >= 0.5) & (y <= 2)
    assert mask.tolist() == expected.tolist()
    assert mask[(x == 1) & (y == 2)].all()  # corners included


def test_rows_in_shapes_unions_lassos_and_boxes() -> None:
    x, y = _grid()
    index = PointIndex(x, y)
    selection = {
        "points": [],
        "lasso": [{"x": [0, 1, 1, 0], "y": [0, 0, 1, 1]}],
        "box": [{"x": [3, 4], "y": [3, 4]}],
    }
    rows = rows_in_shapes(selection, index)
    expected = np.flatnonzero(
        ((x >= 0) & (x < 1) & (y >= 0) & (y < 1)) | ((x >= 3) & (x <= 4) & (y >= 3) & (y <= 4))
    )
    assert rows is not None and rows.tolist() == expected.tolist()
    assert rows_in_shapes({"points": [{"customdata": 3}]}, index) is None
    empty = rows_in_shapes({"box": [{"x": [100, 101], "y": [100, 101]}]}, index)
    assert empty is not None and empty.size == 0
    assert rows_in_shapes({"box": [{"x": "junk"}], "lasso": ["junk"]}, index) is None


def _clustered(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A dense blob, a sparse halo and a few far outliers."""
    rng = np.random.default_rng(seed)
    dense = rng.normal(0, 0.3, size=(int(n * 0.8), 2))
    halo = rng.normal(0, 3.0, size=(n - len(dense) - 5, 2))
    outliers = np.array([[15, 15], [-15, 14], [14, -15], [-14, -14], [0, 16.0]])
    points = np.vstack([dense, halo, outliers])
    return points[:, 0], points[:, 1]


def test_density_sample_keeps_every_cell_and_each_cells_share() -> None:
    x, y = _clustered(50_000, seed=1)
    limit = 2_000
    rows = density_sample(x, y, limit, seed=0, per_side=16)
    assert rows is not None
    assert rows.size <= limit and rows.size >= limit - 16 * 16
    assert (np.diff(rows) > 0).all() and rows[0] >= 0 and rows[-1] < x.size
    cells = grid_cells(x, y, 16)
    counts = np.bincount(cells, minlength=256)
    drawn = np.bincount(cells[rows], minlength=256)
    assert ((counts > 0) == (drawn > 0)).all(), "every non-empty cell keeps a row, no other"
    # Density preserved: each cell keeps its share of the drawn rows to within one row.
    share = counts * (limit - np.count_nonzero(counts)) / (x.size - np.count_nonzero(counts))
    assert (np.abs(drawn - share) <= 1.0 + 1e-9)[counts > 0].all()
    # The outliers (alone in their cells) are all drawn.
    assert set(range(x.size - 5, x.size)) <= set(rows.tolist())


def test_density_sample_is_seeded() -> None:
    x, y = _clustered(10_000, seed=2)
    first = density_sample(x, y, 1_000, seed=7)
    again = density_sample(x, y, 1_000, seed=7)
    other = density_sample(x, y, 1_000, seed=8)
    assert first is not None and again is not None and other is not None
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()
    assert density_sample(x, y, 10_000, seed=0) is None  # everything fits: all drawn


def test_density_sample_refuses_bad_settings() -> None:
    x, y = _clustered(1_000, seed=3)
    with pytest.raises(PrismError) as error:
        density_sample(x, y, 0, seed=0)
    assert error.value.param == "limit"
    with pytest.raises(PrismError) as error:
        density_sample(x, y, 100, seed=0, per_side=20)
    assert error.value.param == "per_side"
