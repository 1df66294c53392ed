"""Pixel-level anomaly-map metrics (train/metrics/pixel_metrics.py): AUROC and AUPRO against scikit-learn
and a deliberately naive reference, hand-computed cases, the field of view, Dice/IoU and the
Dice-maximising threshold, and the image-level (paired) bootstrap."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.metrics.pixel_metrics import (
    BOOTSTRAP_LEVELS,
    aupro,
    best_threshold,
    check_n_boot,
    dice_iou,
    paired_difference,
    percentile_interval,
    pixel_auroc,
    pixel_report,
)

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

EIGHT = np.ones((3, 3), dtype=bool)


def naive_aupro(maps, masks, fovs, max_fpr):
    """AUPRO straight from the definition: one pass per distinct threshold, regions labelled by
    scipy, the curve built point by point and integrated segment by segment."""
    regions = []
    for i, (mask, fov) in enumerate(zip(masks, fovs)):
        labels, n = ndimage.label(mask & fov, structure=EIGHT)
        regions += [(i, labels == c) for c in range(1, n + 1)]
    negatives = [~mask & fov for mask, fov in zip(masks, fovs)]
    n_neg = sum(int(neg.sum()) for neg in negatives)
    pooled = np.concatenate([m[f] for m, f in zip(maps, fovs)])
    curve = [(0.0, 0.0)]
    for t in sorted(set(pooled.tolist()), reverse=True):
        above = [m >= t for m in maps]
        fpr = sum(int((a & neg).sum()) for a, neg in zip(above, negatives)) / n_neg
        pro = np.mean([(above[i] & r).sum() / r.sum() for i, r in regions])
        curve.append((fpr, pro))
    area = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if x0 >= max_fpr:
            break
        if x1 > max_fpr:
            y1 = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            x1 = max_fpr
        area += (x1 - x0) * (y0 + y1) / 2
    return area / max_fpr


def disc(shape, radius_fraction=0.45):
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= (radius_fraction * min(h, w)) ** 2


def random_case(seed, shapes=((18, 22), (24, 20), (20, 26), (16, 16)), ties=False, signal=1.5):
    """Random maps, masks of several blobs (some cut by the fov disc), one normal image."""
    rng = np.random.default_rng(seed)
    maps, masks, fovs = [], [], []
    for k, (h, w) in enumerate(shapes):
        mask = np.zeros((h, w), dtype=bool)
        if k != len(shapes) - 1:  # the last image is normal
            for _ in range(int(rng.integers(2, 6))):
                cy, cx, r = (
                    int(rng.integers(0, h)),
                    int(rng.integers(0, w)),
                    int(rng.integers(0, 4)),
                )
                mask[max(cy - r, 0) : cy + r + 1, max(cx - r, 0) : cx + r + 1] = True
            mask[h // 2, w // 2] = True  # at least one region inside the fov
        value = rng.normal(size=(h, w)) + signal * mask
        maps.append(np.round(value, 1) if ties else value)
        masks.append(mask)
        fovs.append(disc((h, w)))
    return maps, masks, fovs


def blob_images(n, seed, size=32, signal=2.0):
    """``n`` images with one or two square lesions each and noisy maps."""
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for _ in range(n):
        mask = np.zeros((size, size), dtype=bool)
        for _ in range(int(rng.integers(1, 3))):
            y, x, r = (int(v) for v in rng.integers([2, 2, 1], [size - 6, size - 6, 4]))
            mask[y : y + r + 2, x : x + r + 2] = True
        maps.append(rng.normal(size=mask.shape) + signal * mask)
        masks.append(mask)
    return maps, masks


# ---- perfect and inverted maps


def test_a_map_equal_to_the_truth_is_perfect_and_its_inverse_scores_zero():
    _, masks, fovs = random_case(0)
    truth = [m.astype(float) for m in masks]
    assert pixel_auroc(truth, masks, fovs) == 1.0
    assert aupro(truth, masks, fovs) == pytest.approx(1.0, abs=1e-12)
    assert dice_iou(truth, masks, 0.5, fovs) == (1.0, 1.0)
    inverted = [1.0 - t for t in truth]
    assert pixel_auroc(inverted, masks, fovs) == 0.0
    assert aupro(inverted, masks, fovs) == pytest.approx(0.0, abs=1e-12)
    assert dice_iou(inverted, masks, 0.5, fovs) == (0.0, 0.0)


# ---- AUPRO against the naive reference and by hand


@pytest.mark.parametrize(
    "seed, ties, max_fpr", [(0, False, 0.3), (1, True, 0.3), (2, False, 0.05), (3, True, 1.0)]
)
def test_aupro_equals_the_naive_reference(seed, ties, max_fpr):
    maps, masks, fovs = random_case(seed, ties=ties)
    expected = naive_aupro(maps, masks, fovs, max_fpr)
    assert 0.0 < expected < 1.0
    assert aupro(maps, masks, fovs, max_fpr=max_fpr) == pytest.approx(expected, abs=1e-9)


def test_aupro_by_hand():
    # One row of 8 pixels: region A = columns 0-1 (2 pixels), region B = column 5 (1 pixel);
    # the 5 normal pixels are columns 2, 3, 4, 6, 7.
    mask = np.array([[1, 1, 0, 0, 0, 1, 0, 0]], dtype=bool)
    value = np.array([[0.9, 0.3, 0.8, 0.1, 0.2, 0.7, 0.4, 0.0]])
    # Thresholds from the top, (FPR, PRO = mean of A's and B's covered fractions):
    #   start (0, 0); t=0.9: (0, (1/2 + 0)/2 = 0.25); t=0.8: (1/5, 0.25);
    #   t=0.7: (0.2, (1/2 + 1)/2 = 0.75); t=0.4: (0.4, 0.75); t=0.3: (0.4, 1); ...
    # max_fpr 0.3: 0.2 * 0.25 + 0.1 * 0.75 = 0.125, / 0.3 = 5/12.
    assert aupro([value], [mask], max_fpr=0.3) == pytest.approx(5 / 12, abs=1e-12)
    # max_fpr 0.5: 0.05 + 0.2 * 0.75 + 0.1 * 1 = 0.3, / 0.5 = 0.6.
    assert aupro([value], [mask], max_fpr=0.5) == pytest.approx(0.6, abs=1e-12)
    # A tie: the normal pixel at column 2 scores 0.7, like B. The curve then goes straight from
    # (0, 0.25) to (0.2, 0.75); at max_fpr 0.1 it is interpolated to 0.5, the area is
    # 0.1 * (0.25 + 0.5) / 2 = 0.0375, / 0.1 = 0.375.
    tied = value.copy()
    tied[0, 2] = 0.7
    assert aupro([tied], [mask], max_fpr=0.1) == pytest.approx(0.375, abs=1e-12)


def test_regions_are_eight_connected():
    # (0, 0), (0, 1) and (1, 2) form one region by their diagonal contact (4-connectivity would
    # make two: sizes 2 and 1). Only (1, 2) scores high: PRO at FPR 0 is 1/3 (it would be 1/2).
    mask = np.zeros((3, 4), dtype=bool)
    mask[0, 0] = mask[0, 1] = mask[1, 2] = True
    value = np.zeros((3, 4))
    value[1, 2] = 1.0
    # curve (0, 0), (0, 1/3), (1, 1): mean PRO over [0, 0.3] is 1/3 + (2/3) * 0.15 = 0.4333...
    assert aupro([value], [mask]) == pytest.approx(1 / 3 + 0.1, abs=1e-12)


def test_aupro_counts_regions_not_pixels():
    # One big (20 x 20) and one small (2 x 2) lesion on 100 x 100. Map "both": both lesions
    # found, but 200 normal pixels score as high. Map "big": only the big lesion found, no
    # false positive, the small one tied with the background.
    mask = np.zeros((100, 100), dtype=bool)
    mask[10:30, 10:30] = True
    mask[70:72, 70:72] = True
    both = mask.astype(float)
    both[50:52, :] = 1.0  # 200 false positives
    big = np.zeros((100, 100))
    big[10:30, 10:30] = 1.0
    assert pixel_auroc([both], [mask]) < pixel_auroc([big], [mask])
    assert aupro([both], [mask]) > aupro([big], [mask])
    # big's curve: (0, 0), (0, 0.5), (1, 1): mean over [0, 0.3] is 0.5 + 0.5 * 0.15
    assert aupro([big], [mask]) == pytest.approx(0.575, abs=1e-12)


# ---- the field of view, and AUROC against scikit-learn


def test_pixels_outside_the_fov_change_nothing():
    maps, masks, fovs = random_case(4)
    wild_maps, wild_masks = [], []
    for k, (value, mask, fov) in enumerate(zip(maps, masks, fovs)):
        outside = np.flatnonzero(~fov.ravel())
        wild = value.copy().ravel()
        wild[outside] = np.array([np.nan, 1e12, -1e12, np.inf])[np.arange(outside.size) % 4]
        wild_maps.append(wild.reshape(value.shape))
        wild_masks.append(np.where(fov, mask, k % 2 == 0))  # all lesion or all normal outside
    threshold = best_threshold(maps, masks, fovs)
    assert pixel_auroc(wild_maps, wild_masks, fovs) == pixel_auroc(maps, masks, fovs)
    assert aupro(wild_maps, wild_masks, fovs) == aupro(maps, masks, fovs)
    assert dice_iou(wild_maps, wild_masks, threshold, fovs) == dice_iou(
        maps, masks, threshold, fovs
    )
    assert best_threshold(wild_maps, wild_masks, fovs) == threshold
    wild = pixel_report(wild_maps, wild_masks, threshold, fovs, n_boot=40, seed=3)
    assert wild == pixel_report(maps, masks, threshold, fovs, n_boot=40, seed=3)
    # and they do count without the fov
    assert pixel_auroc(maps, wild_masks) != pixel_auroc(maps, masks, fovs)


def test_no_fov_is_the_whole_image():
    maps, masks, _ = random_case(5)
    whole = [np.ones(m.shape, dtype=bool) for m in maps]
    partial = [None, whole[1], None, whole[3]]
    assert aupro(maps, masks) == aupro(maps, masks, whole) == aupro(maps, masks, partial)
    assert pixel_auroc(maps, masks) == pixel_auroc(maps, masks, partial)


def test_pixel_auroc_equals_scikit_learn_on_the_pooled_in_fov_pixels():
    for seed, ties in ((6, False), (7, True)):
        maps, masks, fovs = random_case(seed, ties=ties)
        scores = np.concatenate([m[f] for m, f in zip(maps, fovs)])
        labels = np.concatenate([k[f] for k, f in zip(masks, fovs)])
        expected = roc_auc_score(labels, scores)
        assert 0.5 < expected < 1.0
        assert pixel_auroc(maps, masks, fovs) == pytest.approx(expected, abs=1e-15)


# ---- Dice, IoU and the best threshold


def test_dice_iou_by_hand():
    mask = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)
    value = np.array([[0.9, 0.2, 0.8], [0.1, 0.5, 0.3]])
    # >= 0.5: (0, 0) hit, (0, 2) and (1, 1) (exactly at the threshold) false, (0, 1) missed:
    # TP 1, FP 2, FN 1 -> Dice 2 / 5, IoU 1 / 4
    assert dice_iou([value], [mask], 0.5) == pytest.approx((0.4, 0.25), abs=1e-15)
    # a normal image adds its false positive: FP 3 -> Dice 2 / 6, IoU 1 / 5
    normal, normal_mask = np.array([[0.7, 0.1]]), np.zeros((1, 2), dtype=bool)
    both = dice_iou([value, normal], [mask, normal_mask], 0.5)
    assert both == pytest.approx((1 / 3, 0.2), abs=1e-15)
    # the fov removes (0, 2) and the normal image's false positive: TP 1, FP 1, FN 1
    fovs = [np.array([[1, 1, 0], [1, 1, 1]], dtype=bool), np.array([[0, 1]], dtype=bool)]
    assert dice_iou([value, normal], [mask, normal_mask], 0.5, fovs) == pytest.approx(
        (0.5, 1 / 3), abs=1e-15
    )
    # nothing predicted and nothing to find: both 1
    assert dice_iou([normal], [normal_mask], 0.9) == (1.0, 1.0)


def test_best_threshold_finds_the_separating_value_and_breaks_ties_low():
    mask = np.array([[1, 1, 1, 0, 0, 0]], dtype=bool)
    value = np.array([[0.9, 0.8, 0.7, 0.6, 0.2, 0.1]])
    assert best_threshold([value], [mask]) == 0.7
    assert dice_iou([value], [mask], 0.7) == (1.0, 1.0)
    # labels by score P, N, N, P: Dice 2/3 at 0.9, 1/2 at 0.8, 2/5 at 0.7, 2/3 at 0.6
    mask = np.array([[1, 0, 0, 1]], dtype=bool)
    value = np.array([[0.9, 0.8, 0.7, 0.6]])
    assert dice_iou([value], [mask], 0.9)[0] == dice_iou([value], [mask], 0.6)[0] == 2 / 3
    assert best_threshold([value], [mask]) == 0.6


@pytest.mark.parametrize("seed", [8, 9])
def test_best_threshold_equals_brute_force(seed):
    maps, masks, fovs = random_case(seed, ties=True, signal=1.0)
    candidates = sorted(set(np.concatenate([m[f] for m, f in zip(maps, fovs)]).tolist()))
    dice = [dice_iou(maps, masks, t, fovs)[0] for t in candidates]
    expected = candidates[int(np.argmax(dice))]  # argmax takes the first: the lowest
    assert best_threshold(maps, masks, fovs) == expected
    assert dice_iou(maps, masks, expected, fovs)[0] == max(dice)


# ---- the bootstrap


def test_report_intervals_hold_the_estimates_and_are_seeded():
    maps, masks = blob_images(12, seed=10)
    threshold = best_threshold(maps, masks)
    report = pixel_report(maps, masks, threshold, n_boot=200, seed=1)
    assert report["auroc"] == pixel_auroc(maps, masks)
    assert report["aupro"] == aupro(maps, masks)
    assert (report["dice"], report["iou"]) == dice_iou(maps, masks, threshold)
    for name in ("auroc", "aupro", "dice", "iou"):
        assert report[f"{name}_ci_low"] < report[name] < report[f"{name}_ci_high"], name
    assert report["n_boot_used"] == {"auroc": 200, "aupro": 200, "dice": 200, "iou": 200}
    expected = {"n_images": 12, "n_boot": 200, "seed": 1, "threshold": threshold, "max_fpr": 0.3}
    assert {k: report[k] for k in expected} == expected
    assert pixel_report(maps, masks, threshold, n_boot=200, seed=1) == report
    given = pixel_report(maps, masks, threshold, n_boot=200, seed=np.random.default_rng(1))
    assert given == {**report, "seed": None}
    other = pixel_report(maps, masks, threshold, n_boot=200, seed=2)
    for name in ("auroc", "aupro", "dice", "iou"):
        assert other[name] == report[name]
        assert other[f"{name}_ci_low"] != report[f"{name}_ci_low"], name


def test_report_intervals_equal_a_naive_bootstrap_over_resampled_image_lists():
    # rounded maps: few distinct values, so the bootstrap's AUROC and AUPRO are exact too
    maps, masks = blob_images(6, seed=20, size=24)
    maps = [np.round(m, 1) for m in maps]
    report = pixel_report(maps, masks, 1.0, n_boot=60, seed=9, max_fpr=0.2)
    drawn = np.random.default_rng(9).integers(0, 6, size=(60, 6))  # the documented draws
    samples = {name: [] for name in ("auroc", "aupro", "dice", "iou")}
    for row in drawn:
        m, k = [maps[i] for i in row], [masks[i] for i in row]
        samples["auroc"].append(pixel_auroc(m, k))
        samples["aupro"].append(aupro(m, k, max_fpr=0.2))
        dice, iou = dice_iou(m, k, 1.0)
        samples["dice"].append(dice)
        samples["iou"].append(iou)
    for name, values in samples.items():
        low, high = np.percentile(values, [2.5, 97.5])
        assert report[f"{name}_ci_low"] == pytest.approx(low, abs=1e-12), name
        assert report[f"{name}_ci_high"] == pytest.approx(high, abs=1e-12), name


def test_report_intervals_narrow_with_more_images():
    few, many = blob_images(8, seed=11), blob_images(48, seed=12)
    width = {}
    for key, (maps, masks) in (("few", few), ("many", many)):
        report = pixel_report(maps, masks, 1.0, n_boot=300, seed=0)
        width[key] = {n: report[f"{n}_ci_high"] - report[f"{n}_ci_low"] for n in ("auroc", "aupro")}
        width[key]["dice"] = report["dice_ci_high"] - report["dice_ci_low"]
    for name in ("auroc", "aupro", "dice"):
        assert width["many"][name] < 0.6 * width["few"][name], name


@pytest.mark.parametrize("size, decimals, tolerance", [(30, 1, 1e-12), (80, None, 1e-3)])
def test_one_image_resampled_is_the_point_estimate(size, decimals, tolerance):
    # rounded: few distinct values, many ties, the bootstrap's levels exact; 6400 distinct
    # values: quantised to 4096 levels
    maps, masks = blob_images(1, seed=13, size=size)
    if decimals is not None:
        maps = [np.round(m, decimals) for m in maps]
    report = pixel_report(maps, masks, 0.8, n_boot=5, seed=0)
    for name in ("auroc", "aupro", "dice", "iou"):
        assert report[f"{name}_ci_low"] == pytest.approx(report[name], abs=tolerance), name
        assert report[f"{name}_ci_high"] == pytest.approx(report[name], abs=tolerance), name


def test_resamples_without_a_lesion_are_skipped_for_auroc_and_aupro_only():
    maps, masks = blob_images(5, seed=14)
    for k in range(1, 5):
        masks[k] = np.zeros_like(masks[k])  # only image 0 has lesions
    report = pixel_report(maps, masks, 1.0, n_boot=200, seed=7)
    drawn = np.random.default_rng(7).integers(0, 5, size=(200, 5))
    with_lesion = int(np.sum((drawn == 0).any(axis=1)))
    assert 100 < with_lesion < 200
    assert report["n_boot_used"] == {
        "auroc": with_lesion,
        "aupro": with_lesion,
        "dice": 200,
        "iou": 200,
    }


def test_paired_difference_of_a_map_with_itself_is_exactly_zero():
    maps, masks = blob_images(10, seed=15)
    for metric in ("auroc", "aupro"):
        same = paired_difference(maps, [m.copy() for m in maps], masks, metric, n_boot=200)
        assert same["difference"] == same["ci_low"] == same["ci_high"] == 0.0
        assert (same["n_boot"], same["n_boot_used"], same["metric"]) == (200, 200, metric)


def test_paired_difference_finds_the_better_map():
    rng = np.random.default_rng(16)
    _, masks = blob_images(16, seed=16)
    better = [rng.normal(size=m.shape) + 2.0 * m for m in masks]
    worse = [rng.normal(size=m.shape) + 0.7 * m for m in masks]
    for metric, score in (("auroc", pixel_auroc), ("aupro", aupro)):
        result = paired_difference(better, worse, masks, metric, n_boot=200, seed=4)
        assert result["difference"] == score(better, masks) - score(worse, masks)
        assert 0.0 < result["ci_low"] < result["difference"] < result["ci_high"], metric
        swapped = paired_difference(worse, better, masks, metric, n_boot=200, seed=4)
        assert swapped["difference"] == -result["difference"]
        assert swapped["ci_high"] == pytest.approx(-result["ci_low"], abs=1e-12)


def test_pixel_report_defaults_are_1000_resamples_from_seed_0():
    maps, masks, fovs = random_case(21)
    default = pixel_report(maps, masks, 0.5, fovs)
    assert (default["n_boot"], default["seed"], default["max_fpr"]) == (1000, 0, 0.3)
    explicit = pixel_report(maps, masks, 0.5, fovs, n_boot=1000, seed=0, max_fpr=0.3)
    assert default == explicit


def test_paired_difference_defaults_fovs_and_messages():
    rng = np.random.default_rng(20)
    maps, masks, fovs = random_case(20)
    other = [m + rng.normal(size=m.shape) for m in maps]
    # defaults: 1000 resamples drawn from seed 0, recorded as such
    default = paired_difference(maps, other, masks, "auroc")
    assert (default["n_boot"], default["seed"]) == (1000, 0)
    assert default == paired_difference(maps, other, masks, "auroc", n_boot=1000, seed=0)
    assert paired_difference(maps, other, masks, "auroc", n_boot=20, seed=3)["seed"] == 3
    drawn = paired_difference(maps, other, masks, "auroc", n_boot=20, seed=rng)
    assert drawn["seed"] is None
    # each kind is scored inside the fovs: the difference is that of the fov-restricted metrics
    for metric, score in (("auroc", pixel_auroc), ("aupro", aupro)):
        inside = paired_difference(maps, other, masks, metric, fovs, n_boot=20)
        assert inside["difference"] == score(maps, masks, fovs) - score(other, masks, fovs)
        assert (
            inside["difference"]
            != paired_difference(maps, other, masks, metric, n_boot=20)["difference"]
        )
    with pytest.raises(LesionPasteError, match=r"^no images: maps_a is empty$"):
        paired_difference([], [], [], "auroc")
    with pytest.raises(LesionPasteError, match=r"^4 maps_a but 3 masks"):
        paired_difference(maps, other, masks[:3], "auroc")
    with pytest.raises(LesionPasteError, match=r"^4 maps_a but 2 fovs"):
        paired_difference(maps, other, masks, "auroc", fovs[:2])
    with pytest.raises(LesionPasteError, match=r"^metric must be one of auroc, aupro, not 'dice'$"):
        paired_difference(maps, other, masks, "dice")


# ---- refused inputs


def test_shape_mismatches_are_refused():
    maps, masks, fovs = random_case(17)
    with pytest.raises(LesionPasteError, match="image 1: the mask's shape"):
        pixel_auroc(maps, [masks[0], masks[1][:, :-1], masks[2], masks[3]])
    with pytest.raises(LesionPasteError, match="image 2: the fov's shape"):
        aupro(maps, masks, [fovs[0], fovs[1], fovs[3], fovs[3]])
    with pytest.raises(LesionPasteError, match="4 maps but 3 masks"):
        dice_iou(maps, masks[:3], 0.5)
    with pytest.raises(LesionPasteError, match="4 maps_a but 3 maps_b"):
        paired_difference(maps, maps[:3], masks, "auroc")
    with pytest.raises(LesionPasteError, match="image 0: the map has shape"):
        best_threshold([maps[0][None]], [masks[0][None]])


def test_a_percentile_interval_skips_undefined_resamples_and_counts_the_used_ones():
    low, high, used = percentile_interval([float("nan"), float("nan")])
    assert np.isnan(low) and np.isnan(high) and used == 0
    assert percentile_interval([0.5, float("nan")]) == (0.5, 0.5, 1)  # one is enough
    low, high, used = percentile_interval(np.arange(41.0))  # 2.5th and 97.5th: 1 and 39
    assert (low, high, used) == (1.0, 39.0, 41)


def test_n_boot_is_a_positive_whole_number():
    assert check_n_boot(1) == 1 and check_n_boot(3.0) == 3 and isinstance(check_n_boot(3.0), int)
    for bad in (0, -2, 2.5):
        with pytest.raises(LesionPasteError) as caught:
            check_n_boot(bad)
        assert str(caught.value) == f"n_boot must be a positive whole number, not {bad}"


def test_dice_and_iou_on_one_pixel_and_float32_maps_against_a_float64_threshold():
    lesion, normal = np.array([[True, False]]), np.array([[False, False]])
    # one false positive and nothing else: Dice and IoU are 0; nothing at all: both are 1
    assert dice_iou([np.array([[0.9, 0.1]])], [normal], 0.5) == (0.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the empty case is not a 0/0 warning
        assert dice_iou([np.array([[0.2, 0.1]])], [normal], 0.5) == (1.0, 1.0)
    # a float32 map value just below a float64 threshold is below it (compared in float64,
    # not with the threshold rounded to the same float32)
    value = np.float32(0.1)
    threshold = float(value) + 1e-10
    assert np.float32(threshold) == value
    assert dice_iou([np.array([[value, 0.0]], np.float32)], [lesion], threshold) == (0.0, 0.0)
    assert dice_iou([np.array([[value, 0.0]], np.float32)], [lesion], float(value)) == (1.0, 1.0)


def test_threshold_refusals_are_worded_as_documented():
    maps, masks, fovs = random_case(23)
    with pytest.raises(LesionPasteError) as caught:
        pixel_report(maps, masks, float("nan"), fovs, n_boot=5)
    assert str(caught.value) == "the threshold is NaN"
    with pytest.raises(LesionPasteError) as caught:
        best_threshold(maps, [np.zeros_like(m) for m in masks], fovs)
    assert str(caught.value) == "best_threshold needs lesion pixels inside the fovs; none"


def test_the_bootstrap_levels_are_exact_up_to_4096_distinct_values():
    """One image: every resample is the image itself, so an exact bootstrap gives the point
    value as both bounds. 4096 distinct values (one of them on 4097 pixels) are still exact;
    rank bins would pair neighbouring values and move both metrics."""
    assert BOOTSTRAP_LEVELS == 4096
    values = np.r_[np.zeros(4097), np.arange(1.0, 4096.0)]  # 8192 pixels, 4096 distinct
    rng = np.random.default_rng(22)
    order = rng.permutation(values.size)
    value = values[order].reshape(64, 128)
    mask = (rng.random(values.size) < 0.5).reshape(64, 128) & (value > 0)
    report = pixel_report([value], [mask], 0.5, n_boot=5)
    for name in ("auroc", "aupro"):
        for bound in ("ci_low", "ci_high"):
            assert report[f"{name}_{bound}"] == pytest.approx(report[name], abs=1e-12), name
    # one more distinct value: rank bins, within the documented approximation
    value = np.where(value == 0, 0.0, value)
    value.flat[np.flatnonzero(value == 0)[0]] = -1.0
    binned = pixel_report([value], [mask], 0.5, n_boot=5)
    for name in ("auroc", "aupro"):
        assert 1e-9 < abs(binned[f"{name}_ci_low"] - binned[name]) < 1e-3, name


def test_a_resample_with_one_pixel_of_a_kind_counts_and_undefined_ones_pass_silently():
    # one image of one normal and one lesion pixel: every resample is defined
    report = pixel_report([np.array([[0.2, 0.9]])], [np.array([[False, True]])], 0.5, n_boot=7)
    for name in ("auroc", "aupro"):
        assert report[name] == report[f"{name}_ci_low"] == report[f"{name}_ci_high"] == 1.0
        assert report["n_boot_used"][name] == 7
    # resamples without a lesion are NaN and skipped, without a numpy warning
    maps, masks = blob_images(5, seed=14)
    for k in range(1, 5):
        masks[k] = np.zeros_like(masks[k])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = pixel_report(maps, masks, 1.0, n_boot=50, seed=3)
    assert report["n_boot_used"]["auroc"] < 50


def test_inputs_without_lesions_or_normals_are_refused():
    maps, masks, fovs = random_case(18)
    empty = [np.zeros_like(m) for m in masks]
    inside = sum(int(f.sum()) for f in fovs)
    with pytest.raises(LesionPasteError) as caught:
        pixel_auroc(maps, empty, fovs)
    assert str(caught.value) == (
        "pixel AUROC needs lesion and normal pixels inside the fovs, but there are 0 lesion "
        f"and {inside} normal ones"
    )
    for call in (
        lambda: pixel_auroc(maps, empty, fovs),
        lambda: aupro(maps, empty, fovs),
        lambda: best_threshold(maps, empty, fovs),
        lambda: pixel_report(maps, empty, 0.5, fovs, n_boot=10),
        lambda: paired_difference(maps, maps, empty, "aupro", fovs, n_boot=10),
    ):
        with pytest.raises(LesionPasteError, match="lesion"):
            call()
    corner = [np.zeros_like(m) for m in masks]
    corner[0][0, 0] = True  # a lesion outside the fov disc only
    with pytest.raises(LesionPasteError) as caught:
        aupro(maps, corner, fovs)
    assert str(caught.value) == "AUPRO needs at least one lesion region inside the fovs; none"
    full = [np.ones_like(m) for m in masks]
    with pytest.raises(LesionPasteError) as caught:
        pixel_auroc(maps, full, fovs)
    assert str(caught.value) == (
        "pixel AUROC needs lesion and normal pixels inside the fovs, but there are "
        f"{inside} lesion and 0 normal ones"
    )
    with pytest.raises(LesionPasteError) as caught:
        aupro(maps, full, fovs)
    assert str(caught.value) == "AUPRO needs normal pixels inside the fovs; all are lesion"
    with pytest.raises(LesionPasteError, match="normal"):
        pixel_auroc(maps, full, fovs)


def test_bad_arguments_are_refused():
    maps, masks, fovs = random_case(19)
    for bad in (0.0, 1.5):
        with pytest.raises(LesionPasteError, match="max_fpr"):
            aupro(maps, masks, fovs, max_fpr=bad)
    with pytest.raises(LesionPasteError, match="metric"):
        paired_difference(maps, maps, masks, "dice")
    with pytest.raises(LesionPasteError, match="n_boot"):
        pixel_report(maps, masks, 0.5, fovs, n_boot=0)
    with pytest.raises(LesionPasteError, match="no images"):
        pixel_auroc([], [])
    nan = [m.copy() for m in maps]
    nan[2][10, 13] = np.nan  # inside the fov
    with pytest.raises(LesionPasteError, match="image 2: the map holds NaN"):
        aupro(nan, masks, fovs)
