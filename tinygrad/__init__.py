"""A tinygrad-compatible JIT array compiler: lazy Tensors -> UOp graphs -> fused LLVM (CPU) or PTX (CUDA) kernels."""
from tinygrad.tensor import Tensor
from tinygrad.dtype import dtypes, DType
from tinygrad.device import Device
from tinygrad.helpers import Context, getenv, GlobalCounters
from tinygrad.engine.jit import TinyJit
from tinygrad.uop import Variable, UOp

__all__ = ["Tensor", "dtypes", "DType", "Device", "Context", "getenv", "GlobalCounters", "TinyJit", "Variable", "UOp"]
