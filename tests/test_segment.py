"""Segmentation metrics, data readers and the ``segment`` command."""

from __future__ import annotations

import json
import math

import pytest
import torch

from spiking_transformers.data.errors import DataFormatError
from spiking_transformers.data.segmentation import SyntheticShapes, VOCSegmentation, voc_palette
from spiking_transformers.tasks.segmentation import confusion_matrix, iou_from_confusion, mean_iou


def test_confusion_and_iou_hand_checked():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 1, 0]])
    cm = confusion_matrix(pred, target, 4)
    # rows = true: class 0: pixels (0,0)->0, (0,1)->1, (1,3)->0; class 1: ->1, ->1; class 2: ->2, ->0; 255 skipped
    assert cm.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    iou = iou_from_confusion(cm)
    # 0: 2 / (3 + 3 - 2) = .5; 1: 2 / (2 + 3 - 2) = 2/3; 2: 1 / (2 + 1 - 1) = .5; 3: absent -> NaN
    torch.testing.assert_close(iou[:3], torch.tensor([0.5, 2 / 3, 0.5], dtype=torch.float64))
    assert math.isnan(iou[3])
    assert mean_iou(cm) == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    scores = torch.nn.functional.one_hot(pred.clamp(max=3), 4).permute(2, 0, 1)[None].float()
    assert torch.equal(confusion_matrix(scores, target[None], 4), cm)


def test_confusion_errors():
    with pytest.raises(ValueError, match="outside 0..1"):
        confusion_matrix(torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 5]), 2)
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_matrix(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long), 2)


def test_synthetic_shapes_reproducible_and_labelled():
    a, b = SyntheticShapes(4, 32, seed=3), SyntheticShapes(4, 32, seed=3)
    x, y = a[1]
    assert x.shape == (3, 32, 32) and y.shape == (32, 32) and y.dtype == torch.long
    assert torch.equal(x, b[1][0]) and torch.equal(y, b[1][1])
    labels = torch.cat([a[i][1].flatten() for i in range(4)]).unique()
    assert 0 in labels and len(labels) >= 2 and labels.max() < 4
    assert not torch.equal(a[0][1], SyntheticShapes(4, 32, seed=4)[0][1])


def test_synthetic_shapes_easier_options():
    ds = SyntheticShapes(6, 32, seed=1, shapes=("disc", "triangle"), radius=(0.2, 0.3))
    assert ds.num_classes == 3 and ds.class_names == ("background", "disc", "triangle")
    labels = torch.cat([ds[i][1].flatten() for i in range(6)])
    assert labels.max() <= 2 and (labels > 0).float().mean() > 0.1
    # the default set is unchanged by the options' defaults
    all3 = SyntheticShapes(2, 32, seed=3, shapes=("disc", "square", "triangle"))
    assert torch.equal(SyntheticShapes(2, 32, seed=3)[1][1], all3[1][1])
    with pytest.raises(ValueError, match="shapes must be"):
        SyntheticShapes(2, 32, shapes=("hexagon",))
    with pytest.raises(ValueError, match="radius must be"):
        SyntheticShapes(2, 32, radius=(0.3, 0.1))


def _fake_voc(root, ids=("a", "b"), bad=None):
    from PIL import Image

    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for i, iid in enumerate(ids):
        img = Image.new("RGB", (20, 10), (10 * i, 100, 200))
        img.save(root / "JPEGImages" / f"{iid}.jpg")
        lab = Image.new("P", (20, 10), 0)
        lab.putpalette(voc_palette())
        lab.paste(15, (0, 0, 10, 10))
        lab.putpixel((19, 9), 255)
        lab.save(root / "SegmentationClass" / f"{iid}.png")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids) + "\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text(ids[0] + "\n")


def test_voc_reader(tmp_path):
    _fake_voc(tmp_path)
    ds = VOCSegmentation(tmp_path, "train", size=16)
    assert len(ds) == 2
    x, y = ds[0]
    assert x.shape == (3, 16, 16) and y.shape == (16, 16)
    assert set(y.unique().tolist()) <= {0, 15, 255} and (y == 15).any() and (y == 0).any()
    assert (y[:, :6] == 15).all() and (y[:, 10:15] == 0).all()


