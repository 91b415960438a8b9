"""Processing ops (scans, sorting, scatter, selection, sampling, linear algebra) built from Tensor's primitives."""
from __future__ import annotations

class ProcessingMixin:
  __slots__ = ()
