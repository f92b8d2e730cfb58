"""Package tests for tinytorch.data.loader: datasets, batching, shuffling, splits, normalisation, digits.

Oracles: hand counts of batches, set and multiset equality of epochs, rows that name their own
sample (row i = [i, 1000 + i], label i) so pairing is visible, NumPy statistics, and scikit-learn's
own copy of the digits.
"""

import subprocess
import sys

import numpy as np
import pytest

from tinytorch.core.tensor import Tensor
from tinytorch.data.loader import (
    CONSTANT_FEATURE_STD,
    DataLoader,
    Dataset,
    Standardizer,
    TensorDataset,
    as_model_dtype,
    load_digits_dataset,
    train_test_split,
)


def numbered_rows(n: int) -> TensorDataset:
    """Features row i = [i, 1000 + i] (float64 in, float32 stored), label i (int64)."""
    index = np.arange(n)
    return TensorDataset(np.stack([index, 1000 + index], axis=1).astype(np.float64), index)


def labels_of_epoch(loader) -> list[int]:
    """One epoch's labels in yield order; asserts on the way that every row still meets its label."""
    seen = []
    for features, labels in loader:
        np.testing.assert_array_equal(features.data[:, 0], labels.data)
        np.testing.assert_array_equal(features.data[:, 1], 1000 + labels.data)
        seen.extend(labels.data.tolist())
    return seen


class OnlyLenAndGetitem:
    """A dataset that is not a TensorDataset (duck-typed): the loader must ask it sample by sample."""

    def __init__(self, rows: TensorDataset):
        self.rows = rows
        self.calls = 0

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        self.calls += 1
        return self.rows[index]


# --- as_model_dtype ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, expected", [(np.float64, np.float32), (np.float16, np.float32), (np.float32, np.float32),
                                             (np.int32, np.int64), (np.uint8, np.int64), (np.int64, np.int64),
                                             (np.bool_, np.bool_)])
def test_as_model_dtype(dtype, expected):
    assert as_model_dtype(np.zeros(3, dtype=dtype)).dtype == expected


# --- TensorDataset -----------------------------------------------------------------------------

def test_tensor_dataset_items_are_tuples_of_rows():
    features, labels = np.arange(15.0).reshape(5, 3), np.array([4, 3, 2, 1, 0])
    ds = TensorDataset(features, labels)
    assert len(ds) == 5
    item = ds[1]
    assert isinstance(item, tuple) and len(item) == 2
    np.testing.assert_array_equal(item[0], [3.0, 4.0, 5.0])
    assert item[1] == 3
    single = TensorDataset(features)[2]
    assert isinstance(single, tuple) and len(single) == 1


def test_tensor_dataset_dtypes_and_no_copy_when_already_right():
    features32 = np.ones((4, 2), dtype=np.float32)
    ds = TensorDataset(features32, np.arange(4, dtype=np.int32), Tensor(np.zeros((4, 1))))
    assert [a.dtype for a in ds.arrays] == [np.float32, np.int64, np.float32]
    assert np.shares_memory(ds.arrays[0], features32), "an array already in float32 is stored as is"


def test_tensor_dataset_accepts_lists():
    ds = TensorDataset([[1.0, 2.0], [3.0, 4.0]], [0, 1])
    assert ds.arrays[0].dtype == np.float32 and ds.arrays[1].dtype == np.int64


def test_tensor_dataset_length_mismatch_names_lengths():
    with pytest.raises(ValueError, match=r"7.*6"):
        TensorDataset(np.zeros((7, 2)), np.zeros(6))


@pytest.mark.parametrize("arrays", [(), (np.float64(1.0),), (np.zeros(3), 5)])
def test_tensor_dataset_needs_arrays_with_rows(arrays):
    with pytest.raises(ValueError):
        TensorDataset(*arrays)


def test_dataset_base_says_what_to_implement():
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Dataset())
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]


# --- DataLoader: batches -----------------------------------------------------------------------

SIZES = [(10, 4), (12, 4), (1, 1), (7, 1), (5, 5), (5, 8), (33, 32), (64, 32)]


# drop_last with batch_size > n is rejected (test_drop_last_larger_than_dataset_is_an_error)
@pytest.mark.parametrize("n, batch_size, drop_last",
                         [(n, b, drop) for n, b in SIZES for drop in (False, True) if not (drop and b > n)])
