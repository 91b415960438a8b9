"""The UOp IR: hash-consing, immutability, shapes and value bounds (no device needed)."""
from tinygrad.uop import UOp, Ops, ReduceArg, RangeArg
from tinygrad.dtype import dtypes

def test_hash_consing_returns_same_object():
  a = UOp.const(dtypes.float32, 1.0)
  assert UOp.const(dtypes.float32, 1.0) is a
  assert (a + 2.0) is (a + 2.0)

def test_distinct_args_are_distinct_nodes():
  assert UOp.const(dtypes.float32, 0.0) is not UOp.const(dtypes.float32, -0.0)
  assert UOp.const(dtypes.float32, 1.0) is not UOp.const(dtypes.float64, 1.0)

def test_nan_constants_are_shared():
  assert UOp.const(dtypes.float32, float("nan")) is UOp.const(dtypes.float32, float("nan"))

def test_uop_is_immutable_replace_builds_new():
  a = UOp.const(dtypes.int32, 3)
  b = a.replace(arg=4)
  assert a.arg == 3 and b.arg == 4 and b is UOp.const(dtypes.int32, 4)

def test_const_wraps_like_the_dtype():
  assert UOp.const(dtypes.uint8, 256 + 7).arg == 7
  assert UOp.const(dtypes.int8, 200).arg == 200 - 256

def test_toposort_orders_sources_first():
  a = UOp.const(dtypes.int32, 1)
  b = a + 2
  c = b * b
  order = c.toposort()
  assert order.index(a) < order.index(b) < order.index(c)
  assert len(order) == len(set(order))

def test_reduce_shape_keeps_reduced_axes_as_one():
  buf = UOp(Ops.RESHAPE, dtypes.float32, (UOp.const(dtypes.float32, 0.0),), (1, 1))
  ex = UOp(Ops.EXPAND, dtypes.float32, (buf,), (3, 4))
  r = UOp(Ops.REDUCE, dtypes.float32, (ex,), ReduceArg(Ops.ADD, (1,)))
  assert r.shape == (3, 1)

def test_range_bounds_and_affine_bounds():
  r = UOp(Ops.RANGE, dtypes.index, (), RangeArg(0, 10, "global"))
  assert (r.vmin, r.vmax) == (0, 9)
  e = r * 4 + 3
  assert (e.vmin, e.vmax) == (3, 39)
  assert ((r % 4).vmin, (r % 4).vmax) == (0, 3)
  assert ((r // 4).vmin, (r // 4).vmax) == (0, 2)

def test_ops_behave_as_named_ints():
  # Ops is a plain int subclass (not an Enum, for attribute-read speed): names, order, lookup, iteration and pickling
  import pickle
  assert Ops["ADD"] is Ops.ADD and Ops.ADD.name == "ADD" and repr(Ops.ADD) == str(Ops.ADD) == f"{Ops.ADD}" == "Ops.ADD"
  assert Ops.BUFFER < Ops.ADD and isinstance(Ops.MUL, Ops) and len(list(Ops)) == len(Ops) and list(Ops)[0] is Ops.BUFFER
  assert len({o.name for o in Ops}) == len({int(o) for o in Ops}) == len(Ops)  # names and values are unique
  assert pickle.loads(pickle.dumps(Ops.WHERE)) is Ops.WHERE
  u = UOp.const(dtypes.float32, 2.0) * 3.0
  assert pickle.loads(pickle.dumps(u)) is u  # hash-consing survives the round trip

def test_dtypes_unpickle_to_the_same_instance():
  # DType equality is identity, so a pickled dtype must come back as the interned one (it came back unequal before)
  import pickle
  for d in (dtypes.float32, dtypes.bfloat16, dtypes.bool, dtypes.void, dtypes.int64, dtypes.float16.vec(8)):
    assert pickle.loads(pickle.dumps(d)) is d
