"""hdrepro.autodiff.HyperStack: plug-and-play use, heights, checkpointing, memory, validation."""
import pytest
import torch

from hdrepro.autodiff import SGD, AdaGrad, Adam, AdamState, HyperStack, RMSProp, SGDState
from hdrepro.studies.equivalence import Problem, checkpoint_and_resume, loss_fn, train_steps

pytestmark = pytest.mark.usefixtures("float64")

P = Problem(model="mlp", steps=30)


@pytest.mark.parametrize("levels", [
    lambda: [SGD(0.1), SGD(1e-2)],
    lambda: [Adam(1e-2, learn=("lr", "beta1", "beta2")), SGD(1e-5)],
    lambda: [AdaGrad(0.05), SGD(1e-3)],
    lambda: [RMSProp(1e-3, learn=("lr", "gamma")), SGD(1e-6)],
    lambda: [SGD(0.1, 0.5, learn=("lr", "momentum")), SGD(1e-3), SGD(1e-4), SGD(1e-5)],
    lambda: [Adam(1e-2), Adam(1e-3), SGD(1e-4)],
], ids=["SGD/SGD", "Adam(α,β1,β2)/SGD", "AdaGrad/SGD", "RMSProp(α,γ)/SGD", "height-4",
        "Adam/Adam/SGD"])
def test_stacks_train_and_learn_their_hyperparameters(levels):
    model = P.make_model()
    opt = HyperStack(model.parameters(), levels())
    before = opt.hyperparameters()
    first = float(loss_fn(model, P.batches()[0]).detach())
    train_steps(model, opt, P.batches()[:30])
    after = opt.hyperparameters()
    learned = [f"{k}.{n}" for k, lv in enumerate(opt.levels[:-1]) for n in lv.learn]
    assert all(after[n] != before[n] for n in learned), (before, after)
    assert float(loss_fn(model, P.batches()[0]).detach()) < first


def test_graph_is_freed_each_step_so_memory_does_not_grow():
    model = P.make_model()
    opt = HyperStack(model.parameters(), [Adam(1e-2), SGD(1e-4), SGD(1e-6)])

    def graph_nodes():
        seen, todo = set(), [t.grad_fn for rec in opt._records if rec for t in rec[1]]
        while todo:
            fn = todo.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            todo.extend(f for f, _ in fn.next_functions)
        return len(seen)

    train_steps(model, opt, P.batches()[:3])
    n3 = graph_nodes()
    train_steps(model, opt, P.batches()[3:30])
    assert graph_nodes() == n3 > 0


def test_integer_hyperparameters_are_accepted():
    model = P.make_model()
    opt = HyperStack(model.parameters(), [SGD(lr=1), SGD(lr=0)])
    train_steps(model, opt, P.batches()[:2])
    assert opt.hyper[0]["lr"].dtype == torch.float64


def test_a_write_to_the_learned_lr_takes_effect_and_learning_goes_on_from_it():
    """Set α after 2 steps: the next hypergradient is the one the unwritten stack sees (θ_t was
    made with the old α), and the level above moves α from the written value by it."""
    runs = []
    for write in (False, True):
        model = P.make_model()
        opt = HyperStack(model.parameters(), [Adam(1e-2), SGD(1e-4)])
        train_steps(model, opt, P.batches()[:2])
        before = opt.hyperparameters()["0.lr"]
        if write:
            opt.param_groups[0]["lr"] = 5e-3
            assert opt.hyperparameters()["0.lr"] == 5e-3 == opt.param_groups[0]["lr"]
        train_steps(model, opt, P.batches()[2:3])
        runs.append((before, opt.hyperparameters()["0.lr"], float(opt.last_hypergrads[0][0])))
    (a0, a1, h_a), (_, b1, h_b) = runs
    assert h_a == pytest.approx(h_b, rel=1e-12) and h_a != 0
    assert b1 - 5e-3 == pytest.approx(a1 - a0, rel=1e-9)


