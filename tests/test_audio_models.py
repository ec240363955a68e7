"""Spectrograms, the feature cache and the audio CNNs (``cnn_ref``, ``cnn``) on synthetic GTZAN."""

from __future__ import annotations

import copy
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import train_test_split

import bench.models.audio  # noqa: F401  (registers cnn_ref and cnn)
from bench.data.gtzan import load_audio
from bench.errors import DataError
from bench.features import cache as cache_module
from bench.features.cache import FeatureCache
from bench.features.spectrogram import SpectrogramParams, spectrograms
from bench.features.synthetic import synth_gtzan
from bench.models.cnn import (
    CNNClassifier,
    ReferenceCNN,
    ReferenceCNNClassifier,
    cut_segments,
    reference_params,
)

SR = 22050


# --- spectrograms -----------------------------------------------------------------------------


def _htk_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _numpy_logmel(wave: np.ndarray, sr: int, n_fft: int, hop: int, n_mels: int, top_db: float):
    """Plain numpy log-mel: centred reflect-padded frames, periodic Hann, HTK triangles."""
    padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] for i in range(n_frames)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (T, F)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges_mel = np.linspace(0, _htk_mel(sr / 2), n_mels + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    rising = (freqs[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[None, 2:] - freqs[:, None]) / (edges[2:] - edges[1:-1])
    bank = np.maximum(0, np.minimum(rising, falling))  # (F, M)
    db = 10 * np.log10(np.maximum(power @ bank, 1e-10)).T  # (M, T)
    return np.maximum(db, db.max() - top_db), edges[1:-1]


def test_logmel_matches_a_numpy_reference_and_peaks_in_the_sine_band():
    t = np.arange(SR) / SR
    wave = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    params = SpectrogramParams(kind="logmel", n_fft=1024, hop_length=256, n_mels=64, top_db=80)
    (image,) = spectrograms([wave], params)
    expected, centres = _numpy_logmel(wave, SR, 1024, 256, 64, 80.0)
    assert image.shape == expected.shape == (64, 1 + SR // 256)
    assert image.dtype == np.float32
    np.testing.assert_allclose(image, expected, atol=0.02)
    assert image.mean(axis=1).argmax() == np.abs(centres - 1000.0).argmin()


def test_top_db_floor_is_per_clip_not_per_batch():
    rng = np.random.default_rng(0)
    loud = rng.normal(0, 0.5, SR).astype(np.float32)
    quiet = (1e-4 * np.sin(2 * np.pi * 440.0 * np.arange(SR) / SR)).astype(np.float32)
    params = SpectrogramParams(n_mels=32, top_db=40.0)
    together = spectrograms([quiet, loud], params)
    alone = [spectrograms([w], params)[0] for w in (quiet, loud)]
    for batched, single in zip(together, alone, strict=True):
        np.testing.assert_array_equal(batched, single)
    # the quiet clip is floored 40 dB under its own maximum, not under the loud clip's
    assert together[0].min() == pytest.approx(together[0].max() - 40.0, abs=1e-3)


@pytest.mark.filterwarnings("ignore:At least one mel filterbank")
def test_reference_mfcc_is_the_original_torchaudio_mfcc_of_the_first_second():
    import torchaudio

    wave = np.random.default_rng(1).normal(0, 0.1, 3 * SR).astype(np.float32)
    (image,) = spectrograms([wave], reference_params())
    original = torchaudio.transforms.MFCC(
        sample_rate=SR,
        n_mfcc=20,
        log_mels=True,
        melkwargs={"n_fft": 400, "hop_length": 200, "n_mels": 128},
    )(torch.from_numpy(wave[:SR]))
    assert image.shape == (20, 111)
    np.testing.assert_allclose(image, original.numpy(), rtol=1e-5, atol=1e-4)


def test_params_key_is_stable_and_sensitive():
    a = SpectrogramParams(kind="logmel", n_mels=64)
    assert a.key() == SpectrogramParams(kind="logmel", n_mels=64).key()
    assert a.key() != SpectrogramParams(kind="logmel", n_mels=65).key()
    assert a.key() == SpectrogramParams(kind="logmel", n_mels=64, n_mfcc=13).key()  # unused field
    assert a.key() == SpectrogramParams(kind="logmel", n_mels=64, offset=0).key()  # 0 == 0.0
    assert a.key() != SpectrogramParams(kind="logmel", n_mels=64, seconds=1.0).key()
    with pytest.raises(ValueError, match="kind"):
        SpectrogramParams(kind="cqt")


# --- synthetic data and fitted models (shared by the tests below) -----------------------------


@pytest.fixture(scope="module")
def gtzan(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """80 learnable 6 s clips: paths and genre labels."""
    root = synth_gtzan(tmp_path_factory.mktemp("gtzan"), per_genre=8, duration=6.0, seed=0)
    paths = np.array(sorted(str(p) for p in (root / "genres_original").glob("*/*.wav")))
    return paths, np.array([Path(p).parent.name for p in paths])


@pytest.fixture(scope="module")
def split(gtzan):
    paths, labels = gtzan
    train, test = train_test_split(
        np.arange(len(paths)), test_size=0.3, stratify=labels, random_state=0
    )
    return paths[train], labels[train], paths[test], labels[test]


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def fitted_cnn(split, feature_dir) -> CNNClassifier:
    x_train, y_train, _, _ = split
    model = CNNClassifier(
        epochs=20, batch_size=16, patience=None, device="cpu", cache_dir=feature_dir
    )
    return model.fit(x_train, y_train)


@pytest.fixture(scope="module")
def fitted_cnn_ref(split, feature_dir) -> ReferenceCNNClassifier:
    x_train, y_train, _, _ = split
    model = ReferenceCNNClassifier(epochs=40, batch_size=16, device="cpu", cache_dir=feature_dir)
    return model.fit(x_train, y_train)


# --- feature cache ----------------------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """Clips computed by the cache, one entry per compute call."""
    calls: list[int] = []
    real = cache_module.spectrograms

    def counting(waves, params, device="cpu"):
        calls.append(len(waves))
        return real(waves, params, device=device)

    monkeypatch.setattr(cache_module, "spectrograms", counting)
    return calls


def spectrogram_of(path: Path, params: SpectrogramParams) -> np.ndarray:
    return spectrograms([load_audio(path, params.sample_rate)], params)[0]


@pytest.mark.slow
def test_cache_computes_once_and_matches_direct_computation(gtzan, tmp_path, counted):
    paths = [Path(p) for p in gtzan[0][:12]]
    params = SpectrogramParams(n_mels=32)
    cache = FeatureCache(tmp_path / "features")
    first = cache.get(paths, params)
    assert sum(counted) == 12
    again = FeatureCache(tmp_path / "features").get(paths[::-1], params)
    assert sum(counted) == 12  # all read back
    direct = spectrograms([load_audio(p) for p in paths], params)
    for got, reread, want in zip(first, again[::-1], direct, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(reread, want)
    assert cache.file_for(params) == tmp_path / "features" / f"{params.key()}.h5"


def test_cache_rebuilds_on_new_params_and_changed_audio(gtzan, tmp_path, counted):
    sources = [Path(p) for p in gtzan[0][:4]]
    paths = []
    for source in sources:  # private copies: this test rewrites one
        paths.append(tmp_path / source.name)
        paths[-1].write_bytes(source.read_bytes())
    cache = FeatureCache(tmp_path / "features")
    params = SpectrogramParams(n_mels=32)
    cache.get(paths, params)
    cache.get(paths, SpectrogramParams(n_mels=40))
    assert sum(counted) == 8

    stat = paths[0].stat()
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touch
    cache.get(paths, params)
    assert sum(counted) == 9

    louder = 0.5 * load_audio(paths[1])
    import soundfile as sf

    sf.write(paths[1], louder, SR, subtype="PCM_16")
    images = cache.get(paths, params)
    assert sum(counted) == 10
    np.testing.assert_array_equal(images[1], spectrogram_of(paths[1], params))


def test_cache_lives_under_bench_cache_by_default(tmp_path):
    assert FeatureCache().root == Path(os.environ["BENCH_CACHE"]) / "features"


def test_cache_names_unreadable_audio(gtzan, tmp_path):
    bad = tmp_path / "blues.00099.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(DataError, match="blues.00099.wav"):
        FeatureCache(tmp_path / "features").get([Path(gtzan[0][0]), bad], SpectrogramParams())
    with pytest.raises(DataError, match="missing.wav"):
        FeatureCache(tmp_path / "features").get([tmp_path / "missing.wav"], SpectrogramParams())


def test_cache_recovers_from_a_corrupt_file(gtzan, tmp_path, counted):
    paths = [Path(p) for p in gtzan[0][:2]]
    cache = FeatureCache(tmp_path)
    params = SpectrogramParams(n_mels=32)
    cache.file_for(params).write_bytes(b"half-written by a killed process")
    images = cache.get(paths, params)
    assert sum(counted) == 2
    np.testing.assert_array_equal(images[0], spectrogram_of(paths[0], params))
    cache.get(paths, params)
    assert sum(counted) == 2


def _cache_worker(root: str, paths: list[str]) -> tuple[int, list[np.ndarray]]:
    """Subprocess body: how many clips this process computed, and what it got."""
    calls: list[int] = []
    real = cache_module.spectrograms

    def counting(waves, params, device="cpu"):
        calls.append(len(waves))
        return real(waves, params, device=device)

    cache_module.spectrograms = counting
    images = FeatureCache(Path(root)).get(paths, SpectrogramParams(n_mels=32))
    return sum(calls), images


@pytest.mark.slow
def test_cache_is_shared_safely_by_two_processes(gtzan, tmp_path):
    paths = list(gtzan[0][:10])
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.starmap(_cache_worker, [(str(tmp_path), paths)] * 2)
    assert sum(count for count, _ in results) == len(paths)  # each image computed once
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_array_equal(a, b)


# --- models -----------------------------------------------------------------------------------


def test_cnn_ref_architecture_is_the_original():
    net = ReferenceCNN((1, 20, 111), n_classes=10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 16),
        (16, 32),
        (32, 64),
        (64, 128),
    ]
    assert {(c.kernel_size, c.stride, c.padding) for c in convs} == {((3, 3), (1, 1), (2, 2))}
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 4
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == 4
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(128 * 3 * 8, 10)]
    assert not any(isinstance(m, torch.nn.Softmax) for m in net.modules())  # logits out
    assert net(torch.zeros(2, 1, 20, 111)).shape == (2, 10)


@pytest.mark.slow
def test_cnn_ref_learns_from_the_first_second(split, fitted_cnn_ref):
    _, _, x_test, y_test = split
    assert fitted_cnn_ref.input_shape_ == (1, 20, 111)
    accuracy = (fitted_cnn_ref.predict(x_test) == y_test).mean()
    # measured 0.50 here (0.46-0.75 over 6 data/split seeds); chance is 0.1
    assert accuracy >= 0.3


@pytest.mark.slow
def test_cnn_learns_and_predicts_one_row_per_track(split, fitted_cnn):
    _, _, x_test, y_test = split
    proba = fitted_cnn.predict_proba(x_test)
    assert proba.shape == (len(x_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    accuracy = (fitted_cnn.classes_[proba.argmax(1)] == y_test).mean()
    # measured 0.875 here (0.75-0.875 over 6 data/split seeds); chance is 0.1
    assert accuracy >= 0.6
    assert fitted_cnn.input_shape_ == (1, 128, 129)  # 3 s of 128-band log-mel


def test_cnn_validation_split_keeps_each_track_on_one_side(split, feature_dir):
    x_train, y_train, _, _ = split
    model = CNNClassifier(validation_fraction=0.25, device="cpu", cache_dir=feature_dir)
    labels = model._encode_labels(x_train, y_train)
    x, rows = model._to_tensor(x_train, fit=True)
    assert len(x) == 2 * len(x_train)  # two 3 s segments per 6 s clip
    train, val = model._validation_split(labels, rows, model._groups(x_train), seed=0)
    assert len(train) and len(val)
    assert set(rows[train]).isdisjoint(rows[val])
    assert sorted(np.concatenate([train, val])) == list(range(len(x)))


def test_overlapping_segments_start_every_hop_and_keep_every_frame():
    image = np.arange(3 * 10, dtype=np.float32).reshape(3, 10)
    apart = cut_segments(image, 4)
    assert apart.shape == (2, 3, 4) and (apart[1] == image[:, 4:8]).all()
    overlapping = cut_segments(image, 4, hop=2)
    assert overlapping.shape == (4, 3, 4)  # starts 0, 2, 4, 6
    for index, start in enumerate((0, 2, 4, 6)):
        assert (overlapping[index] == image[:, start : start + 4]).all()
    assert (cut_segments(image, 4, hop=4) == apart).all()


def test_test_overlap_adds_prediction_segments_only(split, fitted_cnn):
    x_train, _, x_test, y_test = split
    model = copy.deepcopy(fitted_cnn).set_params(test_overlap=0.5)  # the default
    apart = copy.deepcopy(fitted_cnn).set_params(test_overlap=0.0)
    assert len(apart._to_tensor(x_test, fit=False)[0]) == 2 * len(x_test)
    x, rows = model._to_tensor(x_test, fit=False)
    assert len(x) == 3 * len(x_test)  # 6 s clips: 3 s segments at 0, 1.5 and 3 s
    assert np.bincount(rows).tolist() == [3] * len(x_test)
    assert len(model._to_tensor(x_train, fit=True)[0]) == 2 * len(x_train)  # training: apart
    proba = model.predict_proba(x_test)
    assert proba.shape == (len(x_test), 10)
    assert not np.allclose(proba, apart.predict_proba(x_test))  # more segments averaged
    assert (model.classes_[proba.argmax(1)] == y_test).mean() >= 0.6


@pytest.mark.slow
def test_cosine_schedule_and_mixup_train_a_learning_model(split, feature_dir):
    x_train, y_train, x_test, y_test = split
    params = dict(epochs=12, batch_size=16, patience=None, device="cpu", cache_dir=feature_dir)
    cosine = CNNClassifier(lr_schedule="cosine", mixup=0.4, **params).fit(x_train, y_train)
    lrs = [m["lr"] for m in cosine.history_]
    expected = [2e-3 * 0.5 * (1 + np.cos(np.pi * e / 12)) for e in range(12)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert lrs[0] == 2e-3 and lrs[-1] < 1e-4
    assert (cosine.predict(x_test) == y_test).mean() >= 0.6  # chance is 0.1
    again = CNNClassifier(lr_schedule="cosine", mixup=0.4, **params).fit(x_train, y_train)
    np.testing.assert_array_equal(again.predict_proba(x_test), cosine.predict_proba(x_test))
    plain = CNNClassifier(lr_schedule="cosine", **params).fit(x_train, y_train)
    assert [m["train_loss"] for m in plain.history_] != [m["train_loss"] for m in cosine.history_]
    constant = CNNClassifier(lr_schedule="constant", **params).fit(x_train[:8], y_train[:8])
    assert {m["lr"] for m in constant.history_} == {2e-3}


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("lr_schedule", "step", "lr_schedule must be one of"),
        ("test_overlap", 1.0, "test_overlap must be in"),
        ("mixup", -0.1, "mixup must be >= 0"),
    ],
)
def test_cnn_refuses_bad_training_options(split, param, value, message):
    x_train, y_train, _, _ = split
    with pytest.raises(ValueError, match=message):
        CNNClassifier(device="cpu", **{param: value}).fit(x_train, y_train)


def test_tracks_without_audio_are_named(gtzan):
    with pytest.raises(DataError, match="row 1 of X has no audio file"):
        CNNClassifier(device="cpu").fit(np.array([gtzan[0][0], ""], dtype=object), ["a", "b"])


def test_clone_and_registry_round_trip(feature_dir):
    from bench.registry import create

    model = create("cnn", dropout=0.1, channels=(8, 16, 32, 64), cache_dir=feature_dir)
    assert isinstance(model, CNNClassifier)
    params = model.get_params()
    assert params["dropout"] == 0.1 and params["cache_dir"] == feature_dir
    assert clone(model).get_params() == params
    reference = create("cnn_ref", device="cpu", random_state=3)
    assert clone(reference).get_params() == reference.get_params()


def test_search_space_builds_valid_models():
    import optuna

    from bench.registry import get

    spec = get("cnn")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        model = spec.create(**spec.search_space(study.ask()))
        assert isinstance(model, CNNClassifier) and len(model.channels) == 4


def test_skops_round_trip_gives_identical_probabilities(split, fitted_cnn, tmp_path):
    from bench.artifacts import load_model, save_model

    _, _, x_test, _ = split
    loaded = load_model(save_model(fitted_cnn, tmp_path / "model.skops"))
    np.testing.assert_array_equal(loaded.predict_proba(x_test), fitted_cnn.predict_proba(x_test))


def test_registering_audio_models_does_not_import_torch():
    code = "import sys, bench.models.audio; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
