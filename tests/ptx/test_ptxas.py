"""PTX without a GPU: every kernel of a representative set of Tensor programs is rendered for sm_80 and sm_90 and
assembled by ptxas (syntax, types, undeclared registers); a subset also runs in a small PTX interpreter
(tests/ptx/emulator.py) and must match the CPU backend (GPU index mapping, guards, casts, NaN and integer semantics).
Kernel ASTs are taken from the scheduler without running anything: normalize + create_schedule."""
from __future__ import annotations
import math, os, shutil, subprocess, tempfile, glob
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import pytest
from tinygrad import Tensor, dtypes
from tinygrad.uop import UOp, Ops
from tinygrad.dtype import to_np_dtype, to_dtype
from tinygrad.engine.realize import normalize, kernel_cache
from tinygrad.engine.schedule import create_schedule
from codegen.ptx import render_ptx, ptx_version, parse_arch, magic_u, arch_from_cc, PTXKernel
from codegen.gpu import optimize_gpu, launch_dims, BLOCK
from .emulator import Kernel, Memory, PTXEmuError

ARCHS = ("sm_80", "sm_90")

def find_ptxas() -> str | None:
  if (p := shutil.which("ptxas")): return p
  try:  # the pip package nvidia-cuda-nvcc ships ptxas inside site-packages
    import nvidia
    for base in nvidia.__path__:
      for cand in glob.glob(os.path.join(base, "cuda_nvcc", "bin", "ptxas")) + glob.glob(os.path.join(base, "*", "bin", "ptxas")):
        if os.access(cand, os.X_OK): return cand
  except ImportError: pass
  return None

PTXAS = find_ptxas()

def numbered(src: str) -> str: return "\n".join(f"{i + 1:4d}  {l}" for i, l in enumerate(src.splitlines()))

def assemble(k: PTXKernel, arch: str) -> tuple[int, str]:
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, f"{k.name}.ptx")
    with open(path, "w") as f: f.write(k.src)
    r = subprocess.run([PTXAS, f"-arch={arch}", path, "-o", os.path.join(d, "out.cubin")], capture_output=True, text=True)
  return r.returncode, r.stderr + r.stdout

def kernel_asts(t: Tensor) -> list[UOp]:
  norm, _, _, _ = normalize([t.uop])
  return [it.ast for it in create_schedule(list(norm), multi_output=False)]

# ---------------------------------------------------------------- the programs
rng = np.random.default_rng(0)
def f32(*shape, lo=-2.0, hi=2.0): return Tensor(rng.uniform(lo, hi, shape).astype(np.float32))
def arr(dtype: str, *shape):
  npdt = to_np_dtype(getattr(dtypes, dtype))
  if dtype == "bool": a = rng.integers(0, 2, shape).astype(bool)
  elif np.issubdtype(npdt, np.integer):
    info = np.iinfo(npdt)
    a = rng.integers(max(info.min, -100), min(info.max, 100), shape, endpoint=True).astype(npdt)
  else: a = rng.uniform(-3, 3, shape).astype(npdt)
  return Tensor(a, dtype=getattr(dtypes, dtype))

ALL_DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "bfloat16", "float32", "float64"]
INTS = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]

def conv1d_like():
  x, w = f32(2, 3, 10), f32(4, 3, 3)          # (batch, cin, width), (cout, cin, k)
  xp = x.pad(((0, 0), (0, 0), (1, 1)))
  cols = Tensor.stack(*[xp[:, :, k:k + 10] for k in range(3)], dim=-1)   # (b, cin, w, k)
  return (cols.reshape(2, 1, 3, 10, 3) * w.reshape(1, 4, 3, 1, 3)).sum((2, 4))

