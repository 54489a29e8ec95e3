"""Encoders (MLP, CIFAR-stem ResNets), the projection head and the assembled model."""

from hcl_study.models.build import build_model
from hcl_study.models.contrastive import ContrastiveModel

__all__ = ["ContrastiveModel", "build_model"]