def test_batch_sizes_and_len_match_a_hand_count(n, batch_size, drop_last):
    full, rest = n // batch_size, n % batch_size
    expected_sizes = [batch_size] * full + ([rest] if rest and not drop_last else [])
    loader = DataLoader(numbered_rows(n), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(expected_sizes)
    assert [len(labels.data) for _, labels in loader] == expected_sizes


def test_unshuffled_batches_are_consecutive_rows_every_epoch():
    loader = DataLoader(numbered_rows(10), batch_size=4)
    assert labels_of_epoch(loader) == list(range(10)) == labels_of_epoch(loader)
    last_features, last_labels = list(loader)[-1]
    np.testing.assert_array_equal(last_features.data, [[8.0, 1008.0], [9.0, 1009.0]])
    np.testing.assert_array_equal(last_labels.data, [8, 9])


def test_batches_are_tensors_float32_features_int64_labels():
    for features, labels in DataLoader(TensorDataset(np.ones((6, 3)), np.array([1, 2, 3, 4, 5, 6], dtype=np.int32)),
                                       batch_size=4):
        assert isinstance(features, Tensor) and isinstance(labels, Tensor)
        assert features.dtype == np.float32 and features.shape[1:] == (3,)
        assert labels.dtype == np.int64 and labels.ndim == 1
        assert not features.requires_grad and not labels.requires_grad


def test_a_batch_is_a_copy_not_a_view_of_the_dataset():
    ds = numbered_rows(6)
    features, _ = next(iter(DataLoader(ds, batch_size=3, shuffle=True, seed=0)))
    features.data[:] = -1.0
    np.testing.assert_array_equal(ds.arrays[0][:, 0], np.arange(6))


def test_three_arrays_give_three_tensors():
    ds = TensorDataset(np.zeros((5, 2)), np.arange(5), np.arange(5.0) * 2)
    batches = list(DataLoader(ds, batch_size=2))
    assert all(len(batch) == 3 for batch in batches)
    np.testing.assert_array_equal(np.concatenate([b[2].data for b in batches]), np.arange(5.0) * 2)


# --- DataLoader: the fast path and the general path ----------------------------------------------

def test_tensor_dataset_is_gathered_without_per_sample_calls(monkeypatch):
    calls = []
    original = TensorDataset.__getitem__
    monkeypatch.setattr(TensorDataset, "__getitem__", lambda self, i: calls.append(i) or original(self, i))
    epoch = labels_of_epoch(DataLoader(numbered_rows(20), batch_size=8, shuffle=True, seed=1))
    assert sorted(epoch) == list(range(20))
    assert calls == [], "a TensorDataset batch must come from one fancy-indexing call per array"


def test_general_dataset_gives_the_same_batches_as_the_fast_path():
    rows = numbered_rows(23)
    general = OnlyLenAndGetitem(rows)
    fast_loader = DataLoader(rows, batch_size=5, shuffle=True, seed=9)
    general_loader = DataLoader(general, batch_size=5, shuffle=True, seed=9)
    for _ in range(2):
        fast_batches, general_batches = list(fast_loader), list(general_loader)
        assert len(fast_batches) == len(general_batches) == 5
        for (fx, fy), (gx, gy) in zip(fast_batches, general_batches):
            assert (gx.dtype, gy.dtype) == (fx.dtype, fy.dtype) == (np.float32, np.int64)
            np.testing.assert_array_equal(gx.data, fx.data)
            np.testing.assert_array_equal(gy.data, fy.data)
    assert general.calls == 2 * 23


def test_subclass_that_overrides_getitem_is_asked_per_sample():
    class Doubled(TensorDataset):
        def __getitem__(self, index):
            features, label = super().__getitem__(index)
            return 2 * features, label

    ds = Doubled(np.arange(6.0).reshape(6, 1), np.arange(6))
    features, labels = next(iter(DataLoader(ds, batch_size=6)))
    np.testing.assert_array_equal(features.data[:, 0], 2 * labels.data)


def test_non_tuple_items_give_one_tensor_per_batch():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, index):
            return float(index * index)

    batches = list(DataLoader(Squares(), batch_size=2))
    assert all(isinstance(batch, Tensor) for batch in batches)
    assert batches[0].dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([b.data for b in batches]), [0.0, 1.0, 4.0, 9.0, 16.0])


# --- DataLoader: shuffling ---------------------------------------------------------------------

def test_each_shuffled_epoch_holds_every_sample_once_in_a_new_order():
    loader = DataLoader(numbered_rows(64), batch_size=10, shuffle=True, seed=0)
    epochs = [labels_of_epoch(loader) for _ in range(5)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(64))
    assert epochs[0] != list(range(64))
    assert len({tuple(epoch) for epoch in epochs}) == 5, "every epoch draws a new permutation"


def test_same_seed_same_sequence_of_epochs_other_seed_other_orders():
    def epochs(seed, count=3):
        loader = DataLoader(numbered_rows(30), batch_size=7, shuffle=True, seed=seed)
        return [labels_of_epoch(loader) for _ in range(count)]

    assert epochs(42) == epochs(42)
    assert epochs(42) != epochs(43)