def conv2d_like():
  x, w = f32(1, 2, 5, 5), f32(3, 2, 3, 3)
  xp = x.pad(((0, 0), (0, 0), (1, 1), (1, 1)))
  patches = Tensor.stack(*[xp[:, :, i:i + 5, j:j + 5] for i in range(3) for j in range(3)], dim=-1)  # (1,2,5,5,9)
  return (patches.reshape(1, 1, 2, 5, 5, 9) * w.reshape(1, 3, 2, 1, 1, 9)).sum((2, 5)).relu()

def conv_input_grad():
  # products of 4 MiB over 8 channels: the input gradient sums its 9 offsets' reduces in one kernel (lower._disjoint)
  x = Tensor(rng.uniform(-2, 2, (16, 8, 32, 32)).astype(np.float32), requires_grad=True)
  (x.conv2d(f32(8, 8, 3, 3), padding=1) * f32(16, 8, 32, 32)).sum().backward()
  return x.grad

def gather_onehot():
  table, idx = f32(6, 4), Tensor(np.array([3, 0, 5, 5, 1], dtype=np.int32))
  onehot = (idx.reshape(5, 1) == Tensor.arange(6).reshape(1, 6)).cast(dtypes.float32)
  return onehot @ table

# name -> (build, emulate?) ; emulated programs stay small (the interpreter runs every thread in Python)
PROGRAMS: dict[str, tuple] = {
  "fused_elementwise": (lambda: (f32(4, 5) * f32(4, 5) + f32(4, 5)).relu(), True),
  "broadcast_row_col": (lambda: f32(3, 4) + f32(1, 4) * f32(3, 1), True),
  "outer_product": (lambda: f32(5, 1) * f32(1, 7), True),
  "unary_math": (lambda: (f32(3, 5, lo=0.1, hi=4).log() + f32(3, 5).exp() + f32(3, 5, lo=0, hi=9).sqrt()), True),
  "sin_cos_tan": (lambda: f32(4, 6, lo=-30, hi=30).sin() + f32(4, 6, lo=-30, hi=30).cos(), True),
  "sigmoid_tanh_gelu": (lambda: f32(3, 7, lo=-6, hi=6).sigmoid() * f32(3, 7).tanh() + f32(3, 7).gelu(), True),
  "pow_div_recip": (lambda: f32(4, 4, lo=0.5, hi=3) ** f32(4, 4) / f32(4, 4, lo=1, hi=2) + f32(4, 4, lo=1, hi=3).reciprocal(), True),
  "trunc_floor_ceil_round": (lambda: f32(3, 5, lo=-9, hi=9).floor() + f32(3, 5, lo=-9, hi=9).ceil() * 2 + f32(3, 5, lo=-9, hi=9).trunc() * 4, True),
  "sum_axis0": (lambda: f32(5, 6).sum(0), True),
  "sum_axis1_keepdim": (lambda: f32(5, 6).sum(1, keepdim=True), True),
  "sum_all": (lambda: f32(4, 5).sum(), True),
  "sum_3d_axes": (lambda: f32(3, 4, 5).sum((0, 2)), True),
  "prod_axis": (lambda: f32(4, 5, lo=0.5, hi=1.5).prod(1), True),
  "max_axis": (lambda: f32(4, 5).max(0), True),
  "min_axis": (lambda: f32(4, 5).min(1), True),
  "max_all_3d": (lambda: f32(2, 3, 4).max(), True),
  "mean_var_std": (lambda: f32(4, 6).mean(1) + f32(4, 6).var(1) + f32(4, 6).std(0).sum(), True),
  "softmax": (lambda: f32(4, 7).softmax(), True),
  "log_softmax": (lambda: f32(3, 8).log_softmax(0), True),
  "logsumexp": (lambda: f32(3, 8).logsumexp(1), True),
  "layernorm_like": (lambda: (lambda x: (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) + 1e-5).sqrt())(f32(4, 8)), True),
  "matmul": (lambda: f32(4, 6) @ f32(6, 3), True),
  "matmul_relu_bias": (lambda: (f32(3, 5) @ f32(5, 4) + f32(4)).relu(), True),
  "batched_matmul": (lambda: f32(2, 3, 4) @ f32(2, 4, 5), True),
  "matmul_transposed": (lambda: f32(5, 4).T @ f32(5, 3), True),
  "conv1d_like": (conv1d_like, True),
  "conv2d_like": (conv2d_like, False),
  "conv_input_grad": (conv_input_grad, False),
  "gather_onehot": (gather_onehot, True),
  "argmax_argmin": (lambda: f32(4, 6).argmax(1) + f32(4, 6).argmin(0).sum(), True),
  "any_all": (lambda: (f32(4, 5) > 1).any(1) & (f32(4, 5) > -1.9).all(1), True),
  "cat_flip_pad": (lambda: f32(3, 4).cat(f32(2, 4)).flip(0).pad(((1, 0), (0, 2))), True),
  "where_clip": (lambda: (f32(4, 5) > 0).where(f32(4, 5), f32(4, 5) * 3).clip(-1, 1), True),
  "arange_eye": (lambda: Tensor.arange(12).reshape(3, 4) + Tensor.eye(4)[:3].cast(dtypes.int32), True),
  "rand_randn": (lambda: Tensor.rand(3, 5) + Tensor.randn(3, 5), False),
  "nan_safe_max": (lambda: Tensor(np.array([[1, np.nan, 3], [np.nan, -1, 2], [0, 1, -np.inf]], dtype=np.float32)).max(1), True),
  "nan_maximum_cmp": (lambda: (lambda x: x.maximum(Tensor([0.0, 5, np.nan])) + (x < 2).cast(dtypes.float32) + (x != x).cast(dtypes.float32))(Tensor([np.nan, 1.0, 3.0])), True),
  "isnan_isinf": (lambda: Tensor([np.nan, np.inf, -np.inf, 1.0]).isnan() | Tensor([np.nan, np.inf, -np.inf, 1.0]).isinf(), True),
  "float64_math": (lambda: (lambda x: x.exp() + x.log2().abs() + x.sin() * x.sqrt())(Tensor(rng.uniform(0.1, 20, (3, 4)), dtype=dtypes.float64)), True),
  "float64_reduce": (lambda: Tensor(rng.uniform(-1, 1, (4, 5)), dtype=dtypes.float64).max(1) + Tensor(rng.uniform(-1, 1, (4, 5)), dtype=dtypes.float64).sum(1), True),
  "half_math": (lambda: (arr("float16", 3, 5) * arr("float16", 3, 5) + 1).exp() + arr("float16", 3, 5).sum(1, keepdim=True), True),
  "bfloat16_math": (lambda: (arr("bfloat16", 3, 5) + arr("bfloat16", 3, 5)).relu() * arr("bfloat16", 1, 5), True),
  "int_division_shifts": (lambda: (lambda a, b: a // b + a % b + (a << 2) + (a >> 1) + a.idiv(b))(arr("int32", 4, 5), arr("int32", 4, 5)), True),
  "int_div_by_zero": (lambda: Tensor([7, -7, 5, -2147483648, 0], dtype=dtypes.int32).idiv(Tensor([0, 2, -1, -1, 0], dtype=dtypes.int32)), True),
  "shift_oversized": (lambda: Tensor([1, -8, 3, 255], dtype=dtypes.int32) << Tensor([33, 1, 32, 4], dtype=dtypes.int32), True),
  "uint64_ops": (lambda: (lambda a, b: (a * b + (a ^ b)) // (b | 1) + (a >> 3))(Tensor(np.array([2**63 + 5, 17, 2**40, 3], dtype=np.uint64)), Tensor(np.array([3, 2**62, 7, 1], dtype=np.uint64))), True),
  "int8_wrap": (lambda: (lambda a: a * a + a - 100)(Tensor(np.array([100, -100, 127, -128, 5], dtype=np.int8))), True),
  "uint8_wrap_shift": (lambda: (lambda a: (a + 200) + (a << 3) + (a >> 2))(Tensor(np.array([100, 0, 255, 17], dtype=np.uint8))), True),
  "bitcast": (lambda: f32(2, 3).bitcast(dtypes.int32) + 1, True),
  "bitwise_bool": (lambda: (f32(3, 4) > 0) ^ (f32(3, 4) < 0.5) | (f32(3, 4) > 1), True),
  "float_to_int_saturate": (lambda: Tensor([1e10, -1e10, np.nan, 3.7, -3.7, 300.0, -300.0]).cast(dtypes.int8).cast(dtypes.int32) + Tensor([1e10, -1e10, np.nan, 3.7, -3.7, 300.0, -300.0]).cast(dtypes.int32) + Tensor([1e10, -1e10, np.nan, 3.7, -3.7, 300.0, 70000.0]).cast(dtypes.uint16).cast(dtypes.int32), True),
  "float_to_uint64": (lambda: Tensor([1e30, -5.0, 3.9, 2.0 ** 63]).cast(dtypes.uint64), True),
  "int64_to_half_bf16": (lambda: Tensor(np.array([2**40 + 2**29 + 1, -7, 65519, 1 << 20], dtype=np.int64)).cast(dtypes.float16).cast(dtypes.float32) + Tensor(np.array([2**40 + 2**32 + 1, -7, 65519, 1 << 20], dtype=np.int64)).cast(dtypes.bfloat16).cast(dtypes.float32), True),
  "f64_to_bf16_f16": (lambda: (lambda x: x.cast(dtypes.bfloat16).cast(dtypes.float32) + x.cast(dtypes.float16).cast(dtypes.float32))(Tensor(np.array([1.00390625 + 1e-12, 1e300, -1e-300, 3.14159, 65504.0, np.nan]), dtype=dtypes.float64)), True),
  "half_bf16_roundtrip": (lambda: arr("float16", 6).cast(dtypes.bfloat16).cast(dtypes.float16) + arr("bfloat16", 6).cast(dtypes.float16), True),
  "bool_arith": (lambda: (lambda a, b: (a + b, a * b, a.maximum(b), a < b, a != b))(arr("bool", 6), arr("bool", 6))[3].where(arr("int16", 6), arr("int16", 6)), True),
  "big_guarded": (lambda: f32(300, 7) * 2 + 1, False),
  "big_softmax_rows": (lambda: Tensor.empty(4096, 2048).softmax(), False),
  "big_sum_rows": (lambda: Tensor.empty(512, 4096).sum(1), False),
  "huge_64bit_index": (lambda: Tensor.empty(70000, 40000) * 2, False),
  "huge_broadcast_sum": (lambda: (Tensor.empty(70000, 1) + Tensor.empty(1, 40000)).sum(0), False),
}

# expected values for programs the CPU backend cannot run (float64 -> half casts crash it): correctly rounded results
EXPECTED = {"f64_to_bf16_f16": np.array([1.0078125 + 1.00390625, math.inf, -0.0, 3.140625 * 2, 65536 + 65504, math.nan], dtype=np.float32)}

def _per_dtype(dt: str):
  def fn():
    a, b = arr(dt, 3, 4), arr(dt, 3, 4)
    outs = [a + b, a * b, a.maximum(b), (a < b).cast(dt), (a != b).cast(dt), (a > b).where(a, b), a.cast(dtypes.float32).cast(dt)]
    if dt != "bool":
      outs += [a.sum(1, keepdim=True).expand(3, 4).cast(dt), a.max(0, keepdim=True).expand(3, 4), -a]
    if dt in INTS: outs += [a // (b | 1), a % (b | 1), a & b, a | b, a ^ b, a << 3, a >> 2]
    out = outs[0]
    for o in outs[1:]: out = out + o if dt != "bool" else out ^ o
    return out.cast(dtypes.float64) if dt != "bool" else out
  return fn

for _dt in ALL_DTYPES: PROGRAMS[f"dtype_{_dt}"] = (_per_dtype(_dt), True)

for _src in ALL_DTYPES:
  def _casts(src=_src):
    x = arr(src, 6)
    # float64 -> float16/bfloat16 is left out: the CPU backend crashes on it (the expected values come from there);
    # f64_to_bf16_f16 checks those casts against fixed values instead
    outs = [x.cast(getattr(dtypes, d)).cast(dtypes.float64) for d in ALL_DTYPES if d != src and not (src == "float64" and d in ("float16", "bfloat16"))]
    out = outs[0]
    for o in outs[1:]: out = out + o
    return out
  PROGRAMS[f"casts_from_{_src}"] = (_casts, True)

# ---------------------------------------------------------------- ptxas
@pytest.mark.ptx
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_ptxas_assembles(name):
  if PTXAS is None: pytest.skip("no ptxas found (pip install nvidia-cuda-nvcc)")
  asts = kernel_asts(PROGRAMS[name][0]())
  assert asts, f"{name}: no kernels scheduled"
  jobs = [(render_ptx(ast, arch), arch) for ast in asts for arch in ARCHS]
  with ThreadPoolExecutor(4) as ex: results = list(ex.map(lambda ka: assemble(*ka), jobs))
  for (k, arch), (rc, err) in zip(jobs, results):
    assert rc == 0, f"ptxas -arch={arch} rejected {k.name} ({name}):\n{err}\n{numbered(k.src)}"

@pytest.mark.ptx
def test_ptxas_sm75_fallbacks():
  """sm_75 has no max.NaN or cvt.rn.bf16.f32: the renderer's integer fallbacks must assemble too."""
  if PTXAS is None: pytest.skip("no ptxas found (pip install nvidia-cuda-nvcc)")
  for name in ("nan_safe_max", "bfloat16_math", "casts_from_float32", "dtype_float32", "float64_math"):
    for ast in kernel_asts(PROGRAMS[name][0]()):
      k = render_ptx(ast, "sm_75")
      assert "max.NaN" not in k.src and "bf16" not in k.src
      rc, err = assemble(k, "sm_75")
      assert rc == 0, f"ptxas -arch=sm_75 rejected {k.name} ({name}):\n{err}\n{numbered(k.src)}"

# ---------------------------------------------------------------- semantics, in the PTX interpreter
def emulate(t: Tensor, arch: str = "sm_80") -> np.ndarray:
  norm, bufs, _, _ = normalize([t.uop])
  items = create_schedule(list(norm), multi_output=False)
  data: dict[UOp, np.ndarray] = {}
  for it in items:
    k = render_ptx(it.ast, arch)
    out = np.frombuffer(b"\xcd" * (it.outs[0].size * it.outs[0].dtype.itemsize), dtype=to_np_dtype(it.outs[0].dtype)).copy()
    ins = [bufs[i.arg.k].numpy() if i.op is Ops.BUFFER else data[i] for i in it.inputs]
    mem = Memory()
    ptrs = [mem.add(out)] + [mem.add(np.ascontiguousarray(x).copy()) for x in ins]
    try: Kernel(k.src).run(ptrs, mem, k.global_size, k.local_size)
    except PTXEmuError as e: raise AssertionError(f"{k.name}: {e}\n{numbered(k.src)}") from e
    data[it.outs[0]] = out
  return data[norm[0]].reshape(t.shape)

def _compare(got: np.ndarray, exp: np.ndarray, name: str, transcendental: bool):
  assert got.shape == exp.shape and got.dtype == exp.dtype, (got.shape, exp.shape, got.dtype, exp.dtype)
  if got.dtype.kind in "biu" or got.dtype == np.bool_:
    np.testing.assert_array_equal(got, exp, err_msg=name)
    return
  g, e = got.astype(np.float64), exp.astype(np.float64)
  # the per-dtype programs compute in their dtype and cast to float64 at the end: the compute dtype sets the tolerance
  # (the CPU backend may fuse a*b+c into one FMA where PTX rounds twice)
  itemsize = to_dtype(name[6:]).itemsize if name.startswith("dtype_") else got.dtype.itemsize
  rtol = {1: 1e-2, 2: 1e-2, 4: 1e-5, 8: 1e-10}[itemsize]
  np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * (1 if transcendental else 1e-3), equal_nan=True, err_msg=name)

EMULATED = [n for n, (_, emu) in PROGRAMS.items() if emu]

@pytest.mark.parametrize("name", EMULATED)
def test_emulated_matches_cpu(name):
  t = PROGRAMS[name][0]()
  got = emulate(t)
  exp = EXPECTED[name] if name in EXPECTED else t.numpy()
  _compare(got, exp, name, transcendental=True)

def test_emulated_sm75_paths():
  for name in ("nan_safe_max", "bfloat16_math", "casts_from_float32", "float64_reduce"):
    t = PROGRAMS[name][0]()
    got = emulate(t, "sm_75")
    _compare(got, t.numpy(), name + " sm_75", True)

def test_emulated_guarded_grid():
  """More threads than elements (a partial last block): the bounds predicate must stop the extra threads."""
  t = Tensor(np.arange(300, dtype=np.float32)) * 2 + 1
  (ast,) = kernel_asts(t)
  k = render_ptx(ast)
  assert k.global_size == (2, 1, 1) and k.local_size == (BLOCK, 1, 1) and "setp.ge" in k.src
  np.testing.assert_array_equal(emulate(t), np.arange(300, dtype=np.float32) * 2 + 1)

@pytest.mark.parametrize("shape,axis", [((3, 4, 5), 1), ((2, 3, 4), (0, 2)), ((5, 7), None), ((6,), 0), ((2, 2, 2, 3), (1, 3))])
def test_emulated_reduce_axes(shape, axis):
  x = rng.uniform(-1, 1, shape).astype(np.float32)
  for op in ("sum", "max", "min", "prod"):
    t = getattr(Tensor(x), op)(axis)
    _compare(emulate(t), t.numpy(), f"{op}{shape}{axis}", False)

def test_emulated_strided_views():
  """Permutes, shrinks and flips feed non-contiguous loads; the store stays contiguous in gid."""
  x = Tensor(rng.uniform(-1, 1, (4, 5, 6)).astype(np.float32))
  t = x.permute(2, 0, 1)[1:5, ::-1, 2:].contiguous() * 3
  _compare(emulate(t), t.numpy(), "strided", False)

# ---------------------------------------------------------------- GPU mapping and renderer units
def test_gid_replaces_globals():
  (ast,) = kernel_asts(f32(40, 50) + 1)
  sink, info = optimize_gpu(ast)
  assert not any(u.op is Ops.RANGE for u in sink.toposort())
  assert info.gid is not None and info.n_threads == 2000 and info.loops == ()
  st = sink.src[0]
  assert st.src[1] is info.gid, "a contiguous store is indexed by gid itself"

def test_hoisted_reduce_keeps_inner_loop():
  """softmax over long rows: mapping the columns to threads would recompute the row reductions per element."""
  (ast,) = kernel_asts(Tensor.empty(4096, 2048).softmax())
  _, info = optimize_gpu(ast)
  assert info.n_threads == 4096 and len(info.loops) == 1

def test_launch_dims():
  assert launch_dims(1) == ((1, 1, 1), (1, 1, 1))
  assert launch_dims(100) == ((1, 1, 1), (100, 1, 1))
  assert launch_dims(257) == ((2, 1, 1), (BLOCK, 1, 1))

def test_magic_division_exact():
  for nbits, width in ((31, 32), (20, 32), (8, 32), (40, 64), (63, 64)):
    for d in (3, 5, 6, 7, 10, 12, 25, 100, 641, 1000, 4095, 65537, 2 ** 20 + 1, 2 ** 30 - 1):
      m, s = magic_u(d, nbits, width)
      assert m < 2 ** width and s >= width
      hi = 2 ** nbits - 1
      xs = {0, 1, d - 1, d, d + 1, hi, hi - 1} | {int(v) for v in rng.integers(0, hi, 200)} | {d * q + r for q in (hi // d, hi // d - 1) for r in (0, d - 1) if d * q + r <= hi}
      for x in (v for v in xs if 0 <= v <= hi): assert (x * m) >> s == x // d, (x, d, nbits)

def test_ptx_versions():
  assert ptx_version("sm_80") == "7.0" and ptx_version("sm_90") == "7.8" and ptx_version("sm_90a") == "8.0"
  assert ptx_version("sm_75") == "6.3" and ptx_version("sm_86") == "7.1" and ptx_version("sm_89") == "7.8"
  assert arch_from_cc(8, 6) == "sm_86" and arch_from_cc(10, 0) == "sm_100"
  with pytest.raises(ValueError): parse_arch("sm_70")
  with pytest.raises(ValueError): parse_arch("gfx90a")

def test_kernel_metadata():
  a, b = f32(4, 6), f32(6, 3)
  (ast,) = kernel_asts(a @ b)
  k = render_ptx(ast, "sm_90")
  assert k.n_params == 3 and k.param_dtypes == (dtypes.float32,) * 3 and k.param_sizes == (12, 24, 18)
  assert k.local_size == (12, 1, 1) and k.global_size == (1, 1, 1)
  assert f".visible .entry {k.name}(.param .u64 data0, .param .u64 data1, .param .u64 data2)" in k.src
  assert ".version 7.8" in k.src and ".target sm_90" in k.src and ".address_size 64" in k.src
  assert "fma.rn.f32" in k.src, "the matmul accumulate is one fma"

# ---------------------------------------------------------------- every kernel of a CPU workload renders
def test_cpu_workload_kernels_render():
  """Run a typical set of programs on the CPU, then render every kernel AST compiled so far in this process (this
  workload's, and every earlier test's when the whole suite runs) to PTX (no ptxas: speed). The caches are not
  cleared (compiled CPU programs live as long as the process); odd shapes make new kernels."""
  from tinygrad import nn
  before = len(kernel_cache)
  x = Tensor(rng.uniform(-1, 1, (9, 17)).astype(np.float32))
  lin = nn.Linear(17, 5)
  out = lin(x).relu().log_softmax()
  loss = -(out * Tensor.eye(9)[:, :5]).sum(1).mean()
  loss.backward()
  (lin.weight - lin.weight.grad * 0.1).realize()
  for name in ("softmax", "matmul", "conv1d_like", "dtype_int8", "dtype_bfloat16", "casts_from_uint64", "argmax_argmin", "rand_randn", "any_all"):
    PROGRAMS[name][0]().realize()
  keys = list(kernel_cache)
  assert len(keys) - before >= 3 and len(keys) >= 10
  failures = []
  for ast, device in keys:
    if any(p.op is Ops.DEFINE_VAR for p in ast.arg): continue  # symbolic shapes are CPU-only (compile_kernel refuses CUDA)
    try: render_ptx(ast, "sm_80")
    except Exception as e: failures.append(f"{type(e).__name__}: {e}\n{ast}")
  assert not failures, f"{len(failures)} of {len(keys)} kernels failed to render:\n" + "\n\n".join(failures[:3])

# ---------------------------------------------------------------- group mode (block reductions)
GROUP_PROGRAMS = {
  "full_sum": lambda: Tensor(rng.uniform(-1, 1, 1000).astype(np.float32)).sum(),
  "full_max_nan": lambda: Tensor(np.where(np.arange(700) == 513, np.nan, rng.uniform(-1, 1, 700)).astype(np.float32)).max(),
  "row_sums": lambda: Tensor(rng.uniform(-1, 1, (3, 600)).astype(np.float32)).sum(1),
  "softmax_rows": lambda: Tensor(rng.uniform(-3, 3, (2, 700)).astype(np.float32)).softmax(),
  "normalize_by_total": lambda: (lambda x: x / x.sum())(Tensor(rng.uniform(0, 1, 900).astype(np.float32))),
  "mean_var_f64": lambda: (lambda x: x.var() + x.mean())(Tensor(rng.uniform(-1, 1, 520), dtype=dtypes.float64)),
  "int64_sum": lambda: Tensor(rng.integers(-2 ** 40, 2 ** 40, 333, dtype=np.int64)).sum(),
  "int8_max_min": lambda: Tensor(rng.integers(-128, 128, 300).astype(np.int8)).max() + Tensor(rng.integers(-128, 128, 300).astype(np.int8)).min(),
  "bool_any_all": lambda: Tensor(np.arange(400) == 377).any().cast(dtypes.int32) + Tensor(np.arange(400) != 5).all().cast(dtypes.int32),
  "half_sum": lambda: Tensor(rng.uniform(-1, 1, 512).astype(np.float16)).sum(),
  "prod_near_one": lambda: Tensor(rng.uniform(0.999, 1.001, 300).astype(np.float32)).prod(),
  "two_axes": lambda: Tensor(rng.uniform(-1, 1, (2, 3, 300)).astype(np.float32)).sum((0, 2)),
  "argmax_long": lambda: Tensor(rng.uniform(-1, 1, 1000).astype(np.float32)).argmax(),
}

def test_group_mode_is_used():
  (ast,) = kernel_asts(Tensor.empty(64, 1000).softmax())
  _, info = optimize_gpu(ast)
  assert info.group == BLOCK and info.local_size == (BLOCK, 1, 1) and info.global_size == (64, 1, 1)
  k = render_ptx(ast)
  assert k.src.count("bar.sync") == 2 and "shfl.sync.bfly.b32" in k.src and ".shared" in k.src
  (ast,) = kernel_asts(Tensor.empty(1 << 20).sum())
  assert optimize_gpu(ast)[1].global_size == (1, 1, 1)
  (ast,) = kernel_asts(Tensor.empty(512, 512) @ Tensor.empty(512, 512))
  assert optimize_gpu(ast)[1].group == 0, "many outputs: one thread each"

@pytest.mark.parametrize("name", list(GROUP_PROGRAMS))
def test_group_mode_emulated(name):
  t = GROUP_PROGRAMS[name]()
  asts = kernel_asts(t)
  assert any(optimize_gpu(a)[1].group for a in asts), f"{name} is not group-reduced"
  got = emulate(t)
  _compare(got, t.numpy(), name, transcendental=True)

@pytest.mark.ptx
@pytest.mark.parametrize("arch", ARCHS + ("sm_75",))
def test_group_mode_ptxas(arch):
  if PTXAS is None: pytest.skip("no ptxas found (pip install nvidia-cuda-nvcc)")
  for name, fn in GROUP_PROGRAMS.items():
    for ast in kernel_asts(fn()):
      k = render_ptx(ast, arch)
      rc, err = assemble(k, arch)
      assert rc == 0, f"ptxas -arch={arch} rejected {k.name} ({name}):\n{err}\n{numbered(k.src)}"

@pytest.mark.parametrize("name", ["matmul", "softmax", "conv1d_like", "cat_flip_pad", "dtype_int64", "sum_3d_axes", "gather_onehot"])
def test_emulated_wide_index_math(name, monkeypatch):
  """Index math that does not fit 32 bits is rendered in 64 bits (mad.lo.s64 addresses, 64-bit magic division):
  force that path everywhere and check the same programs."""
  from codegen.ptx import PTXRenderer
  monkeypatch.setattr(PTXRenderer, "narrow", lambda self, u: False)
  t = PROGRAMS[name][0]()
  k = render_ptx(kernel_asts(t)[0])
  assert "mad.lo.s64" in k.src or "mul.wide" not in k.src
  _compare(emulate(t), t.numpy(), name, transcendental=True)
