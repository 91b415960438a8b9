"""A tinygrad-compatible JIT array compiler: lazy Tensors -> UOp graphs -> fused LLVM (CPU) or PTX (CUDA) kernels."""
from tinygrad.tensor import Tensor
from tinygrad.dtype import dtypes, DType
from tinygrad.device import Device
from tinygrad.helpers import Context, getenv, GlobalCounters
from tinygrad.uop import Variable, UOp

def __getattr__(name: str):
  # TinyJit's module (five dataclasses, ~4.5 ms) is imported on first use: a script that never jits starts sooner
  if name == "TinyJit":
    from tinygrad.engine.jit import TinyJit
    return TinyJit
  raise AttributeError(f"module 'tinygrad' has no attribute {name!r}")

__all__ = ["Tensor", "dtypes", "DType", "Device", "Context", "getenv", "GlobalCounters", "TinyJit", "Variable", "UOp"]
