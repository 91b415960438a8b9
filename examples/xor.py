"""XOR: the smallest network that has to learn something a linear model cannot.

Part 1 is the usage-document loop: an nn.Linear(2, 1) fitted with SGD to integer inputs (Tensor([[0, 0], ...])); a
linear model cannot represent XOR, so it settles on ~0.5 everywhere, but it shows the API and prints a readable value.
Part 2 is a 2-16-1 MLP (tanh hidden layer, sigmoid output, binary cross-entropy, Adam) that really learns it.

Run: python examples/xor.py [--steps 300] [--lr 0.05] [--seed 0]
Prints one `x=[a, b] target=t prediction=p` line per input and the parseable lines
`loss: <first> -> <last>` and `xor accuracy: 1.0000`.
"""
import argparse
from tinygrad import Tensor, nn

X = [[0, 0], [0, 1], [1, 0], [1, 1]]
Y = [[0], [1], [1], [0]]

class XorMLP:
  def __init__(self, hidden: int = 16):
    self.l1, self.l2 = nn.Linear(2, hidden), nn.Linear(hidden, 1)
  def __call__(self, x: Tensor) -> Tensor: return self.l2(self.l1(x).tanh())  # logits; sigmoid gives P(xor = 1)

def linear_demo(steps: int = 50) -> None:
  """The usage documents' loop, verbatim in spirit: Linear(2, 1), integer inputs, SGD on a squared error."""
  model = nn.Linear(2, 1)
  opt = nn.optim.SGD(nn.state.get_parameters(model), lr=0.1)
  x, y = Tensor(X), Tensor(Y)  # int32 tensors: Linear casts its input to the weight dtype
  with Tensor.train():
    for _ in range(steps):
      opt.zero_grad()
      loss = (model(x) - y).square().mean()
      loss.backward()
      opt.step()
  print("Linear(2, 1) after", steps, "SGD steps, model(Tensor([[0, 0]])) =")
  print(model(Tensor([[0, 0]])))
  print(f"linear model loss: {loss.item():.4f} (a linear model cannot fit XOR: the best it can do is 0.25)")

def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--steps", type=int, default=300, help="Adam steps for the MLP")
  ap.add_argument("--lr", type=float, default=0.05)
  ap.add_argument("--hidden", type=int, default=16)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()
  Tensor.manual_seed(args.seed)

  linear_demo()

  model = XorMLP(args.hidden)
  opt = nn.optim.Adam(nn.state.get_parameters(model), lr=args.lr)
  x, y = Tensor(X).float(), Tensor(Y).float()
  losses = []
  with Tensor.train():
    for _ in range(args.steps):
      opt.zero_grad()
      loss = model(x).binary_crossentropy_logits(y).backward()
      loss.realize(*opt.schedule_step())  # the loss and the parameter update in one realize
      losses.append(loss.item())

  probs = model(x).sigmoid().numpy().ravel()
  for inp, target, p in zip(X, Y, probs): print(f"x={inp} target={target[0]} prediction={p:.4f}")
  acc = sum(int(p > 0.5) == t[0] for p, t in zip(probs, Y)) / len(Y)
  print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f}")
  print(f"xor accuracy: {acc:.4f}")

if __name__ == "__main__": main()