def test_bad_writes_to_a_stack_group_are_refused():
    model = P.make_model()
    opt = HyperStack(model.parameters(), [Adam(1e-2), SGD(1e-4)])
    with pytest.raises(ValueError, match="not finite"):
        opt.param_groups[0]["lr"] = float("nan")
    with pytest.raises(TypeError, match="fixed"):
        opt.param_groups[0]["params"] = []
    with pytest.raises(ValueError, match="one set of hyperparameters"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))]})
    opt.param_groups[0]["note"] = "kept"          # other keys behave as in a torch group
    assert opt.param_groups[0]["note"] == "kept"


def test_a_stack_is_an_optimizer_with_hooks_copies_and_torchs_state_dict_form():
    import copy
    import pickle
    model = P.make_model()
    opt = HyperStack(model.parameters(), [Adam(1e-2), SGD(1e-4)])
    assert isinstance(opt, torch.optim.Optimizer)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    train_steps(model, opt, P.batches()[:3])
    assert calls == ["pre", "post"] * 3
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sd["param_groups"][0]["params"] == list(range(len(list(model.parameters()))))
    twins = [copy.deepcopy({"model": model, "opt": opt}),
             pickle.loads(pickle.dumps({"model": model, "opt": opt}))]
    train_steps(model, opt, P.batches()[3:6])
    for twin in twins:
        train_steps(twin["model"], twin["opt"], P.batches()[3:6])
        assert twin["opt"].hyperparameters() == pytest.approx(opt.hyperparameters(), rel=1e-12)
        for p, q in zip(model.parameters(), twin["model"].parameters()):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=0)
    old = opt.state_dict()["state"]               # the earlier form, without torch's two keys
    again = HyperStack(twins[0]["model"].parameters(), [Adam(1e-2), SGD(1e-4)])
    again.load_state_dict(old)
    assert again.hyperparameters() == opt.hyperparameters()


def test_state_dict_round_trip_continues_the_same_training():
    batches = P.batches()
    make = lambda p: HyperStack(p, [Adam(1e-2), SGD(1e-4, clip=True), SGD(1e-7)])  # noqa: E731
    (model, opt), (model2, opt2) = checkpoint_and_resume(make, P, batches[:10], batches[10:20])
    for p, q in zip(model.parameters(), model2.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=0)
    assert opt.hyperparameters() == pytest.approx(opt2.hyperparameters(), rel=1e-12)


def test_clipping_option_changes_large_rate_runs_only():
    def final_lr(clip, beta):
        model = P.make_model()
        opt = HyperStack(model.parameters(), [SGD(0.05), SGD(beta, clip=clip)])
        train_steps(model, opt, P.batches()[:30])
        return opt.hyperparameters()["0.lr"]

    assert final_lr(True, 1e-2) != final_lr(False, 1e-2)
    assert final_lr(True, 0.0) == final_lr(False, 0.0) == 0.05


BAD = [
    (lambda: HyperStack([], [SGD()]), ValueError, "empty"),
    (lambda: HyperStack([torch.zeros(2, requires_grad=True) * 2], [SGD()]), TypeError, "leaf"),
    (lambda: HyperStack([torch.zeros(2, requires_grad=True)], []), TypeError, "non-empty"),
    (lambda: HyperStack(2 * [torch.nn.Parameter(torch.zeros(2))], [SGD()]), ValueError,
     "more than once"),
    (lambda: HyperStack([torch.zeros(2, requires_grad=True)], [SGD(learn=()), SGD()]),
     ValueError, "learns nothing"),
    (lambda: HyperStack([torch.zeros(2, requires_grad=True)], [SGD(rule="multiplicative")]),
     ValueError, "primary"),
    (lambda: SGD(lr=-1), ValueError, "lr"),
    (lambda: SGD(lr=float("nan")), ValueError, "lr"),
    (lambda: SGD(learn=("beta1",)), ValueError, "cannot learn"),
    (lambda: Adam(beta1=1.0), ValueError, "beta1"),
    (lambda: RMSProp(gamma=1.5), ValueError, "gamma"),
    (lambda: SGD(rule="mult"), ValueError, "rule"),
    (lambda: SGD(lr="1e-3"), TypeError, "number"),
]


