"""Feature normalization: none, unit ball and unit sphere."""

from __future__ import annotations

import pytest
import torch

from hcl_study.losses import NORMALIZATION_MODES, FeatureNormalization, normalize_features


def features_with_norms(norms: list[float]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(len(norms), 5, generator=generator, dtype=torch.float64)  # (B, d)
    directions = directions / directions.norm(dim=1, keepdim=True)
    return directions * torch.tensor(norms, dtype=torch.float64)[:, None]  # (B, d)


NORMS = [0.0, 0.3, 1.0, 1.7, 30.0]


def test_modes_are_listed() -> None:
    assert NORMALIZATION_MODES == ("none", "ball", "sphere")


def test_ball_keeps_points_inside_and_projects_others_onto_sphere() -> None:
    z = features_with_norms(NORMS)
    projected = normalize_features(z, "ball")
    inside = torch.tensor(NORMS) <= 1.0
    assert torch.equal(projected[inside], z[inside])
    torch.testing.assert_close(
        projected[~inside].norm(dim=1), torch.ones(int((~inside).sum()), dtype=z.dtype)
    )
    torch.testing.assert_close(
        projected[~inside], z[~inside] / z[~inside].norm(dim=1, keepdim=True)
    )


def test_sphere_gives_unit_norms_in_the_same_direction() -> None:
    z = features_with_norms(NORMS[1:])
    projected = normalize_features(z, "sphere")
    torch.testing.assert_close(projected.norm(dim=1), torch.ones(len(z), dtype=z.dtype))
    cosine = (projected * z).sum(dim=1) / z.norm(dim=1)
    torch.testing.assert_close(cosine, torch.ones(len(z), dtype=z.dtype))


def test_sphere_keeps_zero_vector_finite() -> None:
    z = torch.zeros(2, 3, requires_grad=True)
    projected = normalize_features(z, "sphere")
    assert torch.equal(projected, torch.zeros(2, 3))
    (10.0 * projected).sum().backward()  # 10 / finfo.tiny would overflow float32
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize(("mode", "norm"), [("ball", 1.7), ("ball", 30.0), ("sphere", 0.3)])
def test_projection_gradient_is_the_tangent_projection(mode: str, norm: float) -> None:
    """Where z is divided by its norm, d(z/‖z‖)/dz = (I − uuᵀ)/‖z‖ with u = z/‖z‖: the norm
    is differentiated, not treated as a constant."""
    z = features_with_norms([norm])[0]  # (d,)
    jacobian = torch.autograd.functional.jacobian(
        lambda row: normalize_features(row[None, :], mode)[0], z
    )  # (d, d)
    u = z / z.norm()
    expected = (torch.eye(len(z), dtype=z.dtype) - torch.outer(u, u)) / norm
    torch.testing.assert_close(jacobian, expected)


def test_ball_gradient_inside_is_the_identity() -> None:
    z = features_with_norms([0.3])[0]
    jacobian = torch.autograd.functional.jacobian(
        lambda row: normalize_features(row[None, :], "ball")[0], z
    )
    torch.testing.assert_close(jacobian, torch.eye(len(z), dtype=z.dtype))


def test_none_is_identity() -> None:
    z = features_with_norms(NORMS)
    assert normalize_features(z, "none") is z


@pytest.mark.parametrize("mode", NORMALIZATION_MODES)
def test_module_equals_function(mode: str) -> None:
    z = features_with_norms(NORMS)
    module = FeatureNormalization(mode)
    assert torch.equal(module(z), normalize_features(z, mode))
    assert repr(mode) in repr(module)


def test_unknown_mode_raises() -> None:
    z = features_with_norms(NORMS)
    with pytest.raises(ValueError, match="normalization must be one of"):
        normalize_features(z, "cube")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="normalization must be one of"):
        FeatureNormalization("cube")  # type: ignore[arg-type]
