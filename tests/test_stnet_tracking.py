"""The STNet tracker around the network: boxes, metrics (hand-checked), cropping, post-processing, the synthetic
event tracking set and the FE108-style folder reader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiking_transformers.models.stnet import STNET_TINY_KWARGS, STNet
from spiking_transformers.tracking import (
    STNetTracker,
    SyntheticTrackingConfig,
    TrackerConfig,
    TrackingFolderError,
    center_error,
    cxywh2xywh,
    evaluate_tracking,
    get_subwindow,
    make_tracking_sequences,
    precision_curve,
    read_tracking_folder,
    rect_iou,
    score_size_for,
    success_curve,
    write_tracking_folder,
    xywh2cxywh,
    xyxy2cxywh,
)

SMALL = SyntheticTrackingConfig(height=48, width=64, size=12, frames=4, substeps=1)


def test_box_conversions_follow_the_video_analyst_convention():
    # upstream's own cases: xyxy (10, 20, 50, 40) <-> xywh (10, 20, 41, 21) <-> cxywh (30, 30, 41, 21)
    np.testing.assert_allclose(xyxy2cxywh([10, 20, 50, 40]), [30, 30, 41, 21])
    np.testing.assert_allclose(xywh2cxywh([10, 20, 41, 21]), [30, 30, 41, 21])
    np.testing.assert_allclose(cxywh2xywh([42.5, 67.5, 6, 16]), [40, 60, 6, 16])


def test_iou_and_center_error_by_hand():
    # two 10x10 squares overlapping in a 5x10 strip: 50 / (100 + 100 - 50) = 1/3
    assert rect_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(1 / 3)
    assert rect_iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0
    assert rect_iou([0, 0, 0, 10], [0, 0, 0, 10]) == 0.0  # empty boxes
    assert center_error([0, 0, 10, 10], [3, 4, 10, 10]) == pytest.approx(5.0)


def test_success_and_precision_by_hand():
    gt = np.array([[0, 0, 10, 10]] * 4, float)
    # IoUs 1, 1/3, 0, 0.81 (9x9 inside 10x10); centre errors 0, 5, 28.28, 0.5*sqrt(2)
    pred = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 10, 10], [0, 0, 9, 9]], float)
    s = success_curve(pred, gt)
    assert s[0] == 0.75  # IoU > 0: three frames
    assert s[6] == 0.75  # t = 0.30: 1, 1/3, 0.81
    assert s[7] == 0.5  # t = 0.35
    assert s[16] == 0.5 and s[17] == 0.25 and s[20] == 0.0  # t = 0.80 / 0.85 / 1.0 (strictly greater)
    # AUC = mean of the 21 points: counts of thresholds below each IoU: 1 -> 20, 1/3 -> 7 (0..0.30), 0.81 -> 17
    assert float(s.mean()) == pytest.approx((20 + 7 + 0 + 17) / 4 / 21)
    p = precision_curve(pred, gt, np.array([0.0, 1.0, 5.0, 20.0, 30.0]))
    np.testing.assert_allclose(p, [0.25, 0.5, 0.75, 0.75, 1.0])
    scores = evaluate_tracking([np.vstack([gt[:1], pred])], [np.vstack([gt[:1], gt])])  # first frame skipped
    assert scores.frames == 4 and scores.success_auc == pytest.approx((20 + 7 + 0 + 17) / 84)
    assert scores.precision_20 == 0.75
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        evaluate_tracking([pred], [gt[:3]])


def test_subwindow_inside_and_outside_the_frame():
    img = torch.arange(2 * 10 * 10, dtype=torch.float64).view(1, 2, 10, 10)
    avg = torch.tensor([-1.0, -2.0])
    # a 5-pixel window resampled to 5 pixels is an exact copy of the pixels around the centre
    crop = get_subwindow(img, np.array([4.0, 5.0]), 5, 5.0, avg)
    torch.testing.assert_close(crop, img[:, :, 3:8, 2:7])
    # far outside the frame: only the fill value
    far = get_subwindow(img, np.array([100.0, 100.0]), 4, 4.0, avg)
    torch.testing.assert_close(far[0, 0], torch.full((4, 4), -1.0, dtype=torch.float64))
    torch.testing.assert_close(far[0, 1], torch.full((4, 4), -2.0, dtype=torch.float64))


def test_score_size_and_postprocessing():
    assert score_size_for(127, 303) == 17 and score_size_for(59, 171) == 9
    torch.manual_seed(0)
    model = STNet(**STNET_TINY_KWARGS).double()
    tracker = STNetTracker(model, TrackerConfig(z_size=59, x_size=171))
    tracker.state.window = np.ones(81)
    n = 81
    box_wh = np.tile([85.0, 85.0, 30.0, 30.0], (n, 1))
    score = np.zeros(n)
    score[40] = 0.9
    best, penalty = tracker.postprocess_score(score, box_wh, np.array([30.0, 30.0]), 1.0)
    assert best == 40 and np.allclose(penalty, 1.0)  # no change of size or ratio: no penalty
    # a candidate twice as large is penalised: r_c = 1, s_c = 2 -> exp(-(2 - 1) * 0.04)
    box_wh[:, 2:] = 60.0
    _, penalty = tracker.postprocess_score(score, box_wh, np.array([30.0, 30.0]), 1.0)
    assert penalty[0] == pytest.approx(np.exp(-0.04))
    # box update: the crop centre (x_size // 2) maps to the previous position; lr = penalty * score * 0.52
    box_wh[:, 2:] = 30.0
    pos, sz = tracker.postprocess_box(40, score, box_wh, np.array([50.0, 40.0]), np.array([30.0, 30.0]), 1.0,
                                      np.ones(n))
    np.testing.assert_allclose(pos, [50.0, 40.0])
    np.testing.assert_allclose(sz, [30.0, 30.0])
    box_wh[40] = [95.0, 85.0, 40.0, 30.0]
    pos, sz = tracker.postprocess_box(40, score, box_wh, np.array([50.0, 40.0]), np.array([30.0, 30.0]), 2.0,
                                      np.ones(n))
    np.testing.assert_allclose(pos, [50.0 + 95 / 2 - 85 / 2, 40.0])
    np.testing.assert_allclose(sz, [30 * (1 - 0.9 * 0.52) + 20 * 0.9 * 0.52, 30 * (1 - 0.9 * 0.52) + 15 * 0.9 * 0.52])


def test_synthetic_sequences_have_events_on_the_object():
    seqs = make_tracking_sequences(2, SMALL)
    assert len(seqs) == 2 and seqs[0].pos.shape == (4, 5, 3, 48, 64) and seqs[0].pos.dtype == np.uint8
    assert not np.array_equal(seqs[0].boxes, seqs[1].boxes)
    again = make_tracking_sequences(1, SMALL)[0]
    assert np.array_equal(again.pos, seqs[0].pos)  # deterministic
    s = seqs[0]
    x, y, w, h = s.boxes[2].round().astype(int)
    inside = np.zeros((48, 64), bool)
    inside[y:y + h, x:x + w] = True
    active = (s.pos[2, :, 0] > 0) | (s.neg[2, :, 0] > 0)
    assert active[:, inside].mean() > 3 * active[:, ~inside].mean()  # the moving object dominates the events


def test_folder_roundtrip_and_errors(tmp_path):
    seqs = make_tracking_sequences(1, SMALL)
    write_tracking_folder(tmp_path, seqs)
    back = read_tracking_folder(tmp_path)
    assert len(back) == 1 and back[0].name == seqs[0].name
    assert np.array_equal(back[0].pos, seqs[0].pos) and np.array_equal(back[0].neg, seqs[0].neg)
    np.testing.assert_allclose(back[0].boxes, seqs[0].boxes, atol=1e-3)
    gt = tmp_path / seqs[0].name / "groundtruth_rect.txt"
    gt.write_text(gt.read_text() + "1,2,3\n")
    with pytest.raises(TrackingFolderError, match="expected 4 numbers"):
        read_tracking_folder(tmp_path)
    gt.write_text("1,2,3,4\n")
    with pytest.raises(TrackingFolderError, match="frames of event images"):
        read_tracking_folder(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_tracking_folder(tmp_path / "nope")


def test_tracker_runs_on_a_synthetic_sequence():
    torch.manual_seed(0)
    model = STNet(**STNET_TINY_KWARGS)
    seq = make_tracking_sequences(1, SyntheticTrackingConfig(frames=3, substeps=1))[0]
    tracker = STNetTracker(model, TrackerConfig(z_size=59, x_size=171))
    boxes = tracker.track_sequence(list(seq.pos), list(seq.neg), seq.boxes[0])
    assert boxes.shape == (3, 4) and np.isfinite(boxes).all()
    np.testing.assert_allclose(boxes[0], seq.boxes[0])
    assert (boxes[1:, 2:] >= 10).all()  # min_w / min_h
    assert tracker.state.snn_state is not None and len(tracker.state.snn_state) == 6
    with pytest.raises(ValueError, match="does not fit"):
        STNetTracker(model, TrackerConfig())
    with pytest.raises(RuntimeError, match="init"):
        STNetTracker(model, TrackerConfig(z_size=59, x_size=171)).update(seq.pos[0], seq.neg[0])


def test_densebox_target_by_hand():
    from spiking_transformers.tracking.losses import densebox_target

    # x_size 171, score 9, stride 8: offset (170 - 64) // 2 = 53, cells at 53, 61, ..., 117.
    gt = torch.tensor([[60.0, 50.0, 80.0, 70.0]])  # cells strictly inside: x 61, 69, 77; y 53, 61, 69
    cls, ctr, box = densebox_target(gt, 171, 9, 8)
    grid = cls[0, :, 0].view(9, 9)
    assert grid.sum() == 9 and grid[0:3, 1:4].all()
    # centre-ness of cell (x 69, y 61): l 9, r 11, t 11, b 9 -> sqrt(9/11 * 9/11)
    assert ctr[0, 1 * 9 + 2, 0].item() == pytest.approx(9 / 11, rel=1e-5)
    assert ctr[0, 0, 0].item() == 0.0 and (box[0, 0] == 0).all()
    torch.testing.assert_close(box[0, 1 * 9 + 2], gt[0])


def test_siamfcpp_losses_by_hand():
    from spiking_transformers.tracking.losses import centerness_bce, iou_loss, sigmoid_ce_retina

    label = torch.tensor([[[1.0], [0.0]]])
    logits = torch.zeros(1, 2, 1)
    # alpha 0.5, gamma 0: -(0.5 log 0.5 + 0.5 log 0.5) / 1 positive
    assert sigmoid_ce_retina(logits, label).item() == pytest.approx(np.log(2))
    # a perfect centre-ness prediction costs 0 (the target entropy is subtracted); cells with target 0 are ignored
    target = torch.tensor([[[0.3], [0.0]]])
    perfect = torch.logit(target.clamp(min=1e-6))
    assert centerness_bce(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    # IoU loss: same box -> 0; a box of half the area inside it -> log 2 (+1 pixel widths: 10x10 vs 10x5)
    gt = torch.tensor([[[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 0.0, 0.0]]])
    assert iou_loss(gt, gt, label).item() == pytest.approx(0.0, abs=1e-6)
    half = torch.tensor([[[0.0, 0.0, 9.0, 4.0], [5.0, 5.0, 6.0, 6.0]]])
    assert iou_loss(half, gt, label).item() == pytest.approx(np.log(2))


def test_training_pairs_put_the_target_where_the_target_says():
    from spiking_transformers.tracking.train import sample_pairs

    cfg = TrackerConfig(z_size=59, x_size=171)
    seqs = make_tracking_sequences(1, SyntheticTrackingConfig(frames=3, substeps=1))
    data = sample_pairs(seqs, 3, cfg, np.random.default_rng(0))
    assert data["z_pos"].shape == (5, 3, 3, 59, 59) and data["x_neg"].shape == (5, 3, 3, 171, 171)
    x0, y0, x1, y1 = data["gt"][0].tolist()
    # the crop scale makes the 20-pixel object 59 / sqrt(40 * 40) * 20 ~ 29.5 crop pixels wide
    assert x1 - x0 + 1 == pytest.approx(59 / 40 * 20, rel=1e-6)
    # the events of the search crop concentrate inside the target box
    ev = (data["x_pos"][:, 0] + data["x_neg"][:, 0]).sum(dim=(0, 1))
    inside = ev[int(y0) + 1:int(y1), int(x0) + 1:int(x1)].mean()
    assert inside > 3 * ev.mean()


@pytest.mark.slow
def test_track_command_trains_and_beats_holding_the_first_box(capsys):
    import json

    from spiking_transformers.cli import main

    rc = main(["track", "--train-steps", "20", "--train-sequences", "8", "--sequences", "4", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stnet"]["success_auc"] > out["hold_first_box"]["success_auc"]


def test_track_command_runs_and_reports(capsys, tmp_path):
    import json

    from spiking_transformers.cli import main

    png = tmp_path / "t.png"
    rc = main(["track", "--sequences", "1", "--frames", "3", "--json", "--png", str(png)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stnet"]["frames"] == 2 and 0 <= out["stnet"]["success_auc"] <= 1
    assert png.exists() and png.stat().st_size > 0
    assert main(["track", "--data", str(tmp_path / "missing")]) == 2
    assert "no such tracking data folder" in capsys.readouterr().err