@pytest.mark.parametrize("make,exc,words", BAD, ids=[f"{i}-{c[2]}" for i, c in enumerate(BAD)])
def test_bad_input_gives_a_clear_error(make, exc, words):
    with pytest.raises(exc, match=words):
        make()


# -- Chandra et al.'s package as the oracle for the conventions the clipping report ran ----------
from gradient_descent_the_ultimate_optimizer import gdtuo  # noqa: E402 (the set-up installs it)


def test_level_states_are_typed_and_a_saved_stack_loads_with_weights_only(tmp_path):
    """Each level keeps a typed state (as optax's); state_dict holds plain dicts, so torch.load
    with weights_only=True reads it back, and the stack goes on exactly as the original."""
    torch.manual_seed(0)
    model, twin = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    twin.load_state_dict(model.state_dict())
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    opts = [HyperStack(m.parameters(), [Adam(lr=1e-2), SGD(lr=1e-4, momentum=0.5)])
            for m in (model, twin)]
    for _ in range(3):
        opts[0].zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opts[0].step()
    assert isinstance(opts[0].states[0], AdamState) and isinstance(opts[0].states[1], SGDState)
    torch.save(opts[0].state_dict(), tmp_path / "stack.pt")
    twin.load_state_dict(model.state_dict())
    opts[1].load_state_dict(torch.load(tmp_path / "stack.pt", weights_only=True))
    assert opts[1].states[0].t == 3 and isinstance(opts[1].states[1], SGDState)
    for m, opt in zip((model, twin), opts):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters()))


def _mnist_batches(n=12, batch=64):
    from hdrepro.engine.data import DataConfig, default_data_root, load
    data = load(DataConfig("mnist", fraction=0.02), default_data_root())
    x, y = data.train.x.double(), data.train.y
    return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(n)]


GDTUO = {"sgd": lambda opt: gdtuo.SGD(0.01, optimizer=opt),
         "adam": lambda opt: gdtuo.Adam(optimizer=opt),
         "adagrad": lambda opt: gdtuo.AdaGrad(optimizer=opt),
         "rmsprop": lambda opt: gdtuo.RMSProp(optimizer=opt)}
# Large enough that α moves far (checked), small enough that the runs stay out of the chaotic
# regime where float64 rounding (our graph sums in another order than theirs) grows past 1e-10
# (RMSProp at β = 1e-2 did, with one torch thread; AdaGrad at β = 0.5 did on another CPU, where
# 0.1 still moves α by more than half and matches to 1e-12).
BETA = {"sgd": 0.5, "adam": 1e-4, "adagrad": 0.1, "rmsprop": 5e-3}


@pytest.mark.parametrize("primary", sorted(GDTUO))
def test_chandra_levels_match_their_package_step_for_step(primary):
    """HyperStack([chandra(p), SGD(β)]) ≡ gdtuo's p(optimizer=SGD(β)) on the clipping report's
    tanh MLP and real MNIST, float64: parameters and every learned hyperparameter. The secondary
    rates are large enough that the hyperparameters move far from their start."""
    from hdrepro.autodiff import chandra
    from hdrepro.engine.models import TanhMLP
    batches = _mnist_batches()
    torch.manual_seed(3)
    ours_model = TanhMLP().double()
    theirs_model = TanhMLP().double()
    theirs_model.load_state_dict(ours_model.state_dict())
    ours = HyperStack(ours_model.parameters(), [chandra(primary), SGD(BETA[primary])])
    mw = gdtuo.ModuleWrapper(theirs_model, optimizer=GDTUO[primary](gdtuo.SGD(BETA[primary])))
    mw.initialize()
    for batch in batches:
        train_steps(ours_model, ours, [batch])
        mw.begin()
        mw.zero_grad()
        x, y = batch
        torch.nn.functional.cross_entropy(mw.forward(x), y).backward()  # create_graph is not needed
        mw.step()
    for p, q in zip(ours_model.parameters(), mw.parameters.values()):
        torch.testing.assert_close(p, q.detach(), rtol=1e-10, atol=1e-12)
    theirs = {n: float(v.detach()) for n, v in mw.optimizer.parameters.items()}
    for n in ours.levels[0].learn:  # compared as stored: √α, tanh⁻¹ forms
        name = {"lr": "alpha", "momentum": "mu"}.get(n, n)
        assert float(ours.hyper[0][n].detach()) == pytest.approx(theirs[name], rel=1e-10), n
    used = ours.levels[0].values(ours.hyper[0])
    start = ours.levels[0].hyper["lr"]
    assert abs(float(used["lr"].detach()) / start - 1) > 0.5, "α barely moved: the test is weak"


