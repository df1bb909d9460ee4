"""core.learn.patches: random P x P patches at native resolution, foreground oversampling, padding, the epoch."""

import math

import pytest
import torch
import torch.nn.functional as F

from unettui.core.learn.patches import PatchBatch, PatchSampler, default_patches_per_epoch


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blob_image(h: int, w: int, box: tuple[int, int, int, int] | None, value: float = 1.0, seed: int = 0):
    """A random [3, h, w] image and its [1, h, w] mask with class ``value`` on rows box[0]:box[1], cols box[2]:box[3]."""
    image = torch.rand(3, h, w, generator=gen(seed))
    mask = torch.zeros(1, h, w)
    if box is not None:
        mask[:, box[0]:box[1], box[2]:box[3]] = value
    return image, mask


def framed(image, mask, p, ignore_index=-1):
    """The image, its mask and its valid map framed by p pixels of padding on every side, built by hand."""
    _, h, w = image.shape
    return (F.pad(image, (p, p, p, p), value=0.0), F.pad(mask, (p, p, p, p), value=float(ignore_index)),
            F.pad(torch.ones(1, h, w), (p, p, p, p), value=0.0).bool())


def expected_crop(frames, top, left, p):
    """The patch at (top, left) cut from ``framed``'s frames: what the sampler must return (x, y, valid)."""
    window = (slice(None), slice(top + p, top + 2 * p), slice(left + p, left + 2 * p))
    return tuple(t[window] for t in frames)


def valid(batch: PatchBatch, ignore_index: int = -1) -> torch.Tensor:
    """Where a batch's patches are image (not padding): its ``y`` holds ``ignore_index`` exactly on padding."""
    return batch.y != ignore_index


def epoch(s: PatchSampler) -> PatchBatch:
    """One whole epoch of ``s`` as one batch."""
    return s.crop(s.plan())


def has_foreground(batch: PatchBatch) -> torch.Tensor:
    return ((batch.y > 0) & valid(batch)).flatten(1).any(dim=1)


def natural_rate(masks, p):
    """The share of random patches (image by area, uniform position) that contain foreground, counted exactly over
    every position of images at least p x p."""
    total = sum(m.shape[-1] * m.shape[-2] for m in masks)
    rate = 0.0
    for m in masks:
        contains = F.max_pool2d((m > 0).float()[None], p, stride=1)  # [1, 1, H-p+1, W-p+1]
        rate += (m.shape[-1] * m.shape[-2] / total) * float(contains.mean())
    return rate


# --------------------------------------------------------------------------- shapes, the epoch


def test_shapes_dtypes_and_slices_of_a_plan():
    images = [torch.rand(3, 100, 120), torch.rand(3, 64, 64)]
    masks = [(torch.rand(1, 100, 120) < 0.1).float(), torch.zeros(1, 64, 64)]
    s = PatchSampler(images, masks, 32, generator=gen())
    assert s.patches_per_epoch == math.ceil((100 * 120 + 64 * 64) / 32**2) == 16
    plan = s.plan()
    batches = [s.crop(plan[start:start + 5]) for start in range(0, len(plan), 5)]
    assert [b.x.shape[0] for b in batches] == [5, 5, 5, 1]
    for b in batches:
        x, y = b  # unpacks as a pair
        assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.float32
        assert y.shape[1:] == (1, 32, 32) and y.dtype == torch.float32 and bool(valid(b).all())
    whole = s.crop(plan)
    assert whole.x.shape == (16, 3, 32, 32)
    assert torch.equal(torch.cat([b.x for b in batches]), whole.x)  # a slice of a plan cuts those patches
    assert s.notes == []


def test_default_patches_per_epoch_formula_and_override():
    sizes = [(100, 120), (20, 300), (7, 7)]
    assert default_patches_per_epoch(sizes, 32) == math.ceil((12000 + 6000 + 49) / 1024) == 18
    assert default_patches_per_epoch([(4, 4)], 64) == 1  # at least one
    images = [torch.rand(1, h, w) for h, w in sizes]
    masks = [torch.zeros(1, h, w) for h, w in sizes]
    s = PatchSampler(images, masks, 32, generator=gen())
    assert s.patches_per_epoch == 18 and s.total_pixels == 18049
    s = PatchSampler(images, masks, 32, patches_per_epoch=7, generator=gen())
    assert s.patches_per_epoch == 7 and epoch(s).x.shape[0] == 7


# --------------------------------------------------------------------------- the foreground share


