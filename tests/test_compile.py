"""torch.compile(opt.step) works with the analytic HD optimizers: same numbers, no recompiles.

Users compile optimizer steps. Our step() keeps α as a 0-d tensor and reads nothing back to the
host, so dynamo can trace it. torch's fused kernel runs uncompiled (torch marks it so), and the
hypergradient chain around it is compiled (on CPU: √v̂, +ε, ÷ and the dot in one pass per tensor).
"""
import pytest
import torch

from hdrepro.optim import HD, SGDHD, AdamHD
from hdrepro.optim import _hypergrad as hg
from hdrepro.studies.equivalence import Problem, rel_err, train_steps, trajectory

pytestmark = [pytest.mark.usefixtures("float64"),
              pytest.mark.slow,   # torch.compile builds each step (seconds per case)
              # a compiled step must not make dynamo warn (it did about a functools.cache
              # wrapper around native.kernels(), which it traced through)
              pytest.mark.filterwarnings("error:Dynamo detected:UserWarning")]

P = Problem(model="mlp", steps=15)

CASES = [
    ("AdamHD mult 2nd", lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-1, rule="multiplicative",
                                         hyper_hypergrad_lr=1e-2, weight_decay=1e-4)),
    ("SGDNHD", lambda p: SGDHD(p, 0.1, momentum=0.9, nesterov=True, hypergrad_lr=1e-2)),
    ("HD(Adam fused)", lambda p: HD(torch.optim.Adam(p, 1e-2, fused=True), 1e-4)),
]


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def compiled(make, backend="inductor"):
    def make_compiled(params):
        opt = make(params)
        opt.step = torch.compile(opt.step, backend=backend)
        return opt
    return make_compiled


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_compiled_step_matches_eager_step(name, make):
    eager, comp = trajectory(make, P), trajectory(compiled(make), P)
    assert rel_err(comp["alpha"], eager["alpha"]) <= 1e-12
    assert rel_err(comp["params"], eager["params"]) <= 1e-12
    assert eager["alpha"][-1] != eager["alpha"][0]


def test_compiled_whole_list_path_matches_eager(monkeypatch):
    """The GPU's path (whole-list foreach ops, one host step count) compiled, on CPU."""
    monkeypatch.setattr(hg, "per_tensor_loop", lambda params: False)
    make = CASES[0][1]
    eager, comp = trajectory(make, P), trajectory(compiled(make), P)
    assert rel_err(comp["alpha"], eager["alpha"]) <= 1e-12
    assert rel_err(comp["params"], eager["params"]) <= 1e-12


@pytest.mark.parametrize("per_tensor", [True, False], ids=["cpu-loop", "whole-list-foreach"])
@pytest.mark.parametrize("name,make", CASES[:2], ids=[c[0] for c in CASES[:2]])
def test_compiled_step_does_not_recompile_every_step(name, make, per_tensor, monkeypatch):
    """A value that changes every step (α, β, Adam's step count t) must not be baked into the
    graph: after the first steps (state created, d_0 = 0), no step compiles anything new."""
    monkeypatch.setattr(hg, "per_tensor_loop", lambda params: per_tensor)
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = P.make_model()
    opt = compiled(make, counting_backend)(list(model.parameters()))
    batches = P.batches()
    train_steps(model, opt, batches[:3])
    after_warm_up = len(graphs)
    train_steps(model, opt, batches[3:P.steps])
    assert after_warm_up > 0
    assert len(graphs) == after_warm_up