def test_stored_forms_round_trip_and_bad_forms_are_refused():
    from hdrepro.autodiff import chandra
    lv = chandra("rmsprop", lr=0.04)
    stored = {n: torch.tensor(v) for n, v in lv.stored().items()}
    assert float(stored["lr"]) == pytest.approx(0.2)
    assert {n: float(v) for n, v in lv.values(stored).items()} == pytest.approx(lv.hyper)
    with pytest.raises(ValueError, match="forms from"):
        Adam(store={"beta1": "log"})
    with pytest.raises(ValueError, match="names from"):
        Adam(store={"mu": "tanh"})
    with pytest.raises(ValueError, match="Unknown level"):
        chandra("adadelta")


@pytest.mark.parametrize("levels", [
    lambda: [Adam(1e-2, learn=("lr", "beta1", "beta2")), SGD(1e-5)],
    lambda: [RMSProp(1e-3, learn=("lr", "gamma")), SGD(1e-6)],
    lambda: [SGD(0.1, 0.5, nesterov=True, learn=("lr", "momentum")), SGD(1e-3, clip=True)],
], ids=["Adam", "RMSProp", "SGDN"])
def test_the_flat_view_of_the_model_changes_only_rounding(levels):
    """An elementwise primary runs on one flat vector of all parameters; per tensor, the same
    30 steps agree to float64 rounding (only the hypergradient's sums are ordered otherwise)."""
    runs = []
    for flat in (True, False):
        model, lvs = P.make_model(), levels()
        lvs[0].elementwise = flat   # False: the per-tensor path a norm-taking primary uses
        opt = HyperStack(model.parameters(), lvs)
        assert opt._flat == flat
        train_steps(model, opt, P.batches()[:30])
        runs.append((opt.hyperparameters(), [p.detach().clone() for p in model.parameters()]))
    (h_flat, p_flat), (h_tensors, p_tensors) = runs
    assert h_flat == pytest.approx(h_tensors, rel=1e-10)
    for a, b in zip(p_flat, p_tensors):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_a_clipping_primary_clips_each_parameter_tensor_on_its_own():
    """SGD(clip=True) as the primary takes one norm per tensor (the report's code), so the
    stack must not hand it the flat model: checked against clip_step applied per tensor."""
    from hdrepro.autodiff import clip_init, clip_step
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = HyperStack([a, b], [SGD(0.1, clip=True), SGD(0.0)])
    assert not opt._flat
    grads = [(torch.tensor([1.0, 2, 2]), torch.tensor([0.3, 0.4])),
             (torch.tensor([10.0, 0, 0]), torch.tensor([0.03, 0.04])),
             (torch.tensor([0.0, 6, 8]), torch.tensor([3.0, 4.0]))]
    expect = [a.detach().clone(), b.detach().clone()]
    states = [clip_init(expect[0]), clip_init(expect[1])]
    for ga, gb in grads:
        a.grad, b.grad = ga.clone(), gb.clone()
        opt.step()
        for i, g in enumerate((ga, gb)):
            clipped, states[i], _ = clip_step(g, states[i])
            expect[i] = expect[i] - 0.1 * clipped
    torch.testing.assert_close(a.detach(), expect[0])
    torch.testing.assert_close(b.detach(), expect[1])
