"""Models: MLP and CIFAR-stem ResNet encoders, projection head, normalization, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hcl_study.config import (
    CifarData,
    ImageFolderData,
    LatentClassData,
    ModelConfig,
    TrainConfig,
)
from hcl_study.errors import UserError
from hcl_study.models import ContrastiveModel, build_model


def _vector_config(normalization: str = "ball", **model_fields: object) -> TrainConfig:
    return TrainConfig(
        data=LatentClassData(num_classes=6, input_dim=5),
        model=ModelConfig(width=16, depth=3, head_hidden=8, **model_fields),
        normalization=normalization,
    )


def _image_config(name: str) -> TrainConfig:
    return TrainConfig(
        data=CifarData(name="cifar10", root="unused"), model=ModelConfig(name=name, head_hidden=32)
    )


def test_mlp_layers_and_sphere_output() -> None:
    torch.manual_seed(0)
    model = build_model(_vector_config(normalization="sphere"), (5,))
    z = model(10.0 * torch.randn(4, 5))  # (4, 5)

    assert isinstance(model, ContrastiveModel)
    assert z.shape == (4, 5)
    assert torch.allclose(z.norm(dim=1), torch.ones(4), atol=1e-5)
    kinds = [type(layer) for layer in model.encoder.layers]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 3
    assert model.encoder.layers[0].in_features == 5
    assert model.encoder_dim == 16
    head_kinds = [type(layer) for layer in model.head.layers]
    assert head_kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]


def test_ball_normalization_caps_norms_at_one() -> None:
    torch.manual_seed(0)
    model = build_model(_vector_config(normalization="ball", feature_dim=64), (5,))
    x = torch.randn(8, 5)
    raw = model.head(model.encoder(x))  # (8, 64)
    z = model(x)  # (8, 64)

    assert raw.norm(dim=1).max() > 1.0  # the cap is exercised
    assert (z.norm(dim=1) <= 1.0 + 1e-6).all()
    inside = raw.norm(dim=1) <= 1.0
    assert torch.allclose(z[inside], raw[inside])


def test_no_normalization_returns_the_head_output() -> None:
    torch.manual_seed(0)
    model = build_model(_vector_config(normalization="none", feature_dim=64), (5,))
    x = torch.randn(8, 5)

    assert torch.equal(model(x), model.head(model.encoder(x)))


def test_feature_dim_defaults_to_classes_minus_one() -> None:
    default = build_model(_vector_config(), (5,))
    explicit = build_model(_vector_config(feature_dim=7), (5,))

    assert default.feature_dim == 5
    assert default.head.layers[-1].out_features == 5
    assert explicit.head.layers[-1].out_features == 7


def test_resnet18_cifar_stem_forward_and_backward() -> None:
    torch.manual_seed(0)
    model = build_model(_image_config("resnet18"), (3, 32, 32))
    conv1 = model.encoder.conv1

    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and conv1.padding == (1, 1)
    assert conv1.bias is None
    assert isinstance(model.encoder.maxpool, nn.Identity)
    assert isinstance(model.encoder.fc, nn.Identity)
    assert model.encoder_dim == 512

    z = model(torch.randn(2, 3, 32, 32))  # (2, 9)
    assert z.shape == (2, 9)
    (z * torch.randn_like(z)).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    assert model.encoder.conv1.weight.grad.abs().sum() > 0


def test_resnet50_has_a_2048_dim_encoder() -> None:
    model = build_model(_image_config("resnet50"), (3, 32, 32)).eval()
    with torch.no_grad():
        features = model.encoder(torch.randn(2, 3, 32, 32))  # (2, 2048)
        z = model(torch.randn(2, 3, 32, 32))  # (2, 9)

    assert model.encoder_dim == 2048
    assert features.shape == (2, 2048)
    assert model.head.layers[0].in_features == 2048
    assert z.shape == (2, 9)


def test_mlp_on_images_is_a_user_error() -> None:
    config = TrainConfig(data=CifarData(name="cifar10", root="unused"), model=ModelConfig())
    with pytest.raises(UserError, match="model.name"):
        build_model(config, (3, 32, 32))


def test_resnet_on_vectors_is_a_user_error() -> None:
    config = TrainConfig(data=LatentClassData(), model=ModelConfig(name="resnet18"))
    with pytest.raises(UserError, match="model.name"):
        build_model(config, (32,))


def test_head_hidden_sets_the_heads_hidden_width_with_an_affine_batch_norm() -> None:
    model = build_model(_vector_config(), (5,))  # head_hidden=8, width 16, 6 classes
    first, batch_norm, _, last = model.head.layers

    assert (first.in_features, first.out_features) == (16, 8)
    assert batch_norm.num_features == 8
    assert batch_norm.affine and batch_norm.weight.shape == (8,) and batch_norm.bias.shape == (8,)
    assert (last.in_features, last.out_features) == (8, 5)


def test_mlp_of_depth_one_has_one_hidden_layer() -> None:
    config = TrainConfig(
        data=LatentClassData(num_classes=6, input_dim=5),
        model=ModelConfig(width=16, depth=1, head_hidden=8),
    )
    model = build_model(config, (5,))

    assert [type(layer) for layer in model.encoder.layers] == [nn.Linear, nn.BatchNorm1d, nn.ReLU]
    assert (model.encoder.layers[0].in_features, model.encoder.layers[0].out_features) == (5, 16)
    assert model.encoder(torch.randn(4, 5)).shape == (4, 16)


def test_resnet_on_single_channel_images_is_a_user_error() -> None:
    config = TrainConfig(
        data=ImageFolderData(root="unused", num_classes=10), model=ModelConfig(name="resnet18")
    )
    with pytest.raises(UserError, match=r"needs RGB images \(3, H, W\).*\(1, 28, 28\)"):
        build_model(config, (1, 28, 28))
