"""Build the configured model for a data set's input shape."""

from __future__ import annotations

from torch import nn

from hcl_study.config import TrainConfig
from hcl_study.errors import UserError
from hcl_study.losses.normalization import FeatureNormalization
from hcl_study.models.contrastive import ContrastiveModel
from hcl_study.models.head import ProjectionHead
from hcl_study.models.mlp import MLPEncoder
from hcl_study.models.resnet import ENCODER_DIMS, cifar_resnet


def _encoder(config: TrainConfig, input_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    name = config.model.name
    if name == "mlp":
        if len(input_shape) != 1:
            raise UserError(
                f"model.name: 'mlp' needs vector inputs, but data.name '{config.data.name}' "
                f"gives images of shape {input_shape}; use model.name 'resnet18' or 'resnet50'."
            )
        encoder = MLPEncoder(input_shape[0], config.model.width, config.model.depth)
        return encoder, encoder.output_dim
    if len(input_shape) != 3 or input_shape[0] != 3:
        raise UserError(
            f"model.name: '{name}' needs RGB images (3, H, W), but data.name "
            f"'{config.data.name}' gives inputs of shape {input_shape}; use model.name 'mlp'."
        )
    return cifar_resnet(name), ENCODER_DIMS[name]


def build_model(config: TrainConfig, input_shape: tuple[int, ...]) -> ContrastiveModel:
    """Encoder (MLP or CIFAR-stem ResNet), projection head and normalization.

    Args:
        config: The run's configuration (model, normalization, feature_dim).
        input_shape: Shape of one input, `(D,)` or `(3, H, W)` (`DataBundle.input_shape`).

    Raises:
        UserError: If the model does not fit the input shape (MLP on images, ResNet on vectors).
    """
    encoder, encoder_dim = _encoder(config, input_shape)
    head = ProjectionHead(encoder_dim, config.model.head_hidden, config.feature_dim)
    return ContrastiveModel(
        encoder=encoder,
        head=head,
        normalization=FeatureNormalization(config.normalization),
        encoder_dim=encoder_dim,
        feature_dim=config.feature_dim,
    )
