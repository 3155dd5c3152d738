"""On-device augmentation: exact crops and flips, determined by the generator alone."""

from __future__ import annotations

import pytest
import torch

from flooding.augment import apply_plan, crop_padding, draw_plan

CPU = torch.device("cpu")


def _images(n: int = 6, size: int = 8) -> torch.Tensor:
    return torch.arange(n * 2 * size * size, dtype=torch.float32).view(n, 2, size, size)


def test_padding_scales_with_the_image_size():
    assert crop_padding(32) == 4 and crop_padding(28) == 3 and crop_padding(8) == 1


def test_each_sample_is_its_own_crop_and_flip():
    x = _images()
    plan = draw_plan(len(x), 8, "crop_flip", torch.Generator().manual_seed(0), CPU)
    index = torch.tensor([4, 0, 5, 2])
    out = apply_plan(x[index], plan, index)
    pad = plan.pad
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    for row, i in enumerate(index.tolist()):
        dy, dx = int(plan.dy[i]), int(plan.dx[i])
        expected = padded[i, :, dy : dy + 8, dx : dx + 8]
        if plan.flip[i]:
            expected = expected.flip(-1)
        assert torch.equal(out[row], expected)


def test_centre_offsets_without_flip_are_the_identity():
    x = _images(3)
    plan = draw_plan(3, 8, "crop", torch.Generator().manual_seed(0), CPU)
    centred = type(plan)(
        dy=torch.full((3,), plan.pad), dx=torch.full((3,), plan.pad), flip=plan.flip, pad=plan.pad
    )
    index = torch.arange(3)
    assert torch.equal(apply_plan(x, centred, index), x)


def test_crop_never_flips_and_crop_flip_flips_about_half():
    crop = draw_plan(2000, 32, "crop", torch.Generator().manual_seed(1), CPU)
    both = draw_plan(2000, 32, "crop_flip", torch.Generator().manual_seed(1), CPU)
    assert not crop.flip.any()
    assert 0.45 < both.flip.float().mean().item() < 0.55
    assert int(both.dy.min()) == 0 and int(both.dy.max()) == 2 * both.pad


def test_plans_depend_on_the_generator_only():
    def plan(seed: int):
        return draw_plan(50, 32, "crop_flip", torch.Generator().manual_seed(seed), CPU)

    a, b, c = plan(3), plan(3), plan(4)
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("dy", "dx", "flip"))
    assert not torch.equal(a.dy, c.dy)


def test_channels_last_input_stays_channels_last():
    x = _images(4).contiguous(memory_format=torch.channels_last)
    plan = draw_plan(4, 8, "crop_flip", torch.Generator().manual_seed(0), CPU)
    out = apply_plan(x, plan, torch.arange(4))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, apply_plan(x.contiguous(), plan, torch.arange(4)))


def test_unknown_augmentation_fails():
    with pytest.raises(ValueError, match="augmentation: invalid value 'none'"):
        draw_plan(4, 8, "none", torch.Generator(), CPU)
