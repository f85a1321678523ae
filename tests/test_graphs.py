"""hdrepro.optim.graphs: a step recorded as a CUDA graph and replayed ≡ the eager step.

A replay reads and writes the addresses it was recorded with, so it is right only if every
piece of HD state keeps its storage from step to step. That property is checked here on the CPU
(it runs in CI); the replay itself needs a GPU, and those tests run where one is present (the
device run recorded on the report's speed page), and say so when skipped.
"""
import pytest
import torch

from hdrepro.optim import HD, SGDHD, AdamHD, CUDAGraphStep
from hdrepro.optim import _hypergrad as hg
from hdrepro.studies.equivalence import Problem, loss_fn, rel_err, train_steps

pytestmark = pytest.mark.usefixtures("float64")

P = Problem(model="mlp", steps=20)

CASES = [
    ("SGDNHD mult 2nd", lambda p: SGDHD(p, 0.1, momentum=0.9, nesterov=True, hypergrad_lr=1e-2,
                                        rule="multiplicative", hyper_hypergrad_lr=1e-3)),
    ("SGDHD", lambda p: SGDHD(p, 0.1, hypergrad_lr=1e-2)),
    ("AdamHD wd 2nd", lambda p: AdamHD(p, 1e-2, weight_decay=1e-4, hypergrad_lr=1e-4,
                                       hyper_hypergrad_lr=1e-6)),
    ("AdamHD mult", lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-1, rule="multiplicative")),
    ("HD(Adam fused capturable)", lambda p: HD(
        torch.optim.Adam(p, 1e-2, fused=True, capturable=True), 1e-4)),
]
GROUP_STATE = ("lr", "hypergrad_lr", "hd_h", "hd_dalpha_dbeta", "hd_nonfinite")


def _storage(opt) -> list[int]:
    """The address of every tensor of HD state: group entries and per-parameter state."""
    inner = getattr(opt, "optimizer", opt)
    ptrs = [g[k].data_ptr() for g in opt.param_groups for k in GROUP_STATE
            if isinstance(g.get(k), torch.Tensor)]
    for st in (inner.state, getattr(opt, "state", {})):
        for value in st.values():
            tensors = value.values() if isinstance(value, dict) else [value]
            ptrs += [t.data_ptr() for t in tensors if isinstance(t, torch.Tensor)]
    return ptrs


@pytest.mark.parametrize("per_tensor", [True, False], ids=["cpu-loop", "whole-list-foreach"])
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_hd_state_keeps_its_storage_from_step_to_step(name, make, per_tensor, monkeypatch):
    monkeypatch.setattr(hg, "per_tensor_loop", lambda params: per_tensor)
    model = P.make_model()
    opt = make(list(model.parameters()))
    batches = P.batches()
    train_steps(model, opt, batches[:2])  # state created; β a tensor once it is learned
    before = _storage(opt)
    alpha = float(opt.param_groups[0]["lr"])
    train_steps(model, opt, batches[2:8])
    assert _storage(opt) == before
    assert float(opt.param_groups[0]["lr"]) != alpha
    assert len(before) > len(GROUP_STATE)


def test_cuda_graph_step_refuses_cpu_parameters():
    with pytest.raises(ValueError, match="CUDA device"):
        CUDAGraphStep(SGDHD([torch.nn.Parameter(torch.zeros(3))], 0.1))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_cuda_graph_step_validates_warmup_steps(bad):
    with pytest.raises(ValueError, match="warmup_steps"):
        CUDAGraphStep(SGDHD([torch.nn.Parameter(torch.zeros(3))], 0.1), warmup_steps=bad)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="replaying a CUDA graph needs a GPU (run on the device)")


def _flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).cpu() for p in model.parameters()])


def _cuda_trajectory(make, graphed: bool):
    """float32, as models train on a GPU (a float64 HD step on CUDA reads α to the host)."""
    model = P.make_model().cuda().float()
    opt = make(list(model.parameters()))
    if graphed:
        opt = CUDAGraphStep(opt)
    alphas = []
    for x, y in P.batches()[:P.steps]:
        opt.zero_grad()
        loss_fn(model, (x.cuda().float(), y.cuda())).backward()
        opt.step()
        alphas.append(float(opt.param_groups[0]["lr"]))
    return torch.tensor(alphas), _flat_params(model)


@needs_cuda
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_replayed_graph_matches_eager_steps(name, make):
    eager_alpha, eager_params = _cuda_trajectory(make, graphed=False)
    graph_alpha, graph_params = _cuda_trajectory(make, graphed=True)
    assert rel_err(graph_alpha, eager_alpha) <= 1e-6
    assert rel_err(graph_params, eager_params) <= 1e-6
    assert eager_alpha[-1] != eager_alpha[4]  # α still moves after the recording


@needs_cuda
def test_replayed_graph_refuses_a_replaced_gradient():
    model = P.make_model().cuda().float()
    opt = CUDAGraphStep(SGDHD(list(model.parameters()), 0.1), warmup_steps=1)
    x, y = P.batches()[0]
    batch = (x.cuda().float(), y.cuda())
    for _ in range(2):
        opt.zero_grad()
        loss_fn(model, batch).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    loss_fn(model, batch).backward()
    with pytest.raises(RuntimeError, match="zero_grad"):
        opt.step()


@needs_cuda
def test_cuda_graph_step_refuses_float64_hd_optimizers():
    model = P.make_model().cuda()
    with pytest.raises(ValueError, match="float32"):
        CUDAGraphStep(AdamHD(list(model.parameters()), 1e-3))


@needs_cuda
@pytest.mark.parametrize("name,make", CASES[:3], ids=[c[0] for c in CASES[:3]])
def test_float64_eager_step_on_cuda_matches_cpu(name, make):
    """float64 on CUDA takes the multi-tensor path (torch's fused CUDA kernels want a float32
    lr)."""
    model = P.make_model()
    opt = make(list(model.parameters()))
    train_steps(model, opt, P.batches()[:P.steps])
    model_cuda = P.make_model().cuda()
    opt_cuda = make(list(model_cuda.parameters()))
    train_steps(model_cuda, opt_cuda, [(x.cuda(), y.cuda()) for x, y in P.batches()[:P.steps]])
    alpha = lambda o: torch.tensor([float(o.param_groups[0]["lr"])])  # noqa: E731
    assert rel_err(alpha(opt_cuda), alpha(opt)) <= 1e-9
    assert rel_err(_flat_params(model_cuda), _flat_params(model)) <= 1e-9
