"""The learning-rate-free rivals: each builds with its defaults and its recommended setting, trains,
and follows its authors' protocol; a missing package names the pip command."""
import importlib

import pytest
import torch

from hdrepro.methods import rivals
from hdrepro.studies.rivals import RivalSpec, method_config
from hdrepro.methods.registry import OptimConfig, make_optimizer
from hdrepro.engine.train import evaluation_model


def _needs(name):
    return pytest.mark.skipif(not rivals.available(name), reason=(
        f"{rivals.RIVALS[name][2]} is not installed: pip install -e '.[rivals]' "
        "(the README's set-up installs it)"))


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 6, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _train(opt, model, steps=40):
    x, y = _data()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    with evaluation_model(opt, model) as judged, torch.no_grad():
        return float(torch.nn.functional.cross_entropy(judged(x), y))


@pytest.mark.parametrize("setting", rivals.SETTINGS)
@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs(n)) for n in rivals.RIVALS])
def test_each_rival_trains_with_each_setting(name, setting):
    model = _model()
    opt = make_optimizer(OptimConfig(name, rivals.DEFAULT_LR[name], weight_decay=0.0,
                                     options=(("setting", setting),)),
                         model.parameters(), total_steps=40, model=model)
    x, y = _data()
    with torch.no_grad():
        start = float(torch.nn.functional.cross_entropy(model(x), y))
    final = _train(opt, model)
    assert final < start, (name, setting, start, final)


@_needs("prodigy")
@_needs("dadapt-adam")
@_needs("schedulefree-adamw")
def test_recommended_settings_set_what_the_authors_recommend():
    m = _model()
    p = rivals.build("prodigy", m.parameters(), total_steps=100, setting="recommended")
    assert p.param_groups[0]["safeguard_warmup"] and p.scheduler is not None
    d = rivals.build("dadapt-adam", _model().parameters(), setting="recommended")
    assert d.param_groups[0]["use_bias_correction"]
    s = rivals.build("schedulefree-adamw", _model().parameters(), total_steps=100,
                     setting="recommended")
    assert s.param_groups[0]["warmup_steps"] == 5
    f = rivals.warmup_cosine(100)
    assert f(0) == pytest.approx(0.2) and f(4) == 1.0 and f(99) < 0.01


@_needs("schedulefree-adamw")
def test_schedule_free_evaluates_at_x_and_trains_at_y():
    model = _model()
    opt = rivals.build("schedulefree-adamw", model.parameters(), lr=0.05)
    _train(opt, model, 10)
    y = [p.detach().clone() for p in model.parameters()]
    with opt.evaluation_model(model) as judged:
        x = [p.detach().clone() for p in judged.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(x, y))
    assert all(torch.equal(a, p) for a, p in zip(y, model.parameters()))   # back to y


@_needs("dog")
def test_dog_recommended_evaluates_the_averaged_model():
    model = _model()
    opt = rivals.build("dog", model.parameters(), model=model, setting="recommended")
    _train(opt, model, 10)
    with opt.evaluation_model(model) as judged:
        assert judged is not model and judged is opt.averager.averaged_model


def test_a_missing_package_names_the_pip_command(monkeypatch):
    real = importlib.import_module

    def fake(name, *a):
        if name == "prodigyopt":
            raise ImportError("no module")
        return real(name, *a)
    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(rivals.RivalUnavailable, match=r"pip install 'hdrepro\[rivals\]'"):
        rivals.build("prodigy", _model().parameters())


@pytest.mark.parametrize("kw,words", [({"setting": "best"}, "setting"), ({"lr": -1.0}, "lr|rate"),
                                      ({"setting": "recommended"}, "total_steps")])
def test_bad_rival_input_gives_a_clear_error(kw, words):
    with pytest.raises(ValueError, match=words):
        rivals.build("prodigy", _model().parameters(), **kw)
    with pytest.raises(ValueError, match="prodigy"):
        rivals.build("adamx", _model().parameters())


def test_the_scale_sweep_multiplies_each_methods_own_scale():
    assert dict(method_config("prodigy:default", 100.0).options)["d0"] == pytest.approx(1e-4)
    assert dict(method_config("dog:default", 0.1).options)["reps_rel"] == pytest.approx(1e-7)
    assert method_config("schedulefree-adamw:default", 10.0).lr == pytest.approx(0.025)
    assert method_config("adam-hd", 10.0).lr == pytest.approx(1e-2)
    assert "d0" not in dict(method_config("prodigy:default").options)
    spec = RivalSpec(models=("logreg",), epochs={"logreg": 1}, seeds=(1, 2),
                     scale_model="logreg", scale_steps=(-1, 1))
    assert len(spec.cells()) == 2 * (2 * 4 + 3)
    assert len(spec.scale_cells()) == 2 * (4 + 2)   # default settings and Adam-HD, Adam
