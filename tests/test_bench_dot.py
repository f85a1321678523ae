"""The hand-written dot product that bench_step.py times against torch's (bench/cpp_dot.py): it
must build on a machine like ours and give torch's answer before any time of it is believed."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import cpp_dot  # noqa: E402


@pytest.fixture(scope="module")
def dot_list():
    kernel = cpp_dot.build()
    assert not isinstance(kernel, str), f"the kernel did not build: {kernel}"
    return kernel


def test_the_hand_written_dot_sums_over_every_tensor_and_chunk(dot_list):
    gen = torch.Generator().manual_seed(0)
    # sizes below, at and across a chunk, so chunks straddle tensor ends
    shapes = [(3,), (cpp_dot.CHUNK,), (300, 700), (5, 3, 3, 3), (cpp_dot.CHUNK + 1,)]
    xs = [torch.randn(s, generator=gen) for s in shapes]
    ys = [torch.randn(s, generator=gen) for s in shapes]
    want = sum(float(torch.dot(x.reshape(-1).double(), y.reshape(-1).double()))
               for x, y in zip(xs, ys))
    got = dot_list(xs, ys)
    assert got == pytest.approx(want, rel=1e-5)
    cpp_dot.checked(dot_list, xs, ys)  # the bench's own guard agrees
    ys[1].mul_(2)  # same tensors, new values: the cached chunk table reads them
    assert dot_list(xs, ys) == pytest.approx(want + float(torch.dot(xs[1].double(),
                                                                    ys[1].double())) / 2,
                                             rel=1e-5)


def test_the_hand_written_dot_refuses_what_it_cannot_read(dot_list):
    with pytest.raises(ValueError, match="contiguous float32 CPU"):
        dot_list([torch.randn(4, 3).t()], [torch.randn(3, 4)])
    with pytest.raises(ValueError, match="contiguous float32 CPU"):
        dot_list([torch.randn(5, dtype=torch.float64)], [torch.randn(5, dtype=torch.float64)])
    with pytest.raises(ValueError, match="same length"):
        dot_list([torch.randn(5)], [])


def test_the_three_list_sum_is_the_sum_of_the_triple_products(dot_list):
    gen = torch.Generator().manual_seed(1)
    shapes = [(3,), (cpp_dot.CHUNK + 7,), (40, 50)]
    xs, ys, zs = ([torch.randn(s, generator=gen) for s in shapes] for _ in range(3))
    want = sum(float((x.double() * y.double() * z.double()).sum()) for x, y, z in zip(xs, ys, zs))
    assert dot_list(xs, ys, zs) == pytest.approx(want, rel=1e-5)
    cpp_dot.checked(dot_list, xs, ys, zs)


def test_a_wrong_kernel_is_refused_before_it_is_timed():
    xs, ys = [torch.ones(10)], [torch.ones(10)]
    with pytest.raises(RuntimeError, match="gives 0"):
        cpp_dot.checked(lambda a, b: 0.0, xs, ys)