def test_seed_follows_numpy_default_rng_permutations():
    """The documented contract: epoch k's order is the k-th permutation drawn from default_rng(seed)."""
    oracle = np.random.default_rng(5)
    loader = DataLoader(numbered_rows(12), batch_size=12, shuffle=True, seed=5)
    for _ in range(3):
        assert labels_of_epoch(loader) == oracle.permutation(12).tolist()


def test_unseeded_loaders_differ():
    first = labels_of_epoch(DataLoader(numbered_rows(50), batch_size=50, shuffle=True))
    second = labels_of_epoch(DataLoader(numbered_rows(50), batch_size=50, shuffle=True))
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second   # 1 in 50! chance of a false failure


def test_shuffle_with_drop_last_keeps_full_batches_and_varies_the_skipped_samples():
    loader = DataLoader(numbered_rows(17), batch_size=4, shuffle=True, drop_last=True, seed=2)
    epochs = [labels_of_epoch(loader) for _ in range(6)]
    assert all(len(epoch) == 16 == len(set(epoch)) for epoch in epochs)
    assert len({frozenset(range(17)) - set(epoch) for epoch in epochs}) > 1


# --- DataLoader: bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [2.0, "4", None, True])
def test_non_integer_batch_size_is_a_type_error(batch_size):
    with pytest.raises(TypeError, match="batch_size"):
        DataLoader(numbered_rows(4), batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_non_positive_batch_size_is_a_value_error(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(numbered_rows(4), batch_size=batch_size)


def test_numpy_integer_batch_size_is_fine():
    assert len(DataLoader(numbered_rows(10), batch_size=np.int64(3))) == 4


def test_empty_dataset_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        DataLoader(TensorDataset(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)))


def test_drop_last_larger_than_dataset_is_an_error():
    with pytest.raises(ValueError, match="drop_last"):
        DataLoader(numbered_rows(5), batch_size=8, drop_last=True)


# --- train_test_split --------------------------------------------------------------------------

@pytest.mark.parametrize("n, fraction, n_test", [(50, 0.2, 10), (10, 0.25, 2), (1797, 0.2, 359), (3, 0.5, 2), (7, 0.1, 1)])
def test_split_sizes_partition_and_pairing(n, fraction, n_test):
    features = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float64)
    labels = np.arange(n)
    x_train, x_test, y_train, y_test = train_test_split(features, labels, test_fraction=fraction, seed=3)
    assert (len(x_test), len(y_test), len(x_train), len(y_train)) == (n_test, n_test, n - n_test, n - n_test)
    assert sorted(y_train.tolist() + y_test.tolist()) == list(range(n))
    np.testing.assert_array_equal(x_train[:, 0], y_train)
    np.testing.assert_array_equal(x_test[:, 1], -y_test)
    assert x_train.dtype == np.float64, "the split keeps dtypes; TensorDataset converts later"


def test_split_is_deterministic_and_seed_dependent():
    labels = np.arange(100)
    first = train_test_split(labels, seed=0)
    np.testing.assert_array_equal(first[1], train_test_split(labels, seed=0)[1])
    np.testing.assert_array_equal(first[0], train_test_split(labels)[0])   # seed=0 is the default
    assert first[1].tolist() != train_test_split(labels, seed=1)[1].tolist()
    assert sorted(first[1].tolist()) != list(range(80, 100))


def test_split_accepts_tensors():
    x_train, x_test = train_test_split(Tensor(np.arange(10.0)), test_fraction=0.3)
    assert isinstance(x_train, np.ndarray) and x_train.dtype == np.float32
    assert len(x_test) == 3


def test_stratified_split_keeps_class_proportions():
    labels = np.repeat(np.arange(4), [40, 25, 20, 15])
    rows = np.arange(100)
    r_train, r_test, y_train, y_test = train_test_split(rows, labels, test_fraction=0.2, seed=11, stratify=labels)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=4), [8, 5, 4, 3])
    np.testing.assert_array_equal(np.bincount(y_train, minlength=4), [32, 20, 16, 12])
    np.testing.assert_array_equal(labels[r_test], y_test)
    np.testing.assert_array_equal(labels[r_train], y_train)
    assert sorted(r_train.tolist() + r_test.tolist()) == list(range(100))
    assert np.any(np.diff(y_test) < 0), "the test part is shuffled, not grouped by class"


