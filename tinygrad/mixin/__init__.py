"""Tensor methods grouped by job. Each mixin only calls Tensor's public methods; `Tensor` inherits them all."""
from tinygrad.mixin.movement import MovementMixin
from tinygrad.mixin.processing import ProcessingMixin

__all__ = ["MovementMixin", "ProcessingMixin"]
