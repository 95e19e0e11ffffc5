"""The sketch is a fixed, seeded linear map: same numbers every run, norm-preserving on average."""

import numpy as np
import pytest
import torch

from core.errors import PrismError
from core.features.sketch import (
    MAX_DIM,
    DenseSketch,
    KroneckerSketch,
    gaussian_matrix,
    validate_dim,
)


def test_same_seed_same_matrix_other_seed_or_layer_differs():
    a = gaussian_matrix(16, 40, seed=3, name="layers.0.q", role="out")
    b = gaussian_matrix(16, 40, seed=3, name="layers.0.q", role="out")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, gaussian_matrix(16, 40, seed=4, name="layers.0.q", role="out"))
    assert not np.array_equal(a, gaussian_matrix(16, 40, seed=3, name="layers.1.q", role="out"))
    assert not np.array_equal(a, gaussian_matrix(16, 40, seed=3, name="layers.0.q", role="in"))


def test_entries_have_variance_one_over_rows():
    m = gaussian_matrix(64, 4096, seed=0, name="x", role="out")
    assert m.dtype == np.float32
    assert abs(m.var() * 64 - 1.0) < 0.02
    assert abs(m.mean()) < 0.01


def test_kronecker_sketch_equals_explicit_matrix_product():
    rng = np.random.default_rng(0)
    shapes = {"a": (12, 20), "b": (7, 9)}
    sketch = KroneckerSketch(shapes, dim=30, seed=5, stage1_k=8)
    # Per-sample gradient G = Σ_t δ_t a_tᵀ from T tokens, for each layer.
    total = torch.zeros(1, 8, 8)
    explicit = np.zeros((8, 8))
    for name, (n_out, n_in) in shapes.items():
        acts = torch.from_numpy(rng.standard_normal((1, 5, n_in)).astype(np.float32))
        grads = torch.from_numpy(rng.standard_normal((1, 5, n_out)).astype(np.float32))
        q = sketch.project_inputs(name, acts)
        p = sketch.project_output_grads(name, grads)
        total += p.transpose(1, 2) @ q
        g = grads[0].double().numpy().T @ acts[0].double().numpy()
        explicit += sketch.r_out[name].double().numpy() @ g @ sketch.r_in[name].double().numpy().T
    got = sketch.finish(total)[0].double().numpy()
    want = explicit.reshape(-1) @ sketch.stage2.double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_sketch_preserves_norms_on_average():
    rng = np.random.default_rng(1)
    shapes = {"w": (300, 200)}
    norms = []
    for seed in range(20):
        sketch = KroneckerSketch(shapes, dim=256, seed=seed, stage1_k=32)
        g = rng.standard_normal((300, 200))
        block = sketch.r_out["w"].double() @ torch.from_numpy(g) @ sketch.r_in["w"].double().T
        out = block.reshape(1, -1).float() @ sketch.stage2
        norms.append(float(out.norm() / np.linalg.norm(g)))
    assert abs(np.mean(norms) - 1.0) < 0.05


@pytest.mark.parametrize("dim", [0, -5, MAX_DIM + 1, 2.5, True])
def test_bad_dim_says_which_values_work(dim):
    with pytest.raises(PrismError, match="from 1 to 16,384"):
        validate_dim(dim)


def test_full_stage1_dim_skips_stage_two():
    sketch = KroneckerSketch({"w": (4, 4)}, dim=16, seed=0, stage1_k=4)
    assert sketch.stage2 is None
    assert sketch.finish(torch.ones(2, 4, 4)).shape == (2, 16)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_dense_sketch_is_one_seeded_matrix_drawn_in_chunks(kind):
    sketch = DenseSketch(50, dim=8, seed=3, kind=kind, chunk_cols=16)
    matrix = torch.cat([sketch.chunk(j) for j in range(sketch.n_chunks)], dim=1)
    assert matrix.shape == (8, 50)
    if kind == "rademacher":
        np.testing.assert_allclose(matrix.abs().numpy(), 1 / np.sqrt(8), rtol=1e-6)
    g = torch.randn(3, 50)
    np.testing.assert_allclose(sketch.project(g), g @ matrix.T, rtol=1e-5, atol=1e-6)
    # The same seed gives the same map, drawn again or not kept at all; another seed does not.
    uncached = DenseSketch(50, dim=8, seed=3, kind=kind, chunk_cols=16, cache_entries=0)
    assert torch.equal(uncached.project(g), sketch.project(g))
    other = DenseSketch(50, dim=8, seed=4, kind=kind, chunk_cols=16)
    assert not torch.allclose(other.project(g), sketch.project(g))


def test_dense_sketch_preserves_norms_on_average():
    rng = np.random.default_rng(2)
    g = torch.from_numpy(rng.standard_normal(3000).astype(np.float32))
    ratios = [
        float(DenseSketch(3000, dim=256, seed=seed).project(g).norm() / g.norm())
        for seed in range(20)
    ]
    assert abs(np.mean(ratios) - 1.0) < 0.05


def test_dense_sketch_refuses_bad_settings():
    with pytest.raises(PrismError, match="kind must be rademacher or gaussian"):
        DenseSketch(10, dim=4, seed=0, kind="sparse")
    with pytest.raises(PrismError, match="dim must be an integer ≥ 1"):
        DenseSketch(10, dim=0, seed=0)
    with pytest.raises(PrismError, match="flat must have 10 numbers"):
        DenseSketch(10, dim=4, seed=0).project(torch.zeros(11))