def test_stratified_split_on_digits_is_within_a_row_per_class():
    images, labels = load_digits_dataset()
    _, _, _, y_test = train_test_split(images, labels, test_fraction=0.2, seed=0, stratify=labels)
    expected = np.round(0.2 * np.bincount(labels))
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - expected) <= 1)


@pytest.mark.parametrize("fraction", [0, 1, 0.0, 1.0, -0.2, 1.2, True, "0.2", None])
def test_split_rejects_fractions_outside_zero_one(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(np.arange(10), test_fraction=fraction)


def test_split_errors():
    with pytest.raises(ValueError):
        train_test_split()
    with pytest.raises(ValueError, match=r"5.*6"):
        train_test_split(np.zeros((5, 2)), np.zeros(6))
    with pytest.raises(ValueError, match="stratify"):
        train_test_split(np.zeros(10), stratify=np.zeros(9))
    with pytest.raises(ValueError, match="at least one row"):
        train_test_split(np.arange(2), test_fraction=0.1)    # round(0.2) = 0 test rows


# --- Standardizer ------------------------------------------------------------------------------

def test_standardizer_uses_training_statistics_for_the_test_set():
    gen = np.random.default_rng(7)
    train, test = gen.normal(3.0, 2.0, (500, 5)), gen.normal(-1.0, 0.1, (40, 5))
    train_mean, train_std = train.mean(axis=0), train.std(axis=0)
    scaler = Standardizer().fit(train.copy())
    np.testing.assert_allclose(scaler.mean, train_mean, rtol=1e-12)
    np.testing.assert_allclose(scaler.std, train_std, rtol=1e-12)
    scaled = scaler.apply(test.copy())
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, (test - train_mean) / train_std, rtol=1e-5, atol=1e-5)
    assert np.abs(scaled.mean(axis=0)).min() > 1.0, "the test set must not be re-centred on its own mean"
    np.testing.assert_allclose(scaler.mean, train_mean, rtol=1e-12)


def test_standardized_training_set_has_mean_zero_std_one():
    train = np.random.default_rng(8).uniform(-4, 9, (300, 6))
    scaled = Standardizer().fit(train).apply(train)
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-5)


def test_constant_features_get_std_one_and_no_nan():
    train = np.column_stack([np.zeros(10), np.full(10, 0.1), np.arange(10.0)])
    scaler = Standardizer().fit(train)
    np.testing.assert_array_equal(scaler.std[:2], [1.0, 1.0])
    out = scaler.apply(np.array([[0.0, 0.1, 4.5], [1.0, 0.6, 4.5]]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:, :2], [[0.0, 0.0], [1.0, 0.5]], atol=1e-6)
    assert CONSTANT_FEATURE_STD < 1e-6


def test_standardizer_on_images_and_tensors():
    images = np.random.default_rng(9).uniform(0, 16, (30, 8, 8))
    scaler = Standardizer().fit(Tensor(images, dtype=np.float64))
    assert scaler.mean.shape == (8, 8)
    np.testing.assert_allclose(scaler.apply(Tensor(images)), (images - images.mean(0)) / images.std(0), rtol=1e-4, atol=1e-4)


def test_standardizer_errors():
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().apply(np.ones((2, 2)))
    with pytest.raises(ValueError):
        Standardizer().fit(np.zeros((0, 4)))
    with pytest.raises(ValueError):
        Standardizer().fit(np.float64(2.0))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        Standardizer().fit(np.ones((3, 4))).apply(np.ones((3, 5)))


# --- the digits --------------------------------------------------------------------------------

def test_digits_are_sklearns_digits_in_model_dtypes():
    from sklearn.datasets import load_digits

    reference = load_digits()
    images, labels = load_digits_dataset()
    assert images.shape == (1797, 64) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    np.testing.assert_array_equal(images.reshape(-1, 8, 8), reference.images)
    np.testing.assert_array_equal(labels, reference.target)
    assert np.bincount(labels).min() >= 170


def test_importing_the_loader_does_not_import_sklearn():
    probe = "import sys, tinytorch.data.loader; print('sklearn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_digits_pipeline_end_to_end():
    images, labels = load_digits_dataset()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, seed=0, stratify=labels)
    scaler = Standardizer().fit(x_train)
    loader = DataLoader(TensorDataset(scaler.apply(x_train), y_train), batch_size=64, shuffle=True, seed=0)
    assert len(loader) == -(-len(x_train) // 64)
    seen = []
    for features, batch_labels in loader:
        assert features.shape[1:] == (64,) and features.dtype == np.float32 and batch_labels.dtype == np.int64
        assert np.all(np.isfinite(features.data))
        seen.extend(batch_labels.data.tolist())
    assert sorted(seen) == sorted(y_train.tolist())
    assert np.all(np.isfinite(scaler.apply(x_test)))