def rare_foreground_set():
    # three 200 x 200 images, each with a 20 x 20 square of foreground (1 % of the pixels)
    pairs = [blob_image(200, 200, (r, r + 20, c, c + 20), seed=i) for i, (r, c) in enumerate([(90, 90), (30, 140),
                                                                                              (150, 20)])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def test_foreground_share_is_exact_and_the_rest_are_natural():
    images, masks = rare_foreground_set()
    s = PatchSampler(images, masks, 16, foreground_oversample=1 / 3, patches_per_epoch=3000, generator=gen(1))
    plan = s.plan()
    batch = s.crop(plan)
    fg = has_foreground(batch)
    assert int(plan.forced.sum()) == 1000  # exactly round(share * n)
    assert bool(fg[plan.forced].all())  # every forced patch contains foreground
    rest = fg[~plan.forced].float().mean().item()
    natural = natural_rate(masks, 16)
    assert 0.02 < natural < 0.06
    assert abs(rest - natural) < 0.015, (rest, natural)
    assert int(fg.sum()) >= 1000
    # the forced patches are spread over the epoch, not all at its start
    assert 200 < int(plan.forced[:1500].sum()) < 800


def test_no_oversampling_gives_the_natural_rate():
    images, masks = rare_foreground_set()
    s = PatchSampler(images, masks, 16, foreground_oversample=0.0, patches_per_epoch=4000, generator=gen(2))
    plan = s.plan()
    assert not bool(plan.forced.any())
    rate = has_foreground(s.crop(plan)).float().mean().item()
    assert abs(rate - natural_rate(masks, 16)) < 0.015


def test_share_rounds_half_up_and_one_forces_every_patch():
    images, masks = rare_foreground_set()
    assert int(PatchSampler(images, masks, 16, foreground_oversample=0.5, patches_per_epoch=7,
                            generator=gen()).plan().forced.sum()) == 4
    s = PatchSampler(images, masks, 16, foreground_oversample=1.0, patches_per_epoch=50, generator=gen())
    assert bool(has_foreground(epoch(s)).all())


def test_forced_position_contains_the_pixel_uniformly_and_stays_inside():
    # one foreground pixel in the middle: the patch's top ranges over [50 - 15, 50] uniformly
    image, mask = blob_image(100, 100, (50, 51, 60, 61))
    s = PatchSampler([image], [mask], 16, foreground_oversample=1.0, patches_per_epoch=4000, generator=gen(3))
    plan = s.plan()
    assert int(plan.top.min()) == 35 and int(plan.top.max()) == 50
    assert int(plan.left.min()) == 45 and int(plan.left.max()) == 60
    counts = torch.bincount(plan.top - 35, minlength=16).float()
    assert counts.min() > 0.6 * 4000 / 16 and counts.max() < 1.4 * 4000 / 16
    # a pixel in the corner: the patch is clamped to the image
    image, mask = blob_image(100, 100, (0, 1, 99, 100))
    s = PatchSampler([image], [mask], 16, foreground_oversample=1.0, patches_per_epoch=50, generator=gen(4))
    plan = s.plan()
    assert bool((plan.top == 0).all()) and bool((plan.left == 84).all())
    assert bool(has_foreground(s.crop(plan)).all())


def test_multi_class_foreground_is_any_class_above_zero():
    a = blob_image(120, 120, (10, 14, 100, 104), value=2.0, seed=1)  # class 2 only
    b = blob_image(120, 120, (60, 62, 5, 9), value=1.0, seed=2)  # class 1 only
    c = blob_image(120, 120, None, seed=3)  # background only
    images, masks = [a[0], b[0], c[0]], [a[1], b[1], c[1]]
    s = PatchSampler(images, masks, 32, foreground_oversample=1.0, patches_per_epoch=600, generator=gen(5))
    assert s.foreground_pixels.tolist() == [16, 8, 0]
    plan = s.plan()
    batch = s.crop(plan)
    assert bool(has_foreground(batch).all())
    counts = torch.bincount(plan.image, minlength=3)
    assert int(counts[2]) == 0 and abs(int(counts[0]) - 300) < 60  # the images with foreground, by area
    # the labels are the mask's class indices, unchanged
    assert set(torch.unique(batch.y).tolist()) <= {0.0, 1.0, 2.0}
    assert bool((batch.y[plan.image == 0] == 2).flatten(1).any(1).all())


def test_no_foreground_anywhere_says_so_and_samples_at_random():
    images = [torch.rand(1, 50, 50)]
    s = PatchSampler(images, [torch.zeros(1, 50, 50)], 16, foreground_oversample=0.5, generator=gen())
    assert not bool(s.plan().forced.any())
    assert len(s.notes) == 1 and "no training image has foreground" in s.notes[0]


# --------------------------------------------------------------------------- where patches come from


def test_every_patch_is_the_image_crop_at_its_position():
    images, masks = [], []
    for i, (h, w) in enumerate([(70, 50), (33, 90), (48, 48)]):
        image, mask = blob_image(h, w, (5, 12, 7, 20), value=float(i % 2 + 1), seed=i)
        images.append(image)
        masks.append(mask)
    s = PatchSampler(images, masks, 24, patches_per_epoch=60, generator=gen(6))
    plan = s.plan()
    batch = s.crop(plan)
    for j, (i, top, left) in enumerate(zip(plan.image.tolist(), plan.top.tolist(), plan.left.tolist())):
        h, w = s.sizes[i]
        assert 0 <= top <= h - 24 and 0 <= left <= w - 24
        assert torch.equal(batch.x[j], images[i][:, top:top + 24, left:left + 24])
        assert torch.equal(batch.y[j], masks[i][:, top:top + 24, left:left + 24])
    assert bool(valid(batch).all())


def test_images_are_chosen_in_proportion_to_their_area():
    sizes = [(100, 100), (50, 100), (50, 50)]  # areas 4 : 2 : 1
    images = [torch.rand(1, h, w) for h, w in sizes]
    masks = [torch.zeros(1, h, w) for h, w in sizes]
    s = PatchSampler(images, masks, 16, foreground_oversample=0.0, generator=gen(7))
    counts = torch.bincount(s.plan(70_000).image, minlength=3).tolist()
    for count, expected in zip(counts, [40_000, 20_000, 10_000]):
        assert abs(count - expected) < 0.03 * expected, counts


def test_non_square_image():
    image, mask = blob_image(40, 300, (10, 20, 250, 290))
    s = PatchSampler([image], [mask], 32, patches_per_epoch=3000, generator=gen(8))
    assert s.patches_per_epoch == 3000 and s.notes == []
    assert default_patches_per_epoch(s.sizes, 32) == math.ceil(12000 / 1024)
    plan = s.plan()
    batch = s.crop(plan)
    assert bool(valid(batch).all())
    assert 0 <= int(plan.top.min()) and int(plan.top.max()) <= 8
    assert int(plan.left.min()) <= 5 and int(plan.left.max()) >= 263 and int(plan.left.max()) <= 268
    for j in range(0, 3000, 97):
        t, left = int(plan.top[j]), int(plan.left[j])
        assert torch.equal(batch.x[j], image[:, t:t + 32, left:left + 32])


# --------------------------------------------------------------------------- padding


def test_small_images_are_padded_and_the_padding_is_invalid():
    big = blob_image(64, 64, (30, 34, 30, 34), seed=1)
    short = blob_image(20, 50, (5, 10, 5, 10), value=2.0, seed=2)  # shorter than P in height only
    tiny = blob_image(10, 12, (3, 6, 3, 6), seed=3)  # smaller in both
    images, masks = [big[0], short[0], tiny[0]], [big[1], short[1], tiny[1]]
    s = PatchSampler(images, masks, 32, patches_per_epoch=400, generator=gen(9))
    assert s.padded == 2
    assert len(s.notes) == 1 and s.notes[0].startswith("2 of 3 training images are smaller than the 32x32 patch")
    assert "10x12" in s.notes[0]
    plan = s.plan()
    batch = s.crop(plan)
    frames = [framed(image, mask, 32) for image, mask in zip(images, masks)]
    seen_offsets = set()
    for j, (i, top, left) in enumerate(zip(plan.image.tolist(), plan.top.tolist(), plan.left.tolist())):
        x, y, inside = expected_crop(frames[i], top, left, 32)
        got = valid(batch)[j]
        assert torch.equal(got, inside) and torch.equal(batch.x[j], x) and torch.equal(batch.y[j], y)
        h, w = s.sizes[i]
        assert int(got.sum()) == min(h, 32) * min(w, 32)  # the whole short side is in the patch
        if i == 2:
            seen_offsets.add((-top, -left))
            assert bool((batch.x[j][:, ~got[0]] == 0).all())
    assert seen_offsets and all(0 <= dy <= 22 and 0 <= dx <= 20 for dy, dx in seen_offsets)
    # the note is said once, however many epochs are drawn
    epoch(s)
    assert len(s.notes) == 1


def test_a_small_image_lies_at_uniformly_random_places_in_its_patch():
    image, mask = blob_image(10, 12, (3, 6, 3, 6))
    for share in (0.0, 1.0):  # random and forced patches alike: every placement keeps the whole image in the patch
        s = PatchSampler([image], [mask], 32, foreground_oversample=share, patches_per_epoch=5000, generator=gen(10))
        plan = s.plan()
        dy, dx = -plan.top, -plan.left
        assert int(dy.min()) == 0 and int(dy.max()) == 22 and int(dx.min()) == 0 and int(dx.max()) == 20
        counts = torch.bincount(dy, minlength=23).float()
        assert counts.min() > 0.6 * 5000 / 23 and counts.max() < 1.4 * 5000 / 23
        assert bool((valid(s.crop(plan[:50])).flatten(1).sum(1) == 120).all())


def test_padding_label_follows_ignore_index():
    image, mask = blob_image(8, 8, (2, 4, 2, 4))
    s = PatchSampler([image], [mask], 16, generator=gen(), ignore_index=255)
    batch = epoch(s)
    inside = valid(batch, 255)
    assert set(torch.unique(batch.y[inside]).tolist()) == {0.0, 1.0} and int(inside.sum()) == 64  # 8 x 8 of image
    assert bool((batch.x.masked_select(~inside) == 0).all()) and int((~inside).sum()) == 16 * 16 - 64


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_patches_other_seed_other_patches():
    images, masks = rare_foreground_set()

    def epochs(seed):
        s = PatchSampler(images, masks, 16, patches_per_epoch=40, generator=gen(seed))
        return [[s.crop(plan[i:i + 16]) for i in range(0, len(plan), 16)] for plan in (s.plan(), s.plan())]

    a, b, c = epochs(11), epochs(11), epochs(12)
    for ea, eb in zip(a, b):
        for ba, bb in zip(ea, eb):
            assert all(torch.equal(ta, tb) for ta, tb in zip(ba, bb))
    assert not torch.equal(a[0][0].x, a[1][0].x)  # the next epoch is another draw
    assert not torch.equal(a[0][0].x, c[0][0].x)


def test_the_random_stream_does_not_depend_on_the_share():
    images, masks = rare_foreground_set()
    states = []
    for share in (0.0, 1 / 3, 1.0):
        g = gen(13)
        PatchSampler(images, masks, 16, foreground_oversample=share, patches_per_epoch=100, generator=g).plan()
        states.append(g.get_state())
    assert torch.equal(states[0], states[1]) and torch.equal(states[0], states[2])


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patch": 0}, "patch must be an integer >= 1"),
        ({"patch": True}, "patch must be an integer >= 1"),
        ({"patch": 2.5}, "patch must be an integer >= 1"),
        ({"foreground_oversample": -0.1}, "foreground_oversample must be a number in [0, 1]"),
        ({"foreground_oversample": 1.5}, "foreground_oversample must be a number in [0, 1]"),
        ({"foreground_oversample": float("nan")}, "foreground_oversample must be a number in [0, 1]"),
        ({"patches_per_epoch": 0}, "patches_per_epoch must be an integer >= 1"),
        ({"images": []}, "needs at least one image"),
        ({"masks": [torch.zeros(1, 30, 40)]}, "got 2 images but 1 masks"),
        ({"masks": [torch.zeros(1, 30, 40), torch.zeros(1, 20, 25)]}, "image 1 is 20x24 but its mask is 20x25"),
        ({"masks": [torch.zeros(1, 30, 40), torch.zeros(20, 24)]}, "mask 1 must be a [1, H, W] tensor"),
        ({"images": [torch.zeros(3, 30, 40), torch.zeros(1, 20, 24)]}, "image 1 has 1 channels but image 0 has 3"),
        ({"generator": None}, "generator must be a torch.Generator"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(kwargs, message):
    args = {"images": [torch.zeros(3, 30, 40), torch.zeros(3, 20, 24)],
            "masks": [torch.zeros(1, 30, 40), torch.zeros(1, 20, 24)], "patch": 16, "generator": gen()}
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        PatchSampler(args.pop("images"), args.pop("masks"), args.pop("patch"), **args)
    assert message in str(err.value) and "\n" not in str(err.value)
