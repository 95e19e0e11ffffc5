"""The sketch is a fixed, seeded linear map: same numbers every run, norm-preserving on average."""

import numpy as np
import pytest
import torch

from core.errors import PrismError
from core.features.sketch import MAX_DIM, KroneckerSketch, gaussian_matrix, validate_dim


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
