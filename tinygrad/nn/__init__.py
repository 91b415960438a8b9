"""Neural-network layers. Each is a plain class holding Tensors; calling it builds the forward graph.
Initialisation follows tinygrad/PyTorch (uniform in +-1/sqrt(fan_in) for Linear and Conv)."""
from __future__ import annotations
import math
from tinygrad.tensor import Tensor
from tinygrad.dtype import dtypes
from tinygrad.helpers import prod
from tinygrad.nn import optim, state, datasets  # noqa: F401  (tinygrad.nn.optim etc. as attributes)

def _uniform_fan_in(shape: tuple[int, ...], fan_in: int) -> Tensor:
  bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
  return Tensor.uniform(*shape, low=-bound, high=bound, requires_grad=True)

class Linear:
  """y = x @ W.T + b, with W of shape (out_features, in_features) as PyTorch."""
  def __init__(self, in_features: int, out_features: int, bias: bool = True):
    self.weight = _uniform_fan_in((out_features, in_features), in_features)
    self.bias = _uniform_fan_in((out_features,), in_features) if bias else None
  def __call__(self, x: Tensor) -> Tensor:
    if x.shape[-1] != self.weight.shape[1]:
      raise ValueError(f"Linear: input of shape {x.shape} has {x.shape[-1]} features, the layer expects {self.weight.shape[1]}")
    if not dtypes.is_float(x.dtype): x = x.cast(self.weight.dtype)
    return x.linear(self.weight.transpose(), self.bias)

