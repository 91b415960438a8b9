"""nn layers: each forward pass against a float64 numpy reference (naive loops for convolutions, the scatter-add
definition for transposed convolution), initialisation bounds, BatchNorm running statistics, and the switch between
training and evaluation behaviour (Tensor.training, Context(TRAINING=...), Tensor.train()).

Layers hold float32 parameters, so results are compared with float32 tolerances for a short reduction; the inputs
are drawn in [-2, 2] so that sums of a few dozen products stay well inside those tolerances.
"""
import math
import numpy as np
import pytest
from hypothesis import given, assume, strategies as st
from strategies import examples, TOLERANCES
from tinygrad import Tensor, nn, dtypes, Context
from tinygrad.uop import Ops, MOVEMENT

RTOL, ATOL = TOLERANCES["reduce"]["float32"]

def rnd(*shape, seed=0, lo=-2.0, hi=2.0) -> np.ndarray:
  return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)

def close(t: Tensor, ref: np.ndarray, rtol=RTOL, atol=ATOL):
  assert t.dtype == dtypes.float32, f"dtype {t.dtype}"
  assert tuple(t.shape) == ref.shape, f"shape {t.shape} != {ref.shape}"
  np.testing.assert_allclose(t.numpy().astype(np.float64), ref, rtol=rtol, atol=atol)

@pytest.fixture
def restore_training():
  prev = Tensor.training
  yield
  Tensor.training = prev

# ---------------------------------------------------------------- numpy references

