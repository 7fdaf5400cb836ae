"""The official image augmentation policies (data/augment.py, data/transforms.py) and their wiring into training.

Op semantics on tiny hand-made images (exact values), the same ops against Pillow's 8-bit implementations (the
library timm runs them with; within one 8-bit level), the RandAugment string parser and its errors, determinism
under a generator / the global seed, exact resume of an augmented run, and that a recipe's policy reaches the
train command's data pipeline.
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from spiking_transformers.data import augment as A
from spiking_transformers.data.augment import (
    AugmentOp,
    AugmentPolicy,
    ColorJitter,
    RandAugment,
    RandomErasing,
    build_eval_transform,
    build_train_transform,
    parse_rand_augment,
)
from spiking_transformers.data.transforms import CenterCrop, RandomResizedCrop, ResizeShorter, resize
from test_training_utils import TINY, register_tiny


def _img(rows) -> torch.Tensor:
    """``[1, H, W]`` from nested lists of 8-bit levels."""
    return torch.tensor(rows, dtype=torch.float32).unsqueeze(0) / 255.0


def _levels(x: torch.Tensor) -> list:
    return (x * 255).round().to(torch.int64).squeeze(0).tolist()


# ---------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
def test_rotate_quarter_turns_of_a_2x2_are_exact_permutations(interpolation):
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]) / 4  # a b / c d
    ccw = A.rotate(x, 90, interpolation=interpolation)
    assert torch.allclose(ccw, torch.tensor([[[2.0, 4.0], [1.0, 3.0]]]) / 4, atol=1e-6)  # b d / a c: counter-clockwise
    assert torch.allclose(ccw, torch.rot90(x, 1, (-2, -1)), atol=1e-6)
    assert torch.allclose(A.rotate(x, -90, interpolation=interpolation), torch.rot90(x, -1, (-2, -1)), atol=1e-6)
    assert torch.allclose(A.rotate(x, 180, interpolation=interpolation), x.flip(-1).flip(-2), atol=1e-6)


def test_translate_moves_content_and_fills_with_the_mean_per_channel():
    x = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4) / 12
    x = torch.cat([x, 1 - x])  # 2 channels
    y = A.translate_x(x, 1, fill=(0.25, 0.75), interpolation="nearest")  # output (u, v) <- input (u + 1, v)
    assert torch.equal(y[:, :, :3], x[:, :, 1:])
    assert torch.equal(y[0, :, 3], torch.full((3,), 0.25)) and torch.equal(y[1, :, 3], torch.full((3,), 0.75))
    y = A.translate_y(x, -2, fill=0.5, interpolation="bilinear")  # content moves down by 2
    assert torch.allclose(y[:, 2:], x[:, :1], atol=1e-6) and torch.equal(y[:, :2], torch.full((2, 2, 4), 0.5))


def test_shear_is_about_the_top_left_corner():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4) / 16
    y = A.shear_x(x, 2.0, fill=0.0, interpolation="nearest")  # row v (centre v + 0.5) shifts by 2 (v + 0.5)
    assert torch.equal(y[0, 0, :3], x[0, 0, 1:]) and y[0, 0, 3] == 0  # row 0: shift by 1 pixel
    assert torch.equal(y[0, 1, :1], x[0, 1, 3:]) and (y[0, 1, 1:] == 0).all()  # row 1: shift by 3


def test_random_resized_crop_scale_one_keeps_the_whole_image_and_windows_fit():
    x = torch.rand(3, 8, 8)
    crop = RandomResizedCrop(8, scale=(1.0, 1.0), interpolation="bicubic")
    for _ in range(20):  # area 1 with a non-square ratio never fits: the fallback is the whole (square) image
        assert torch.equal(crop(x), x)
    crop = RandomResizedCrop(5, scale=(0.08, 1.0))
    for _ in range(200):
        i, j, h, w = crop.window(20, 30)
        assert 0 <= i and i + h <= 20 and 0 <= j and j + w <= 30 and h >= 1 and w >= 1
    assert crop(torch.rand(2, 20, 30)).shape == (2, 5, 5)


def test_eval_resize_and_center_crop():
    x = torch.rand(3, 32, 32)
    ev = build_eval_transform({"crop_pct": 0.875}, img_size=32)
    assert isinstance(ev.transforms[0], ResizeShorter) and ev.transforms[0].size == 36  # floor(32 / 0.875)
    assert isinstance(ev.transforms[1], CenterCrop) and ev(x).shape == (3, 32, 32)
    assert build_eval_transform({"crop_pct": 1.0}, img_size=32) is None and build_eval_transform({}, img_size=8) is None
    assert A.eval_scale_size({"crop_pct": 0.95}, 224) == 235 and A.eval_scale_size({"eval_resize": 256}, 224) == 256
    assert torch.equal(CenterCrop(2)(torch.arange(16.0).reshape(1, 4, 4)), torch.tensor([[[5.0, 6.0], [9.0, 10.0]]]))
    assert ResizeShorter(4)(torch.rand(1, 8, 16)).shape == (1, 4, 8)


# ---------------------------------------------------------------------------------------------- pixel ops
def test_solarize_threshold_and_solarize_add():
    x = _img([[0, 127, 128, 255]])
    assert _levels(A.solarize(x, 128)) == [[0, 127, 127, 0]]  # levels >= 128 are inverted
    assert _levels(A.solarize(x, 0)) == [[255, 128, 127, 0]] and _levels(A.solarize(x, 256)) == [[0, 127, 128, 255]]
    assert _levels(A.solarize_add(x, 99)) == [[99, 226, 128, 255]]  # only levels < 128 get the addition
    assert _levels(A.solarize_add(_img([[200, 100]]), 110, threshold=256)) == [[255, 210]]  # clipped at 255


def test_posterize_keeps_the_top_bits():
    x = _img([[0b10110111, 255, 7]])
    assert _levels(A.posterize(x, 3)) == [[0b10100000, 0b11100000, 0]]
    assert _levels(A.posterize(x, 0)) == [[0, 0, 0]] and torch.equal(A.posterize(x, 8), x)


def test_equalize_by_hand():
    # 400 pixels, 4 levels x 100: step = (400 - 100) // 255 = 1; level i -> pixels below i.
    x = _img(np.repeat([50, 100, 150, 200], 100).reshape(20, 20).tolist())
    y = A.equalize(x)
    assert sorted(set(np.asarray(_levels(y)).ravel().tolist())) == [0, 100, 200, 255]
    assert torch.equal(y[x == 50 / 255], torch.zeros(100))
    small = _img([[10, 20], [30, 40]])  # too few pixels: step 0, unchanged (as Pillow)
    assert torch.equal(A.equalize(small), small)


def test_auto_contrast_invert_and_one_channel_colour_ops():
    x = _img([[51, 85], [153, 51]])
    assert _levels(A.auto_contrast(x)) == [[0, 85], [255, 0]]
    flat = torch.full((1, 2, 2), 0.3)
    assert torch.equal(A.auto_contrast(flat), flat) and torch.allclose(A.invert(x), 1 - x)
    grey = torch.tensor([[[0.0, 1.0]]])
    assert torch.equal(A.adjust_saturation(grey, 0.0), grey) and torch.equal(A.adjust_hue(grey, 0.3), grey)
    assert torch.allclose(A.adjust_contrast(grey, 0.0), torch.full_like(grey, 0.5))  # the mean grey level
    assert torch.allclose(A.adjust_brightness(grey, 0.5), grey * 0.5)
    two = torch.rand(2, 5, 5)  # 2-channel frames: colour ops are no-ops, contrast uses the mean of all channels
    assert torch.equal(A.adjust_saturation(two, 0.1), two)
    assert torch.allclose(A.adjust_contrast(two, 0.0), torch.full_like(two, float(two.mean())))


def test_sharpness_keeps_the_border_and_smooths_the_interior():
    x = torch.zeros(1, 3, 3)
    x[0, 1, 1] = 1.0
    y = A.adjust_sharpness(x, 0.0)  # the degenerate (smoothed) image
    assert torch.equal(y[0, 0], x[0, 0]) and y[0, 1, 1] == pytest.approx(5 / 13)
    assert torch.allclose(A.adjust_sharpness(x, 1.0), x)


def test_hue_rotation_of_pure_colours():
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(A.adjust_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1), atol=1e-6)
    assert torch.allclose(A.adjust_hue(red, -1 / 3), torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1), atol=1e-6)


def test_ops_match_pillow_within_one_level():
    pil = pytest.importorskip("PIL.Image")
    from PIL import ImageEnhance, ImageOps

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    a[..., 0] = a[..., 0] // 3 + 60  # a low-contrast channel for equalize / autocontrast
    im = pil.fromarray(a)
    x = torch.from_numpy(a.transpose(2, 0, 1).copy()).float() / 255
    fill = (128, 128, 128)

    def warp(matrix, resample):
        return im.transform(im.size, pil.AFFINE, matrix, resample=resample, fillcolor=fill)

    modes = {"nearest": pil.NEAREST, "bilinear": pil.BILINEAR, "bicubic": pil.BICUBIC}
    cases = [
        ("equalize", A.equalize(x), ImageOps.equalize(im)),
        ("autocontrast", A.auto_contrast(x), ImageOps.autocontrast(im)),
        ("posterize", A.posterize(x, 3), ImageOps.posterize(im, 3)),
        ("solarize", A.solarize(x, 100), ImageOps.solarize(im, 100)),
    ]
    for f in (0.1, 1.72):
        cases += [(f"brightness {f}", A.adjust_brightness(x, f), ImageEnhance.Brightness(im).enhance(f)),
                  (f"contrast {f}", A.adjust_contrast(x, f), ImageEnhance.Contrast(im).enhance(f)),
                  (f"color {f}", A.adjust_saturation(x, f), ImageEnhance.Color(im).enhance(f)),
                  (f"sharpness {f}", A.adjust_sharpness(x, f), ImageEnhance.Sharpness(im).enhance(f))]
    for name, mode in modes.items():
        cases += [(f"rotate {name}", A.rotate(x, 27, fill=128 / 255, interpolation=name),
                   im.rotate(27, resample=mode, fillcolor=fill)),
                  (f"shear_x {name}", A.shear_x(x, -0.27, fill=128 / 255, interpolation=name),
                   warp((1, -0.27, 0, 0, 1, 0), mode)),
                  (f"translate_y {name}", A.translate_y(x, 3.6, fill=128 / 255, interpolation=name),
                   warp((1, 0, 0, 0, 1, 3.6), mode))]
    for name in ("bilinear", "bicubic"):
        for size in ((13, 17), (40, 48)):
            cases.append((f"resize {name} {size}", resize(x, size, name), im.resize(size[::-1], modes[name])))
    for name, ours, ref in cases:
        diff = np.abs((ours * 255).round().numpy().transpose(1, 2, 0) - np.asarray(ref).astype(float))
        if name.startswith("resize bicubic"):  # Pillow clips to 8 bits between its two 1-D passes; we do not
            assert (diff <= 1).mean() > 0.95 and diff.mean() < 0.5, (name, diff.max(), diff.mean())
        else:
            assert diff.max() <= 1, (name, diff.max())


# ---------------------------------------------------------------------------------------------- RandAugment
def test_parse_policies_of_the_recipes():
    c = parse_rand_augment("rand-m9-n1-mstd0.4-inc1")
    assert (c.magnitude, c.num_layers, c.magnitude_std, c.increasing, c.prob) == (9, 1, 0.4, True, 0.5)
    assert c.ops == A.RAND_OPS_INCREASING and len(c.ops) == 15
    c = parse_rand_augment("rand-m7-mstd0.5-inc1")
    assert (c.magnitude, c.num_layers) == (7, 2)  # n defaults to 2
    c = parse_rand_augment("rand-m9-n1")
    assert (c.magnitude_std, c.increasing, c.ops) == (0.0, False, A.RAND_OPS)
    c = parse_rand_augment("rand")
    assert (c.magnitude, c.num_layers) == (10, 2)
    assert parse_rand_augment("rand-mstd101").magnitude_std == math.inf  # > 100: uniform magnitude
    c = parse_rand_augment("rand-w0-mmax12-p0.8")
    assert c.weight_idx == 0 and c.magnitude_max == 12 and c.prob == 0.8
    assert float(c.weights().sum()) == pytest.approx(1.0) and c.weights()[c.ops.index("Invert")] == 0


@pytest.mark.parametrize("policy, token", [
    ("rand-m9-x3", "'x3'"), ("random-m9", "'random'"), ("rand-m", "'m'"), ("rand-m9-m3", "'m3'"),
    ("rand-inc2", "'inc2'"), ("rand--m9", "''"), ("rand-n1.5", "'n1.5'"), ("rand-mstdx", "'mstdx'"),
    ("rand-p1.5", "'p1.5'"), ("rand-w1", "'w1'"), ("rand-t-m9", "'t'"), ("rand-m9-n14-w0", "'n14'"),
])
def test_malformed_policies_name_the_bad_token(policy, token):
    with pytest.raises(ValueError, match=f"bad token {token}"):
        parse_rand_augment(policy)


def test_level_to_argument_mappings_at_magnitude_9():
    g = torch.Generator().manual_seed(0)
    arg = {name: fn(9.0, g) for name, fn in A._LEVEL_TO_ARG.items() if fn is not None}
    assert (arg["Posterize"], arg["PosterizeIncreasing"]) == (3, 1)
    assert (arg["Solarize"], arg["SolarizeIncreasing"], arg["SolarizeAdd"]) == (230, 26, 99)
    assert arg["Color"] == pytest.approx(1.72) and arg["ContrastIncreasing"] in (pytest.approx(1.81),
                                                                                 pytest.approx(0.19))
    assert abs(arg["Rotate"]) == pytest.approx(27) and abs(arg["ShearX"]) == pytest.approx(0.27)
    assert abs(arg["TranslateXRel"]) == pytest.approx(0.405)


def test_magnitude_noise_is_clipped_and_mstd_inf_is_uniform():
    op = AugmentOp("Rotate", magnitude=9, magnitude_std=5.0, generator=torch.Generator().manual_seed(1))
    levels = [op.level() for _ in range(500)]
    assert min(levels) == 0.0 and max(levels) == 10.0 and 7 < np.mean(levels) < 8  # clipped N(9, 5): 7.5
    op = AugmentOp("Rotate", magnitude=9, magnitude_std=math.inf, generator=torch.Generator().manual_seed(1))
    levels = [op.level() for _ in range(500)]
    assert 0 <= min(levels) < 0.5 and 8.5 < max(levels) <= 9 and 4 < np.mean(levels) < 5


def test_randaugment_applies_n_ops_each_with_probability_p(monkeypatch):
    calls = []
    monkeypatch.setattr(A, "_apply_op", lambda name, x, *a: calls.append(name) or x)
    ra = RandAugment("rand-m9-n3-p1", generator=torch.Generator().manual_seed(0))
    for _ in range(50):
        ra(torch.rand(1, 4, 4))
    assert len(calls) == 150 and set(calls) <= set(A.RAND_OPS) and len(set(calls)) > 10
    calls.clear()
    ra = RandAugment("rand-m9-n2", generator=torch.Generator().manual_seed(0))  # p = 0.5
    for _ in range(200):
        ra(torch.rand(1, 4, 4))
    assert 150 < len(calls) < 250
    assert torch.equal(RandAugment("rand-n0")(x := torch.rand(1, 3, 3)), x)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_randaugment_on_any_channel_count(channels):
    ra = RandAugment("rand-m9-n3-mstd0.5-p1", fill=0.3)
    for _ in range(40):
        y = ra(torch.rand(channels, 8, 8))
        assert y.shape == (channels, 8, 8) and torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_determinism_under_a_generator_and_under_the_global_seed():
    x = torch.rand(3, 16, 16)
    policy = {"randaugment": "rand-m9-n2-mstd0.5-inc1", "random_erasing": 0.5, "color_jitter": 0.4,
              "force_color_jitter": True}

    def run(gen):
        t = build_train_transform(policy, img_size=12, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2), generator=gen)
        return torch.stack([t(x) for _ in range(30)])

    a, b = run(torch.Generator().manual_seed(3)), run(torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, run(torch.Generator().manual_seed(4)))
    torch.manual_seed(5)
    c = run(None)
    state = torch.get_rng_state()
    d = run(None)
    torch.set_rng_state(state)  # what the trainer's checkpoints restore
    assert torch.equal(d, run(None))
    torch.manual_seed(5)
    assert torch.equal(c, run(None))


# ---------------------------------------------------------------------------------------------- jitter, erasing
def test_color_jitter_ranges_and_one_channel():
    cj = ColorJitter(brightness=0.4, generator=torch.Generator().manual_seed(0))
    x = torch.full((1, 2, 2), 0.5)
    vals = torch.stack([cj(x)[0, 0, 0] for _ in range(200)])
    assert 0.3 - 1e-6 <= vals.min() < 0.33 and 0.67 < vals.max() <= 0.7 + 1e-6  # 0.5 * [0.6, 1.4]
    full = ColorJitter(0.4, 0.4, 0.4, 0.1)
    assert full(torch.rand(1, 5, 5)).shape == (1, 5, 5) and full(torch.rand(3, 5, 5)).shape == (3, 5, 5)


def test_random_erasing_area_bounds_and_fill_modes():
    g = torch.Generator().manual_seed(0)
    er = RandomErasing(1.0, mode="const", mean=1.0, std=1.0, generator=g)  # const 0 normalised = the mean, here 1
    areas = []
    for _ in range(300):
        mask = er(torch.zeros(1, 20, 30))[0] == 1.0
        rows, cols = mask.any(1).nonzero().ravel(), mask.any(0).nonzero().ravel()
        h, w = len(rows), len(cols)
        assert h and w and mask.sum() == h * w  # one solid rectangle
        assert rows.max() - rows.min() + 1 == h and cols.max() - cols.min() + 1 == w and h < 20 and w < 30
        areas.append(h * w / 600)
    assert 0.015 <= min(areas) < 0.05 and 0.25 < max(areas) <= 0.36  # area fraction in [0.02, 1/3] up to rounding
    x = torch.zeros(3, 20, 30)
    mean, std = (0.4, 0.5, 0.6), (0.1, 0.2, 0.3)
    y = RandomErasing(1.0, mode="pixel", mean=mean, std=std, generator=g)(x)
    z = (y - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)  # normalised like the data sets
    erased = (y != 0).all(0)
    assert erased.any() and abs(float(z[:, erased].mean())) < 0.5 and 0.5 < float(z[:, erased].std()) < 1.5
    y = RandomErasing(1.0, mode="rand", mean=mean, std=std, generator=g)(x)
    assert all(len(torch.unique(y[c][(y != 0).all(0)])) == 1 for c in range(3))  # one value per channel
    assert torch.equal(RandomErasing(0.0)(x), x)


# ---------------------------------------------------------------------------------------------- policies
def test_policy_pipeline_follows_timm_order_and_colour_jitter_rule():
    t = build_train_transform({"randaugment": "rand-m9-n1-mstd0.4-inc1", "random_erasing": 0.25,
                               "interpolation": "bicubic", "crop_scale": [1.0, 1.0], "crop_pct": 1.0},
                              img_size=32, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    kinds = [type(s).__name__ for s in t.transforms]
    assert kinds == ["RandomResizedCrop", "RandomHorizontalFlip", "RandAugment", "RandomErasing"]
    assert t.transforms[0].scale == (1.0, 1.0) and t.transforms[2].ops[3].fill == (0.49, 0.48, 0.45)
    assert t(torch.rand(3, 32, 32)).shape == (3, 32, 32)
    # timm applies colour jitter only without RandAugment (SDT recipes record both), unless forced
    with_ra = build_train_transform({"randaugment": "rand-m5", "color_jitter": 0.4}, img_size=8, mean=0.5, std=0.5)
    assert not any(isinstance(s, ColorJitter) for s in with_ra.transforms)
    forced = build_train_transform({"randaugment": "rand-m5", "color_jitter": 0.4, "force_color_jitter": True},
                                   img_size=8, mean=0.5, std=0.5)
    assert isinstance(forced.transforms[-1], ColorJitter)
    only = build_train_transform({"color_jitter": [0.1, 0.2, 0.3, 0.05], "hflip": 0}, img_size=8, mean=0.5, std=0.5)
    assert [type(s).__name__ for s in only.transforms] == ["RandomResizedCrop", "ColorJitter"]


def test_policy_errors():
    with pytest.raises(ValueError, match="unknown augment key"):
        AugmentPolicy.from_dict({"rand_augment": "rand-m9"})
    with pytest.raises(ValueError, match="snn_augment_wide"):
        AugmentPolicy.from_dict({"snn_augment_wide": True})
    with pytest.raises(ValueError, match="bad token 'k9'"):
        AugmentPolicy.from_dict({"randaugment": "rand-k9"})
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentPolicy.from_dict({"crop_scale": [1.0, 0.5]})
    assert AugmentPolicy.from_dict({"eval_resize": None, "hflip": None}) == AugmentPolicy()
    from spiking_transformers.training.config import list_recipes, resolve_config

    for name in list_recipes():  # every packaged recipe's section is valid
        resolve_config(name)
    with pytest.raises(ValueError, match="bad token 'q1'"):
        resolve_config("spikformer_cifar10", {"augment": {"randaugment": "rand-m9-q1"}})


# ---------------------------------------------------------------------------------------------- training
_QUICK = {"model": TINY, "data": "digits", "epochs": 1, "cooldown_epochs": 0, "warmup_epochs": 0.0, "batch_size": 64,
          "amp": "none", "threads": 1, "progress": False, "tensorboard": False, "T": 2}


def test_build_datasets_applies_the_recipe_policy_to_digits():
    from spiking_transformers.training.config import resolve_config
    from spiking_transformers.training.run import build_datasets

    register_tiny()
    tr, te = build_datasets(resolve_config("spikformer_cifar10", _QUICK))
    kinds = [type(s).__name__ for s in tr.transform.transforms]
    assert kinds == ["RandomResizedCrop", "RandomHorizontalFlip", "RandAugment", "RandomErasing"]
    assert tr.transform.transforms[2].policy == "rand-m9-n1-mstd0.4-inc1" and te.transform is None
    assert tr[0][0].shape == (1, 8, 8)
    # crop_pct < 1 gives the test split a resize + centre crop; an empty section gives no augmentation
    tr, te = build_datasets(resolve_config("spikformer_cifar10", {**_QUICK, "data_args": {"img_size": 16},
                                                                  "augment": {"crop_pct": 0.5}}))
    assert [type(s).__name__ for s in te.transform.transforms] == ["ResizeShorter", "CenterCrop"]
    assert te[0][0].shape == (1, 16, 16)
    tr, _ = build_datasets(resolve_config(None, {**_QUICK}))
    assert tr.transform is None


def test_train_command_applies_the_recipe_policy(tmp_path, monkeypatch, caplog):
    from spiking_transformers.cli import main

    register_tiny()
    calls = []
    original = RandAugment.__call__
    monkeypatch.setattr(RandAugment, "__call__", lambda self, x: calls.append(1) or original(self, x))
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        rc = main(["train", "--recipe", "spikformer_cifar10", "--data", "digits", "--model", TINY, "--T", "2",
                   "--epochs", "1", "--cooldown-epochs", "0", "--warmup-epochs", "0", "--batch-size", "64",
                   "--amp", "none", "--threads", "1", "--no-progress", "--no-tensorboard", "--out", str(out)])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["recipe"] == "spikformer_cifar10" and cfg["augment"]["randaugment"] == "rand-m9-n1-mstd0.4-inc1"
    assert cfg["augment"]["random_erasing"] == 0.25
    assert "train augmentation: Compose([RandomResizedCrop(8, scale=(1.0, 1.0)" in caplog.text
    assert "RandAugment('rand-m9-n1-mstd0.4-inc1'" in caplog.text and "RandomErasing(p=0.25" in caplog.text
    assert len(calls) >= 1408  # every training sample of the epoch went through RandAugment (22 batches x 64)


def test_resume_of_an_augmented_run_is_exact(tmp_path):
    from spiking_transformers.training.config import resolve_config
    from spiking_transformers.training.run import build_datasets, build_model
    from spiking_transformers.training.trainer import Trainer, seed_everything

    register_tiny()

    class Crash(Exception):
        pass

    def crash_at(step):
        def cb(trainer):
            if trainer.global_step == step:
                raise Crash

        return cb

    def train(out, callbacks=(), resume=False):
        config = resolve_config("spikformer_cifar10", {**_QUICK, "out": str(out), "save_every_steps": 5})
        seed_everything(config.seed)
        model = build_model(config)
        tr, te = build_datasets(config)
        Trainer(model, config, tr, te, out_dir=out, callbacks=callbacks).fit(resume=resume)
        return model.state_dict()

    ref = train(tmp_path / "ref")
    with pytest.raises(Crash):
        train(tmp_path / "run", callbacks=[crash_at(13)])  # checkpoints at steps 5 and 10 exist
    resumed = train(tmp_path / "run", resume=True)
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)


def test_imagefolder_eval_reads_at_the_resize_size_then_crops(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    from spiking_transformers.training.config import resolve_config
    from spiking_transformers.training.run import build_datasets

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            pil.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / split / cls / "0.png")
    register_tiny()
    config = resolve_config("sdt_imagenet_8_512", {**_QUICK, "data": "imagefolder", "data_dir": str(tmp_path),
                                                   "data_args": {"img_size": 16}, "augment": {"crop_pct": 0.5}})
    tr, te = build_datasets(config)
    assert tr[0][0].shape == (3, 16, 16) and tr.transform.transforms[0].scale == (0.2, 1.0)
    assert te.img_size == 32 and isinstance(te.transform, CenterCrop) and te.info.img_size == 16  # floor(16 / 0.5)
    assert te[0][0].shape == (3, 16, 16)
