"""Quickstart: lazy tensors, fused kernels, and what DEBUG shows. Run: python examples/quickstart.py"""
import numpy as np
from tinygrad import Tensor, GlobalCounters

a = Tensor.rand(256, 128)
b = Tensor.rand(128, 64)
c = Tensor.rand(256, 64)
Tensor.realize_all([a, b, c])     # the random inputs are kernels too: compute them first

out = (a @ b + c).relu()          # builds a graph; nothing runs yet
GlobalCounters.reset()
out.realize()                      # one fused kernel: matmul + bias + relu
print(f"(a @ b + c).relu(): shape {out.shape}, {GlobalCounters.kernel_count} kernel{'s' if GlobalCounters.kernel_count != 1 else ''}")

ref = np.maximum(a.numpy() @ b.numpy() + c.numpy(), 0)
print("max abs error vs numpy:", float(np.abs(out.numpy() - ref).max()))

x = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
print("softmax:", x.softmax(axis=1))
print("matmul with numpy's 1-D rules:", Tensor([1, 2, 3]) @ Tensor([[1], [2], [3]]))