def conv_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
  """Naive cross-correlation of (N, Cin, H, W) with (Cout, Cin/groups, KH, KW), as torch.nn.functional.conv2d."""
  x, w = x.astype(np.float64), w.astype(np.float64)
  pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
  (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
  n, cin, h, wd = x.shape
  cout, cg, kh, kw = w.shape
  xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
  oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
  out = np.zeros((n, cout, oh, ow))
  per_group = cout // groups
  for b_ in range(n):
    for o in range(cout):
      g = o // per_group
      for i in range(oh):
        for j in range(ow):
          patch = xp[b_, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
          out[b_, o, i, j] = (patch * w[o]).sum()
  return out if b is None else out + b.astype(np.float64).reshape(1, -1, 1, 1)

def conv_transpose_ref(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1) -> np.ndarray:
  """Transposed convolution by its definition: every input element scatters x * kernel into the output at
  (i*stride + k*dilation), then `padding` is cropped from each side. w: (Cin, Cout/groups, KH, KW)."""
  x, w = x.astype(np.float64), w.astype(np.float64)
  pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
  (sh, sw), (ph, pw), (oph, opw), (dh, dw) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
  n, cin, h, wd = x.shape
  _, cog, kh, kw = w.shape
  cin_g = cin // groups
  full = np.zeros((n, cog * groups, (h - 1) * sh + dh * (kh - 1) + 1 + oph, (wd - 1) * sw + dw * (kw - 1) + 1 + opw))
  for b_ in range(n):
    for ci in range(cin):
      g = ci // cin_g
      for i in range(h):
        for j in range(wd):
          for ki in range(kh):
            for kj in range(kw):
              full[b_, g * cog:(g + 1) * cog, i * sh + ki * dh, j * sw + kj * dw] += x[b_, ci, i, j] * w[ci, :, ki, kj]
  oh, ow = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1, (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
  out = full[:, :, ph:ph + oh, pw:pw + ow]
  return out if b is None else out + b.astype(np.float64).reshape(1, -1, 1, 1)

def sigmoid(x): return 1 / (1 + np.exp(-x))

# ---------------------------------------------------------------- Linear

def test_linear_weight_is_out_by_in():
  l = nn.Linear(5, 3)
  assert l.weight.shape == (3, 5) and l.bias.shape == (3,)

def test_linear_init_within_inverse_sqrt_fan_in():
  l = nn.Linear(64, 48)
  bound = 1 / math.sqrt(64)
  w, b = l.weight.numpy(), l.bias.numpy()
  assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
  # uniform over the whole interval, not a constant or a narrow band
  assert w.min() < -0.9 * bound and w.max() > 0.9 * bound and abs(w.mean()) < 0.1 * bound

def test_linear_forward_matches_numpy():
  l = nn.Linear(4, 3)
  x = rnd(2, 4)
  close(l(Tensor(x)), x.astype(np.float64) @ l.weight.numpy().T.astype(np.float64) + l.bias.numpy())

def test_linear_batched_input_applies_to_last_dim():
  l = nn.Linear(4, 2)
  x = rnd(2, 3, 4, seed=1)
  close(l(Tensor(x)), x.astype(np.float64) @ l.weight.numpy().T.astype(np.float64) + l.bias.numpy())

def test_linear_without_bias():
  l = nn.Linear(4, 3, bias=False)
  assert l.bias is None
  x = rnd(2, 4, seed=2)
  close(l(Tensor(x)), x.astype(np.float64) @ l.weight.numpy().T.astype(np.float64))

def test_linear_wrong_feature_count_raises():
  with pytest.raises(ValueError, match="4"):
    nn.Linear(4, 3)(Tensor(rnd(2, 5)))

LAYERS = {
  "Linear": lambda: nn.Linear(3, 2), "Conv2d": lambda: nn.Conv2d(2, 2, 3), "Conv1d": lambda: nn.Conv1d(2, 2, 3),
  "ConvTranspose2d": lambda: nn.ConvTranspose2d(2, 2, 3), "BatchNorm2d": lambda: nn.BatchNorm2d(3),
  "LayerNorm": lambda: nn.LayerNorm(3), "GroupNorm": lambda: nn.GroupNorm(1, 2), "RMSNorm": lambda: nn.RMSNorm(3),
  "Embedding": lambda: nn.Embedding(5, 3), "LSTMCell": lambda: nn.LSTMCell(2, 3),
}

@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_trainable_params_require_grad(layer):
  # running statistics are buffers; every weight and bias is trainable without handing it to an optimizer first
  from tinygrad.nn.state import get_state_dict
  params = {k: v for k, v in get_state_dict(LAYERS[layer]()).items() if not k.startswith(("running_", "num_batches"))}
  assert params and all(t.requires_grad for t in params.values()), {k: t.requires_grad for k, t in params.items()}

# ---------------------------------------------------------------- convolutions

conv_cfgs = st.fixed_dictionaries({
  "stride": st.integers(1, 2), "padding": st.integers(0, 2), "dilation": st.integers(1, 2), "groups": st.sampled_from([1, 2]),
  "k": st.tuples(st.integers(1, 3), st.integers(1, 3)), "bias": st.booleans()})

@examples(6)
@given(cfg=conv_cfgs)
def test_conv2d_matches_naive_numpy(cfg):
  g = cfg["groups"]
  c = nn.Conv2d(2 * g, 2 * g, cfg["k"], stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                groups=g, bias=cfg["bias"])
  x = rnd(2, 2 * g, 6, 5, seed=3)
  ref = conv_ref(x, c.weight.numpy(), None if c.bias is None else c.bias.numpy(), cfg["stride"], cfg["padding"],
                 cfg["dilation"], g)
  close(c(Tensor(x)), ref)

def test_conv2d_weight_shape_and_init_bound():
  c = nn.Conv2d(4, 6, (3, 2), groups=2)
  assert c.weight.shape == (6, 2, 3, 2) and c.bias.shape == (6,)
  bound = 1 / math.sqrt(2 * 3 * 2)
  assert np.all(np.abs(c.weight.numpy()) <= bound) and np.all(np.abs(c.bias.numpy()) <= bound)

def test_conv2d_asymmetric_stride_padding_matches_naive_numpy():
  c = nn.Conv2d(3, 2, (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
  x = rnd(1, 3, 5, 7, seed=4)
  close(c(Tensor(x)), conv_ref(x, c.weight.numpy(), c.bias.numpy(), (2, 1), (1, 0), (1, 2)))

def test_conv2d_padding_same_keeps_size():
  c = nn.Conv2d(2, 3, 3, padding="same")
  x = rnd(1, 2, 5, 4, seed=5)
  close(c(Tensor(x)), conv_ref(x, c.weight.numpy(), c.bias.numpy(), 1, 1))

def _stored_elements(t: Tensor) -> int:
  """The size of the buffer a realized tensor views (a graph reaching a parameter is served from its node's buffer)."""
  u = t.uop if t.uop.realized is None else t.uop.realized
  while u.op in MOVEMENT: u = u.src[0]
  assert u.op is Ops.BUFFER, u.op
  return u.arg.size

FLAT = {  # (N, Cin, H, W), (Cout, Cin/groups, KH, KW), padding, dilation, groups
  "56_wide_3x3": ((2, 3, 56, 56), (4, 3, 3, 3), 1, 1, 1),
  "7x7_groups": ((2, 4, 7, 7), (6, 2, 3, 3), 1, 1, 2),
  "dilated_rect_kernel": ((1, 2, 9, 11), (3, 2, 3, 2), (2, 1), (2, 1), 1),
  "5x5_kernel_pad2": ((1, 2, 5, 6), (2, 2, 5, 5), 2, 1, 1),
}

@pytest.mark.parametrize("cfg", sorted(FLAT))
def test_flat_row_conv_matches_numpy(cfg):
  # a stride-1 padded conv that needs no gradient runs over whole padded rows end to end (tensor.py _flat_windows);
  # its result is a view dropping each row's last Wp - Wo outputs
  xs, ws, padding, dilation, groups = FLAT[cfg]
  x, w, b = rnd(*xs, seed=1), rnd(*ws, seed=2), rnd(ws[0], seed=3)
  out = Tensor(x).conv2d(Tensor(w), Tensor(b), groups=groups, padding=padding, dilation=dilation).realize()
  ref = conv_ref(x, w, b, 1, padding, dilation, groups)
  close(out, ref)
  ph, pw = (padding, padding) if isinstance(padding, int) else padding
  assert _stored_elements(out) == xs[0] * ws[0] * ref.shape[2] * (xs[3] + 2 * pw), "not computed over whole padded rows"
  # its gradients (requires_grad set after the graph was built) are those of the windows' graph
  tx, tw = Tensor(x), Tensor(w)
  lazy = tx.conv2d(tw, groups=groups, padding=padding, dilation=dilation)
  tw.requires_grad_()
  gw, = (lazy * lazy).sum().gradient(tw)
  tw2 = Tensor(w, requires_grad=True)
  eager = Tensor(x).conv2d(tw2, groups=groups, padding=padding, dilation=dilation)
  (eager * eager).sum().backward()
  np.testing.assert_allclose(gw.numpy(), tw2.grad.numpy(), rtol=1e-4, atol=1e-3)

def test_conv_that_needs_a_gradient_keeps_rows_of_its_width():
  # whole-row windows' gradients are slower (resnet's step 6.2 -> 13.6 ms of kernels): a conv reaching a parameter
  # that requires grad keeps the windows, and stores exactly its outputs
  x = rnd(2, 3, 14, 14, seed=4)
  c = nn.Conv2d(3, 4, 3, padding=1)
  out = c(Tensor(x)).realize()
  assert _stored_elements(out) == 2 * 4 * 14 * 14
  with Context(TRAINING=0):
    prev, Tensor.no_grad = Tensor.no_grad, True
    try: flat = c(Tensor(x)).realize()
    finally: Tensor.no_grad = prev
  assert _stored_elements(flat) == 2 * 4 * 14 * 16
  np.testing.assert_allclose(flat.numpy(), out.numpy(), rtol=1e-6, atol=1e-6)
  # rows of 64 fill their vectors: 64 + 2 padded columns would need more, so those keep their rows
  wide = Tensor(rnd(1, 3, 8, 64, seed=5)).conv2d(Tensor(rnd(4, 3, 3, 3, seed=6)), padding=1).realize()
  assert _stored_elements(wide) == 4 * 8 * 64

@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_conv1d_matches_naive_numpy(stride, padding, dilation):
  c = nn.Conv1d(2, 3, 3, stride=stride, padding=padding, dilation=dilation)
  assert c.weight.shape == (3, 2, 3)
  x = rnd(2, 2, 9, seed=6)
  ref = conv_ref(x[:, :, None, :], c.weight.numpy()[:, :, None, :], c.bias.numpy(), (1, stride), (0, padding), (1, dilation))
  close(c(Tensor(x)), ref[:, :, 0, :])

tconv_cfgs = st.fixed_dictionaries({
  "stride": st.integers(1, 3), "padding": st.integers(0, 2), "dilation": st.integers(1, 2), "groups": st.sampled_from([1, 2]),
  "k": st.tuples(st.integers(1, 3), st.integers(1, 3)), "output_padding": st.integers(0, 2), "bias": st.booleans()})

@examples(6)
@given(cfg=tconv_cfgs)
def test_conv_transpose2d_matches_scatter_add(cfg):
  # torch requires output_padding < max(stride, dilation) and a non-negative output size
  assume(cfg["output_padding"] < max(cfg["stride"], cfg["dilation"]))
  assume(cfg["padding"] <= cfg["dilation"] * (min(cfg["k"]) - 1))
  g = cfg["groups"]
  c = nn.ConvTranspose2d(2 * g, 3 * g, cfg["k"], stride=cfg["stride"], padding=cfg["padding"],
                         output_padding=cfg["output_padding"], dilation=cfg["dilation"], groups=g, bias=cfg["bias"])
  assert c.weight.shape == (2 * g, 3, *cfg["k"])
  x = rnd(2, 2 * g, 3, 4, seed=7)
  ref = conv_transpose_ref(x, c.weight.numpy(), None if c.bias is None else c.bias.numpy(), cfg["stride"], cfg["padding"],
                           cfg["output_padding"], cfg["dilation"], g)
  close(c(Tensor(x)), ref)

# ---------------------------------------------------------------- BatchNorm

def bn_train_ref(x, w, b, eps=1e-5):
  axes = tuple(i for i in range(x.ndim) if i != 1)
  shape = [1, -1] + [1] * (x.ndim - 2)
  x = x.astype(np.float64)
  mean, var = x.mean(axes), x.var(axes)
  return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * w.reshape(shape) + b.reshape(shape)

def _bn_with_affine(c):
  bn = nn.BatchNorm2d(c)
  bn.weight, bn.bias = Tensor(rnd(c, seed=8, lo=0.5, hi=1.5), requires_grad=True), Tensor(rnd(c, seed=9), requires_grad=True)
  return bn

def test_batchnorm_train_normalizes_with_batch_stats(restore_training):
  bn = _bn_with_affine(3)
  x = rnd(4, 3, 2, 2, seed=10) * 3 + 1
  Tensor.training = True
  close(bn(Tensor(x)), bn_train_ref(x, bn.weight.numpy(), bn.bias.numpy()), atol=1e-5)

def test_batchnorm1d_train_on_2d_input(restore_training):
  bn = nn.BatchNorm1d(3)
  x = rnd(5, 3, seed=11) * 2 - 1
  Tensor.training = True
  close(bn(Tensor(x)), bn_train_ref(x, np.ones(3), np.zeros(3)), atol=1e-5)

def test_batchnorm_running_stats_momentum_and_unbiased_var(restore_training):
  bn = nn.BatchNorm2d(3, momentum=0.1)
  Tensor.training = True
  rm, rv = np.zeros(3), np.ones(3)
  for step in range(3):
    x = rnd(4, 3, 2, 3, seed=20 + step) * (step + 1) + step
    bn(Tensor(x)).numpy()
    xd = x.astype(np.float64)
    rm = 0.9 * rm + 0.1 * xd.mean((0, 2, 3))
    rv = 0.9 * rv + 0.1 * xd.var((0, 2, 3), ddof=1)  # unbiased, as torch
  np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-5, atol=1e-6)

def test_batchnorm_counts_batches(restore_training):
  bn = nn.BatchNorm2d(2)
  Tensor.training = True
  for s in range(2): bn(Tensor(rnd(2, 2, 2, 2, seed=s))).numpy()
  assert bn.num_batches_tracked.numpy().reshape(-1)[0] == 2

def test_batchnorm_eval_uses_running_stats(restore_training):
  bn = _bn_with_affine(3)
  bn.running_mean, bn.running_var = Tensor(np.array([0.5, -1.0, 2.0], np.float32)), Tensor(np.array([4.0, 0.25, 1.0], np.float32))
  Tensor.training = False
  x = rnd(2, 3, 2, 2, seed=12)
  shape = (1, 3, 1, 1)
  ref = (x - np.array([0.5, -1.0, 2.0]).reshape(shape)) / np.sqrt(np.array([4.0, 0.25, 1.0]).reshape(shape) + 1e-5)
  close(bn(Tensor(x)), ref * bn.weight.numpy().reshape(shape) + bn.bias.numpy().reshape(shape))

def test_batchnorm_eval_leaves_running_stats_unchanged(restore_training):
  bn = nn.BatchNorm2d(2)
  Tensor.training = False
  bn(Tensor(rnd(2, 2, 3, 3, seed=13) + 5)).numpy()
  np.testing.assert_array_equal(bn.running_mean.numpy(), [0, 0])
  np.testing.assert_array_equal(bn.running_var.numpy(), [1, 1])

# ---------------------------------------------------------------- training mode switches

def _dropout_out(n=4000) -> np.ndarray: return Tensor.ones(n).dropout(0.5).numpy()

def _looks_dropped(out: np.ndarray) -> bool:
  return set(np.unique(out)) <= {0.0, 2.0} and 0.4 < (out == 0).mean() < 0.6

def test_dropout_active_with_tensor_training(restore_training):
  Tensor.training = True
  assert _looks_dropped(_dropout_out())

def test_dropout_identity_without_training(restore_training):
  Tensor.training = False
  np.testing.assert_array_equal(_dropout_out(), np.ones(4000))

def test_dropout_active_inside_context_training(restore_training):
  Tensor.training = False
  with Context(TRAINING=1):
    out = _dropout_out()
  assert _looks_dropped(out)

def test_context_training_restores_previous_mode(restore_training):
  Tensor.training = False
  with Context(TRAINING=1): pass
  np.testing.assert_array_equal(_dropout_out(), np.ones(4000))
  assert Tensor.training is False

def test_context_training_0_disables_dropout(restore_training):
  Tensor.training = True
  with Context(TRAINING=0):
    out = _dropout_out()
  np.testing.assert_array_equal(out, np.ones(4000))

def test_tensor_train_context_enables_dropout(restore_training):
  Tensor.training = False
  with Tensor.train():
    out = _dropout_out()
  assert _looks_dropped(out)

def test_dropout_keeps_expected_value(restore_training):
  Tensor.training = True
  out = Tensor.ones(20000).dropout(0.25).numpy()
  assert abs(out.mean() - 1.0) < 0.03 and set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}

def test_batchnorm_context_training_uses_batch_stats(restore_training):
  bn = nn.BatchNorm2d(2)
  Tensor.training = False
  x = rnd(3, 2, 2, 2, seed=14) + 4  # mean far from the running mean 0
  with Context(TRAINING=1):
    out = bn(Tensor(x)).numpy()
  close(Tensor(out), bn_train_ref(x, np.ones(2), np.zeros(2)), atol=1e-5)

def test_batchnorm_context_training_updates_running_mean(restore_training):
  bn = nn.BatchNorm2d(2)
  Tensor.training = False
  x = rnd(3, 2, 2, 2, seed=15) + 4
  with Context(TRAINING=1):
    bn(Tensor(x)).numpy()
  np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * x.astype(np.float64).mean((0, 2, 3)), rtol=1e-5)

def test_batchnorm_outside_context_uses_running_stats(restore_training):
  bn = nn.BatchNorm2d(2)
  Tensor.training = False
  x = rnd(3, 2, 2, 2, seed=16) + 4
  with Context(TRAINING=1): pass
  close(bn(Tensor(x)), x.astype(np.float64) / np.sqrt(1 + 1e-5))  # running mean 0, var 1

# ---------------------------------------------------------------- other norms

def test_layernorm_matches_numpy():
  ln = nn.LayerNorm(5)
  ln.weight, ln.bias = Tensor(rnd(5, seed=17)), Tensor(rnd(5, seed=18))
  x = rnd(3, 5, seed=19) * 3 + 1
  xd = x.astype(np.float64)
  ref = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
  close(ln(Tensor(x)), ref * ln.weight.numpy() + ln.bias.numpy(), atol=1e-5)

def test_layernorm_multi_dim_normalized_shape():
  ln = nn.LayerNorm((2, 3), elementwise_affine=False)
  x = rnd(4, 2, 3, seed=20)
  xd = x.astype(np.float64)
  ref = (xd - xd.mean((1, 2), keepdims=True)) / np.sqrt(xd.var((1, 2), keepdims=True) + 1e-5)
  close(ln(Tensor(x)), ref, atol=1e-5)

def test_groupnorm_matches_numpy():
  gn = nn.GroupNorm(2, 4)
  gn.weight, gn.bias = Tensor(rnd(4, seed=21)), Tensor(rnd(4, seed=22))
  x = rnd(2, 4, 3, 3, seed=23) * 2
  xd = x.astype(np.float64).reshape(2, 2, -1)
  ref = ((xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
  close(gn(Tensor(x)), ref * gn.weight.numpy().reshape(1, 4, 1, 1) + gn.bias.numpy().reshape(1, 4, 1, 1), atol=1e-5)

def test_groupnorm_rejects_indivisible_channels():
  with pytest.raises(ValueError):
    nn.GroupNorm(3, 4)

def test_rmsnorm_matches_numpy():
  rn = nn.RMSNorm(6)
  rn.weight = Tensor(rnd(6, seed=24))
  x = rnd(2, 3, 6, seed=25)
  xd = x.astype(np.float64)
  close(rn(Tensor(x)), xd / np.sqrt((xd ** 2).mean(-1, keepdims=True) + 1e-6) * rn.weight.numpy(), atol=1e-5)

def test_instancenorm_matches_numpy():
  inn = nn.InstanceNorm(3, affine=False)
  x = rnd(2, 3, 4, 4, seed=26)
  xd = x.astype(np.float64)
  ref = (xd - xd.mean((2, 3), keepdims=True)) / np.sqrt(xd.var((2, 3), keepdims=True) + 1e-5)
  close(inn(Tensor(x)), ref, atol=1e-5)

# ---------------------------------------------------------------- Embedding, LSTMCell

@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
def test_embedding_selects_rows(idx_dtype):
  emb = nn.Embedding(10, 4)
  idx = np.array([[1, 9, 0], [3, 3, 7]], dtype=idx_dtype)
  out = emb(Tensor(idx))
  assert out.shape == (2, 3, 4)
  np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[idx])

def test_embedding_rejects_float_indices():
  with pytest.raises(TypeError):
    nn.Embedding(4, 2)(Tensor([0.0, 1.0]))

def test_embedding_grad_accumulates_repeated_rows():
  emb = nn.Embedding(4, 2)
  emb(Tensor([[1, 1, 3]])).sum().backward()
  np.testing.assert_array_equal(emb.weight.grad.numpy(), [[0, 0], [2, 2], [0, 0], [1, 1]])

def _lstm_ref(cell, x, h, c):
  g = x @ cell.weight_ih.numpy().T.astype(np.float64) + cell.bias_ih.numpy() + h @ cell.weight_hh.numpy().T.astype(np.float64) + cell.bias_hh.numpy()
  i, f, gg, o = np.split(g, 4, axis=1)
  c2 = sigmoid(f) * c + sigmoid(i) * np.tanh(gg)
  return sigmoid(o) * np.tanh(c2), c2

def test_lstmcell_shapes():
  cell = nn.LSTMCell(5, 7)
  assert cell.weight_ih.shape == (28, 5) and cell.weight_hh.shape == (28, 7) and cell.bias_ih.shape == (28,)
  h, c = cell(Tensor(rnd(3, 5)))
  assert h.shape == (3, 7) and c.shape == (3, 7)

def test_lstmcell_matches_numpy_from_zero_state():
  cell = nn.LSTMCell(4, 3)
  x = rnd(2, 4, seed=27).astype(np.float64)
  h, c = cell(Tensor(x.astype(np.float32)))
  rh, rc = _lstm_ref(cell, x, np.zeros((2, 3)), np.zeros((2, 3)))
  close(h, rh)
  close(c, rc)

def test_lstmcell_matches_numpy_with_given_state():
  cell = nn.LSTMCell(4, 3)
  x, h0, c0 = rnd(2, 4, seed=28), rnd(2, 3, seed=29), rnd(2, 3, seed=30)
  h, c = cell(Tensor(x), (Tensor(h0), Tensor(c0)))
  rh, rc = _lstm_ref(cell, x.astype(np.float64), h0.astype(np.float64), c0.astype(np.float64))
  close(h, rh)
  close(c, rc)


def sdpa_ref(q, k, v, mask=None, causal=False):
  """softmax(q k^T / sqrt(d) + mask) v in float64; a boolean mask (or causal) keeps where True."""
  scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
  if causal: scores = np.where(np.tril(np.ones(scores.shape[-2:], bool)), scores, -np.inf)
  if mask is not None: scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + mask
  e = np.exp(scores - scores.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True) @ v

@pytest.mark.parametrize("causal,masked", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_scaled_dot_product_attention_matches_numpy(causal, masked, kv_heads):
  rng = np.random.default_rng(kv_heads)
  q, k, v = rng.standard_normal((2, 4, 5, 8)), rng.standard_normal((2, kv_heads, 5, 8)), rng.standard_normal((2, kv_heads, 5, 3))
  mask = rng.standard_normal((5, 5)) if masked else None
  # grouped-query attention: query heads 2h and 2h+1 (4 heads over 2) share key/value head h
  rep = lambda a: np.repeat(a, 4 // kv_heads, axis=1)
  out = Tensor(q).scaled_dot_product_attention(Tensor(k), Tensor(v), None if mask is None else Tensor(mask), is_causal=causal,
                                               enable_gqa=kv_heads != 4)
  np.testing.assert_allclose(out.numpy(), sdpa_ref(q, rep(k), rep(v), mask, causal), rtol=1e-10, atol=1e-10)

def test_scaled_dot_product_attention_gqa_errors():
  q, kv = Tensor.ones(1, 4, 2, 8), Tensor.ones(1, 3, 2, 8)
  with pytest.raises(ValueError, match=r"enable_gqa, the query's 4 heads must be a multiple of the key's and value's"):
    q.scaled_dot_product_attention(kv, kv, enable_gqa=True)
