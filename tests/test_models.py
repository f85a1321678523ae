"""hdrepro.engine.models: shapes and the papers' architectures."""
import pytest
import torch

from hdrepro.engine import models as M

SHAPES = [("logreg", (2, 1, 28, 28), 7850), ("mlnn", (2, 1, 28, 28), 1796010),
          ("bettercnn", (2, 1, 28, 28), None), ("tanh-mlp", (2, 1, 28, 28), 101770),
          ("tanh-mlp-no-output-tanh", (2, 1, 28, 28), 101770), ("clip-cnn", (2, 3, 32, 32), None),
          ("clip-cnn-28", (2, 1, 28, 28), 160 + 2320 + 16 * 24 * 24 * 128 + 128 + 1290),
          ("vgg16bn-narrow", (2, 3, 32, 32), None)]


@pytest.mark.parametrize("name,shape,n_params", SHAPES, ids=[s[0] for s in SHAPES])
def test_models_map_images_to_ten_logits(name, shape, n_params):
    model = M.build(name)
    assert model(torch.randn(shape)).shape == (2, 10)
    if n_params is not None:
        assert sum(p.numel() for p in model.parameters()) == n_params


def test_bettercnn_is_the_reports_network():
    convs = [m for m in M.BetterCNN() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in M.BetterCNN() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 30, (5, 5)),
                                                                              (30, 15, (3, 3))]
    assert [(l.in_features, l.out_features) for l in linears] == [(375, 128), (128, 50), (50, 10)]


def test_bettercnn_dropout_is_off_at_evaluation():
    model = M.BetterCNN().eval()
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    assert not torch.equal(a, model(x))


def test_output_tanh_bounds_the_logits():
    out = M.TanhMLP(output_tanh=True)(torch.randn(64, 1, 28, 28) * 100)
    assert out.abs().max() <= 1


def test_vgg16bn_full_width_has_thirteen_convs_with_batch_norm():
    model = M.VGG16BN()
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and sum(isinstance(m, torch.nn.BatchNorm2d) for m in model) == 13
    assert convs[-1].out_channels == 512


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="choose one of logreg, mlnn"):
        M.build("resnet50")


def _papers_order():
    """BetterCNN as the report writes it: each ReLU before its pool."""
    n = torch.nn
    return n.Sequential(n.Conv2d(1, 30, 5), n.ReLU(), n.MaxPool2d(2), n.Conv2d(30, 15, 3),
                        n.ReLU(), n.MaxPool2d(2), n.Dropout(0.2), n.Flatten(), n.Linear(375, 128),
                        n.ReLU(), n.Linear(128, 50), n.ReLU(), n.Linear(50, 10))


def _mnist_like(seed=0, n=64):
    """Images with exact zeros and repeated values, as MNIST's backgrounds have: pools see ties."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=gen)
    return (x > 0.6) * torch.round(x * 4) / 4, torch.randint(0, 10, (n,), generator=gen)


def _train(model, steps=6):
    x, y = _mnist_like()
    opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    torch.manual_seed(3)   # the dropout masks
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return torch.tensor(losses), torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_bettercnn_pools_before_relu_bit_for_bit_as_the_report_orders_them():
    """ReLU after the pool gives the same outputs, gradients and training, bit for bit."""
    torch.manual_seed(0)
    ours = M.BetterCNN()
    theirs = _papers_order()
    theirs.load_state_dict(ours.state_dict())   # the parameters keep their indices
    a, b = _train(ours), _train(theirs)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bettercnn_channels_last_on_cpu_matches_the_standard_layout_to_rounding():
    """prepare() puts BetterCNN's convolutions in channels-last on CPU: the same training to
    float32 rounding (the convolutions sum in another order), the same dropout masks."""
    torch.manual_seed(0)
    standard = M.BetterCNN()
    fast = M.prepare(M.BetterCNN(), torch.device("cpu"))
    fast.load_state_dict(standard.state_dict())
    assert fast[0].weight.is_contiguous(memory_format=torch.channels_last)
    (loss_a, params_a), (loss_b, params_b) = _train(standard), _train(fast)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=0)
    torch.testing.assert_close(params_b, params_a, rtol=0, atol=1e-5)
    assert not torch.equal(params_a, params_b)   # another summation order really ran
    assert loss_a[-1] < loss_a[0]


def test_prepare_leaves_other_models_and_dtypes_as_they_are():
    cpu = torch.device("cpu")
    assert M.prepare(M.BetterCNN().double(), cpu)[0].weight.is_contiguous()
    clip = M.prepare(M.build("clip-cnn"), cpu)
    assert all(p.is_contiguous() for p in clip.parameters())