def test_voc_reader_errors(tmp_path):
    from PIL import Image

    with pytest.raises(DataFormatError, match="split list 'train' not found"):
        VOCSegmentation(tmp_path, "train")
    _fake_voc(tmp_path)
    (tmp_path / "ImageSets" / "Segmentation" / "empty.txt").write_text("\n")
    with pytest.raises(DataFormatError, match="empty"):
        VOCSegmentation(tmp_path, "empty")
    (tmp_path / "ImageSets" / "Segmentation" / "gone.txt").write_text("zzz\n")
    with pytest.raises(DataFormatError, match="missing"):
        VOCSegmentation(tmp_path, "gone")[0]
    Image.new("RGB", (20, 10)).save(tmp_path / "SegmentationClass" / "a.png")
    with pytest.raises(DataFormatError, match="mode RGB"):
        VOCSegmentation(tmp_path, "train")[0]
    (tmp_path / "SegmentationClass" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match="unreadable label"):
        VOCSegmentation(tmp_path, "train")[0]
    Image.new("L", (8, 8), 40).save(tmp_path / "SegmentationClass" / "b.png")
    with pytest.raises(DataFormatError, match="differs from image size"):
        VOCSegmentation(tmp_path, "train")[1]
    Image.new("L", (20, 10), 40).save(tmp_path / "SegmentationClass" / "b.png")
    with pytest.raises(DataFormatError, match="label value 40"):
        VOCSegmentation(tmp_path, "train")[1]
    # every message is one line
    try:
        VOCSegmentation(tmp_path, "train")[1]
    except DataFormatError as e:
        assert "\n" not in str(e)


def test_segment_command_runs_on_voc_folder(tmp_path, capsys):
    from spiking_transformers.cli import main

    _fake_voc(tmp_path / "voc")
    png = tmp_path / "o.png"
    rc = main(["segment", "--data", str(tmp_path / "voc"), "--image-size", "32", "--train-steps", "1",
               "--batch", "2", "--png", str(png), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.0 <= out["miou"] <= 1.0 and len(out["per_class_iou"]) == 21 and png.is_file()


@pytest.mark.slow
def test_segment_learns_synthetic_shapes():
    # Easier synthetic set (documented in the README): two shape classes (disc, triangle), bigger shapes. On the
    # full 4-class set the same recipe needs ~1000 steps (mIoU 0.58 measured), too slow for the test suite.
    # 300 steps are not enough: the shape classes then often collapse into one (measured mIoU 0.70, 0.51, 0.45,
    # 0.52 over four training seeds, one shape class at IoU 0 in three); 600 steps reached 0.90 on a seed that
    # had collapsed at 300.
    from spiking_transformers.models.spike2former import SPIKE2FORMER_TINY_KWARGS, Spike2Former
    from spiking_transformers.tasks.segmentation import evaluate_segmenter, train_segmenter

    torch.manual_seed(0)
    opts = dict(radius=(0.15, 0.3), shapes=("disc", "triangle"))
    train, val = SyntheticShapes(256, 64, seed=10_000, **opts), SyntheticShapes(32, 64, seed=0, **opts)
    model = Spike2Former(**{**SPIKE2FORMER_TINY_KWARGS, "num_classes": 3})
    # Hungarian set loss with deep supervision (model.loss)
    losses = train_segmenter(model, train, steps=600, batch_size=8, lr=5e-3)
    assert sum(losses[-20:]) / 20 < 0.6 * sum(losses[:20]) / 20
    cm = evaluate_segmenter(model, val, 3)
    bg = torch.zeros_like(cm)
    bg[:, 0] = cm.sum(1)
    trivial = mean_iou(bg)
    assert trivial < 0.3
    miou = mean_iou(cm)
    assert miou > 0.45 and miou > trivial + 0.15, (miou, trivial)
    assert (iou_from_confusion(cm)[1:] > 0.2).all(), iou_from_confusion(cm)  # both shape classes found