class Conv2d:
  def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1, bias: bool = True):
    self.kernel_size = (kernel_size,) * 2 if isinstance(kernel_size, int) else tuple(kernel_size)
    self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
    fan_in = in_channels // groups * prod(self.kernel_size)
    self.weight = _uniform_fan_in((out_channels, in_channels // groups, *self.kernel_size), fan_in)
    self.bias = _uniform_fan_in((out_channels,), fan_in) if bias else None
  def __call__(self, x: Tensor) -> Tensor:
    return x.conv2d(self.weight, self.bias, self.groups, self.stride, self.dilation, self.padding)

class Conv1d(Conv2d):
  def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=1, padding=0, dilation=1, groups: int = 1, bias: bool = True):
    self.kernel_size = (kernel_size,) if isinstance(kernel_size, int) else tuple(kernel_size)
    self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
    fan_in = in_channels // groups * prod(self.kernel_size)
    self.weight = _uniform_fan_in((out_channels, in_channels // groups, *self.kernel_size), fan_in)
    self.bias = _uniform_fan_in((out_channels,), fan_in) if bias else None

class ConvTranspose2d:
  def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0, dilation=1, groups: int = 1, bias: bool = True):
    self.kernel_size = (kernel_size,) * 2 if isinstance(kernel_size, int) else tuple(kernel_size)
    self.stride, self.padding, self.output_padding, self.dilation, self.groups = stride, padding, output_padding, dilation, groups
    fan_in = out_channels // groups * prod(self.kernel_size)
    self.weight = _uniform_fan_in((in_channels, out_channels // groups, *self.kernel_size), fan_in)
    self.bias = _uniform_fan_in((out_channels,), fan_in) if bias else None
  def __call__(self, x: Tensor) -> Tensor:
    return x.conv_transpose2d(self.weight, self.bias, self.groups, self.stride, self.dilation, self.padding, self.output_padding)

class ConvTranspose1d(ConvTranspose2d):
  def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=1, padding=0, output_padding=0, dilation=1, groups: int = 1, bias: bool = True):
    super().__init__(in_channels, out_channels, (kernel_size,) if isinstance(kernel_size, int) else kernel_size, stride, padding, output_padding, dilation, groups, bias)

class BatchNorm:
  """Batch normalisation over every axis but 1. In training mode (Tensor.training) it normalises with the batch
  statistics and updates running_mean/running_var with `momentum`; otherwise it uses the running statistics."""
  def __init__(self, sz: int, eps: float = 1e-5, affine: bool = True, track_running_stats: bool = True, momentum: float = 0.1):
    self.eps, self.track_running_stats, self.momentum = eps, track_running_stats, momentum
    self.weight: Tensor | None = Tensor.ones(sz, requires_grad=True) if affine else None
    self.bias: Tensor | None = Tensor.zeros(sz, requires_grad=True) if affine else None
    self.num_batches_tracked = Tensor.zeros(1, dtype=dtypes.int32, requires_grad=False)
    if track_running_stats: self.running_mean, self.running_var = Tensor.zeros(sz, requires_grad=False), Tensor.ones(sz, requires_grad=False)
  def calc_stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
    shape_mask = [1, -1] + [1] * (x.ndim - 2)
    if self.track_running_stats and not Tensor.training:
      return self.running_mean, self.running_var.reshape(shape_mask).expand(x.shape)
    axes = tuple(i for i in range(x.ndim) if i != 1)
    mean = x.mean(axes)
    var = (x - mean.reshape(shape_mask)).square().mean(axes)
    return mean, var
  def __call__(self, x: Tensor) -> Tensor:
    if x.ndim < 2: raise ValueError(f"BatchNorm: input of shape {x.shape} needs a channel axis 1")
    mean, var = self.calc_stats(x)
    if Tensor.training and self.track_running_stats:
      n = x.numel() // x.shape[1]
      self.running_mean.assign(self.running_mean * (1 - self.momentum) + mean.detach() * self.momentum)
      self.running_var.assign(self.running_var * (1 - self.momentum) + var.detach() * (self.momentum * n / max(n - 1, 1)))
      self.num_batches_tracked.assign(self.num_batches_tracked + 1)
    invstd = (var.reshape([1, -1] + [1] * (x.ndim - 2)) + self.eps).rsqrt() if var.ndim == 1 else (var + self.eps).rsqrt()
    return x.batchnorm(self.weight, self.bias, mean, invstd)

BatchNorm2d = BatchNorm3d = BatchNorm1d = BatchNorm

class LayerNorm:
  def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True):
    self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    self.axis, self.eps = tuple(-1 - i for i in range(len(self.normalized_shape))), eps
    self.weight = Tensor.ones(*self.normalized_shape, requires_grad=True) if elementwise_affine else None
    self.bias = Tensor.zeros(*self.normalized_shape, requires_grad=True) if elementwise_affine else None
  def __call__(self, x: Tensor) -> Tensor:
    if x.shape[-len(self.normalized_shape):] != self.normalized_shape:
      raise ValueError(f"LayerNorm: last dims of {x.shape} must be {self.normalized_shape}")
    x = x.layernorm(eps=self.eps, axis=self.axis)
    return x if self.weight is None else x * self.weight + self.bias

class LayerNorm2d(LayerNorm):
  """LayerNorm over the channel axis of (N, C, H, W)."""
  def __call__(self, x: Tensor) -> Tensor: return super().__call__(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

class GroupNorm:
  def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
    if num_channels % num_groups: raise ValueError(f"GroupNorm: {num_channels} channels do not split into {num_groups} groups")
    self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
    self.weight = Tensor.ones(num_channels, requires_grad=True) if affine else None
    self.bias = Tensor.zeros(num_channels, requires_grad=True) if affine else None
  def __call__(self, x: Tensor) -> Tensor:
    x = x.reshape(x.shape[0], self.num_groups, -1).layernorm(eps=self.eps).reshape(x.shape)
    if self.weight is None: return x
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * self.weight.reshape(shape) + self.bias.reshape(shape)

class InstanceNorm(GroupNorm):
  """Normalise each channel of each sample on its own: GroupNorm with one group per channel."""
  def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True):
    super().__init__(num_features, num_features, eps, affine)
    self.num_features = num_features

class RMSNorm:
  def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = True):
    self.eps = eps
    self.weight = Tensor.ones(dim, requires_grad=True) if elementwise_affine else None
  def __call__(self, x: Tensor) -> Tensor:
    y = x * (x.square().mean(-1, keepdim=True) + self.eps).rsqrt()
    return y if self.weight is None else y * self.weight

class Embedding:
  def __init__(self, vocab_size: int, embed_size: int):
    self.vocab_sz, self.embed_sz = vocab_size, embed_size
    self.weight = Tensor.glorot_uniform(vocab_size, embed_size, requires_grad=True)
  def __call__(self, idx: Tensor) -> Tensor:
    if not dtypes.is_int(idx.dtype): raise TypeError(f"Embedding: indices must be integers, got {idx.dtype}")
    return self.weight.gather_rows(idx)

class LSTMCell:
  def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
    self.weight_ih = _uniform_fan_in((hidden_size * 4, input_size), hidden_size)
    self.weight_hh = _uniform_fan_in((hidden_size * 4, hidden_size), hidden_size)
    self.bias_ih = _uniform_fan_in((hidden_size * 4,), hidden_size) if bias else None
    self.bias_hh = _uniform_fan_in((hidden_size * 4,), hidden_size) if bias else None
  def __call__(self, x: Tensor, hc: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    if hc is None: hc = (Tensor.zeros(x.shape[0], self.weight_hh.shape[1]),) * 2
    gates = x.linear(self.weight_ih.T, self.bias_ih) + hc[0].linear(self.weight_hh.T, self.bias_hh)
    i, f, g, o = gates.chunk(4, 1)
    c = f.sigmoid() * hc[1] + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c
