"""The in-memory loader: batch augmentation, determinism, resumption, sharding, class-balanced subsets."""

import pytest
import torch
import torch.nn.functional as F

from senet.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DataSplits,
    ShardedSampler,
    TensorLoader,
    TensorSplit,
    balanced_subset,
    create_loader,
    crop_flip,
    epoch_order,
    normalize,
)

MEAN, STD = torch.tensor(CIFAR10_MEAN), torch.tensor(CIFAR10_STD)


def make_data(n=300, num_classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    return images, torch.arange(n) % num_classes


def loader(images, labels, **kw):
    kw = {"batch_size": 64, "mean": CIFAR10_MEAN, "std": CIFAR10_STD, **kw}
    return TensorLoader(images, labels, **kw)


def test_batches_have_the_right_shapes_and_types():
    images, labels = make_data(300)
    train = loader(images, labels)
    batches = list(train)
    assert len(batches) == len(train) == 5
    x, y = batches[0]
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert batches[-1][0].shape == (300 - 4 * 64, 3, 32, 32)
    assert len(loader(images, labels, drop_last=True)) == 4
    x_cl, _ = next(iter(loader(images, labels, channels_last=True)))
    assert x_cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(x_cl, x)
    # Every sample once per epoch.
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(labels.tolist())


def test_augmentation_is_a_real_crop_and_flip():
    images, labels = make_data(300)
    train = loader(images, labels, seed=3)
    indices, offsets, flips = train.plan(0)
    x, y = next(iter(train))
    assert flips[:64].any() and not flips[:64].all() and (offsets[:64] != 4).any()  # something happened
    for k in range(64):  # redo each sample by hand: pad with zeros, slice, maybe mirror, normalise
        r, c = offsets[k].tolist()
        crop = F.pad(images[indices[k]], (4, 4, 4, 4))[:, r : r + 32, c : c + 32]
        crop = crop.flip(2) if flips[k] else crop
        expected = (crop.float() / 255 - MEAN[:, None, None]) / STD[:, None, None]
        torch.testing.assert_close(x[k], expected, rtol=0, atol=1e-5)
        assert y[k] == labels[indices[k]]


def test_crop_flip_edge_cases():
    image = torch.arange(2 * 4 * 4, dtype=torch.uint8).view(1, 2, 4, 4)
    centre = crop_flip(image, torch.tensor([[1, 1]]), torch.tensor([False]), padding=1)
    assert torch.equal(centre, image)
    mirrored = crop_flip(image, torch.tensor([[1, 1]]), torch.tensor([True]), padding=1)
    assert torch.equal(mirrored, image.flip(3))
    corner = crop_flip(image, torch.tensor([[0, 2]]), torch.tensor([False]), padding=1)
    assert corner[0, 0].tolist() == [[0, 0, 0, 0], [1, 2, 3, 0], [5, 6, 7, 0], [9, 10, 11, 0]]


def test_same_seed_same_batches_and_epochs_differ():
    images, labels = make_data(200)
    a, b = loader(images, labels, seed=7), loader(images, labels, seed=7)
    epoch0_a, epoch0_b = list(a), list(b)
    assert all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(epoch0_a, epoch0_b, strict=True)
    )
    epoch1 = list(a)  # the epoch advances after each pass
    assert not torch.equal(epoch1[0][1], epoch0_a[0][1])
    assert not torch.equal(next(iter(loader(images, labels, seed=8)))[1], epoch0_a[0][1])
    # Resuming: epoch 1 from (seed, epoch) alone, from its third batch on.
    fresh = loader(images, labels, seed=7)
    resumed = list(fresh.iter_epoch(1, start_batch=2))
    assert len(resumed) == len(epoch1) - 2
    assert all(torch.equal(x, e[0]) and torch.equal(y, e[1]) for (x, y), e in zip(resumed, epoch1[2:], strict=True))
    fresh.set_epoch(1)
    assert torch.equal(next(iter(fresh))[0], epoch1[0][0])
    # The order is epoch_order's, whatever the batch size.
    order = torch.cat([y for _, y in loader(images, torch.arange(200), seed=7, batch_size=33).iter_epoch(1)])
    assert torch.equal(order, epoch_order(200, seed=7, epoch=1))


def test_evaluation_batches_are_plain_and_ordered():
    images, labels = make_data(100)
    test = loader(images, labels, train=False, batch_size=40)
    xs, ys = zip(*test, strict=True)
    assert [len(y) for y in ys] == [40, 40, 20]
    torch.testing.assert_close(torch.cat(xs), normalize(images, MEAN, STD))
    assert torch.equal(torch.cat(ys), labels)


@pytest.mark.parametrize("world_size", [2, 3])
def test_training_shards_are_disjoint_and_equal(world_size):
    images, labels = make_data(100)
    ids = torch.arange(100)
    for epoch in (0, 1):
        shards = []
        for rank in range(world_size):
            shard = loader(images, ids, seed=5, rank=rank, world_size=world_size, batch_size=16)
            shard.set_epoch(epoch)
            shards.append(torch.cat([y for _, y in shard]))
            assert len(shards[-1]) == shard.num_samples == 100 // world_size
        union = torch.cat(shards)
        assert len(set(union.tolist())) == len(union) == 100 - 100 % world_size
        used = epoch_order(100, seed=5, epoch=epoch)[: len(union)]  # the permutation less its tail
        assert set(union.tolist()) == set(used.tolist())
        # The sampler for DataLoader-based loaders makes the same shards.
        sampler = ShardedSampler(100, seed=5, rank=world_size - 1, world_size=world_size)
        sampler.set_epoch(epoch)
        assert list(sampler) == shards[-1].tolist()
    # Evaluation shards cover every sample exactly once.
    test = [loader(images, ids, train=False, rank=r, world_size=world_size) for r in range(world_size)]
    assert sorted(torch.cat([y for shard in test for _, y in shard]).tolist()) == list(range(100))


def test_sharding_arguments_are_checked():
    images, labels = make_data(10)
    with pytest.raises(ValueError, match="rank < world_size"):
        loader(images, labels, rank=2, world_size=2)


def test_balanced_subset():
    labels = torch.arange(1000) % 10
    keep = balanced_subset(labels, 50, seed=0)
    assert len(keep) == 50 and torch.bincount(labels[keep]).tolist() == [5] * 10
    assert torch.equal(keep, balanced_subset(labels, 50, seed=0)) and torch.equal(keep, keep.sort().values)
    assert not torch.equal(keep, balanced_subset(labels, 50, seed=1))
    assert torch.bincount(labels[balanced_subset(labels, 23)], minlength=10).tolist() == [3, 3, 3] + [2] * 7
    with pytest.raises(ValueError, match="needs 101 samples of class 0"):
        balanced_subset(labels, 1010)


def test_create_loader_picks_the_split():
    images, labels = make_data(50)
    split = TensorSplit(images, labels)
    data = DataSplits("toy", "tensor", split, split, tuple("abcdefghij"), CIFAR10_MEAN, CIFAR10_STD, 32)
    train, test = create_loader(data, "train", batch_size=16), create_loader(data, "test", batch_size=16)
    assert train.augment and not test.augment and len(test) == 4
    with pytest.raises(ValueError, match="unknown split 'val'"):
        create_loader(data, "val", batch_size=16)
