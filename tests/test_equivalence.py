"""Analytic hypergradients ≡ reverse-mode autodiff stacks ≡ finite differences (float64); the
same checks again on the one-buffer step (hdrepro.optim.flat)."""
import dataclasses
import functools

import pytest

from hdrepro.autodiff import SGD, HyperStack
from hdrepro.optim import SGDHD, flat, flatten_, native
from hdrepro.studies.equivalence import (Case, Problem, compare, equivalence_cases, fd_cases,
                                         finite_difference_check)

pytestmark = pytest.mark.usefixtures("float64")


class AscentSGD(SGD):
    """SGD that ascends, p + lr·g: the sign the report printed for the β update."""

    def update(self, params, grads, state, hyper, scale=None):
        return super().update(params, [-g for g in grads], state, hyper, scale)


MODELS = ("logreg", "mlp")
CASES = equivalence_cases()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_analytic_matches_autodiff_float64(case, model):
    row = compare(case, Problem(model=model, steps=25))
    assert row["alpha_rel_err"] <= 1e-10, row
    assert row["params_rel_err"] <= 1e-10, row
    if case.second_order:
        assert row["beta_rel_err"] <= 1e-10, row
    # α must actually have moved, or the comparison proves nothing.
    assert abs(row["alpha_T"] - row["alpha_0"]) > 1e-4 * abs(row["alpha_0"]), row


FD = fd_cases()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name,make,l2", FD, ids=[c[0] for c in FD])
def test_hypergradient_matches_central_finite_difference(name, make, l2, model):
    analytic, fd = finite_difference_check(make, Problem(model=model, steps=25), l2=l2)
    assert analytic != 0
    assert abs(analytic - fd) <= 1e-6 * abs(analytic), (analytic, fd)


def test_second_order_sign_is_descent_not_the_reports_ascent():
    """The report printed β_t = β_{t-1} + γ ∂f/∂β; with that sign the tower would disagree."""
    p = Problem(model="logreg", steps=25)
    ok = compare(Case("ok", lambda q: SGDHD(q, 0.1, hypergrad_lr=1e-2, hyper_hypergrad_lr=1e-3),
                      lambda q: HyperStack(q, [SGD(0.1), SGD(1e-2), SGD(1e-3)]), True), p)
    flipped = compare(Case("flip", lambda q: SGDHD(q, 0.1, hypergrad_lr=1e-2,
                                                   hyper_hypergrad_lr=1e-3),
                           lambda q: HyperStack(q, [SGD(0.1), SGD(1e-2),
                                                    AscentSGD(1e-3)]), True), p)
    assert ok["beta_rel_err"] <= 1e-10
    assert flipped["beta_rel_err"] > 1e-6


@pytest.mark.parametrize("rule", ["additive", "multiplicative"])
def test_the_printed_second_order_sign_is_ascent_on_beta_as_autodiff_has_it(rule):
    """second_order="printed" runs the report's printed update: the tower whose top level ascends
    (float64, to rounding), in both rules; the derived sign does not match that tower."""
    p = Problem(model="logreg", steps=25)
    b, g = (1e-2, 1e-3) if rule == "additive" else (2e-2, 1e-2)
    tower = lambda q: HyperStack(q, [SGD(0.1), SGD(b, rule=rule), AscentSGD(g)])  # noqa: E731
    printed = compare(Case("printed", lambda q: SGDHD(q, 0.1, hypergrad_lr=b, rule=rule,
                                                       hyper_hypergrad_lr=g,
                                                       second_order="printed"), tower, True), p)
    derived = compare(Case("derived", lambda q: SGDHD(q, 0.1, hypergrad_lr=b, rule=rule,
                                                       hyper_hypergrad_lr=g), tower, True), p)
    assert max(printed["alpha_rel_err"], printed["beta_rel_err"]) <= 1e-10
    assert derived["beta_rel_err"] > 1e-6


@pytest.fixture
def one_buffer(monkeypatch):
    """Wraps an optimizer factory so that its parameters lie in one buffer and its zero_grad
    keeps them there; the CPU kernels are off (as without a compiler), so the one-buffer step is
    the one taken, and the returned dict counts its steps."""
    monkeypatch.setattr(native, "kernels", lambda: None)
    taken = {"steps": 0}
    for name in ("sgd_step", "adam_run"):
        real = getattr(flat, name)

        def counted(*args, real=real):
            done = real(*args)
            taken["steps"] += done is not False
            return done
        monkeypatch.setattr(flat, name, counted)

    def wrap(make):
        def made(params):
            opt = make(params)
            flatten_(opt)
            opt.zero_grad = functools.partial(opt.zero_grad, set_to_none=False)
            return opt
        return made
    return wrap, taken


# a broken layout warns that the list path steps: it must not happen here
@pytest.mark.filterwarnings("error:the parameters lie in one buffer:UserWarning")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_buffer_step_matches_autodiff_float64(case, one_buffer):
    wrap, taken = one_buffer
    row = compare(dataclasses.replace(case, analytic=wrap(case.analytic)),
                  Problem(model="mlp", steps=25))
    assert taken["steps"] == 25
    assert row["alpha_rel_err"] <= 1e-10, row
    assert row["params_rel_err"] <= 1e-10, row
    if case.second_order:
        assert row["beta_rel_err"] <= 1e-10, row
    assert abs(row["alpha_T"] - row["alpha_0"]) > 1e-4 * abs(row["alpha_0"]), row


#: the finite-difference cases whose optimizer has a one-buffer step
FD_ONE_BUFFER = [c for c in FD if c[0].startswith(("SGD", "Adam", "HD(AdamW"))]


@pytest.mark.filterwarnings("error:the parameters lie in one buffer:UserWarning")
@pytest.mark.parametrize("name,make,l2", FD_ONE_BUFFER, ids=[c[0] for c in FD_ONE_BUFFER])
def test_one_buffer_hypergradient_matches_central_finite_difference(name, make, l2, one_buffer):
    wrap, taken = one_buffer
    analytic, fd = finite_difference_check(wrap(make), Problem(model="mlp", steps=25), l2=l2)
    assert taken["steps"] >= 7    # the 5 + 2 steps of the run itself, the copies' besides
    assert analytic != 0
    assert abs(analytic - fd) <= 1e-6 * abs(analytic), (analytic, fd)
