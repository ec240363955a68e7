"""musicnn ported to torch: the weights' reader and checks, the port against the original
TensorFlow code's outputs (``tests/fixtures/musicnn_reference.npz``, made as
``tests/fixtures/README.md`` says), offline use, and the probes built on it.

Tolerance: 1e-4. Absolute for the taggram, ``penultimate`` and VGG's ``pool5`` (values of
order 1); relative for ``max_pool``, whose front-end values reach ~90 where TensorFlow's own
float32 rounding is ~4e-4 (measured against the same graph in float64).
"""

from __future__ import annotations

import socket
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, WEIGHTS
from sklearn.base import clone

from bench import artifacts, registry
from bench.data.gtzan import read_clip
from bench.errors import BenchError
from bench.features.pretrained import checkpoint, weights
from bench.features.pretrained.embed import Embedder, clip_embeddings, layer_columns
from bench.features.pretrained.musicnn import MTT_LABELS, LogMel, build, patches

FIXTURE = Path(__file__).parent / "fixtures" / "musicnn_reference.npz"
CLIPS = ("blues/blues.00013", "classical/classical.00013", "metal/metal.00003")
AUDIO = SHARED_DATA / "gtzan" / "genres_original"


def _close(port: np.ndarray, original: np.ndarray, layer: str, what: str) -> None:
    relative = 1e-4 if layer == "max_pool" else 0.0
    np.testing.assert_allclose(port, original, rtol=relative, atol=1e-4, err_msg=what)


@pytest.fixture(scope="module")
def fetched() -> Path:
    missing = [m for m in weights.ARCHITECTURE if not weights.weight_file(m, WEIGHTS).is_file()]
    if missing:
        pytest.skip(f"musicnn weights not in {WEIGHTS}: run `bench weights fetch musicnn`")
    return WEIGHTS


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURE))


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    if not AUDIO.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set BENCH_SHARED_DATA)")
    return {Path(c).name: read_clip(AUDIO / f"{c}.wav", 16000)[0] for c in CLIPS}


@pytest.fixture(scope="module")
def port_outputs(fetched: Path, clips) -> dict[str, dict[str, np.ndarray]]:
    """Every output of three models on the three clips, through bench's reader at 16 kHz."""
    found = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_WEIGHTS", str(fetched))
        for model in ("MSD_musicnn", "MTT_musicnn", "MSD_vgg"):
            embedder = Embedder(model, "cpu")
            found[model] = dict(zip(clips, embedder.waves(list(clips.values())), strict=True))
    return found


def _varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A LevelDB block: prefix-compressed entries, one restart point, then its trailer."""
    body, previous = b"", b""
    for key, value in entries:
        shared = len(next((p for p in (previous[:i] for i in range(len(previous), -1, -1))
                           if key.startswith(p)), b""))  # fmt: skip
        body += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        body += key[shared:] + value
        previous = key
    return body + struct.pack("<II", 0, 1) + b"\0" * 5


def test_checkpoint_reader_reads_a_table_written_by_the_spec(tmp_path: Path) -> None:
    """A bundle written here from the format's description (not by the reader's code)."""
    kernel = np.arange(24, dtype="<f4").reshape(2, 3, 4)
    bias = np.array([1.5, -2.0], dtype="<f4")
    data = bias.tobytes() + kernel.tobytes()

    def entry(shape: tuple[int, ...], offset: int, size: int) -> bytes:
        sizes = [b"\x08" + _varint(s) for s in shape]
        dims = b"".join(b"\x12" + _varint(len(d)) + d for d in sizes)
        fields = b"\x08\x01" + b"\x12" + _varint(len(dims)) + dims
        return fields + b"\x20" + _varint(offset) + b"\x28" + _varint(size) + b"\x35\0\0\0\0"

    items = [(b"", b"\x08\x01"), (b"dense/bias", entry((2,), 0, 8)),
             (b"dense/kernel", entry((2, 3, 4), 8, 96))]  # fmt: skip
    blocks = _block(items)
    index = _block([(b"dense/kernel", _varint(0) + _varint(len(blocks) - 5))])
    meta = _block([])
    table = blocks + index + meta
    handles = _varint(len(blocks) + len(index)) + _varint(len(meta) - 5)
    handles += _varint(len(blocks)) + _varint(len(index) - 5)
    footer = handles + b"\0" * (40 - len(handles)) + struct.pack("<Q", checkpoint.TABLE_MAGIC)
    (tmp_path / ".index").write_bytes(table + footer)
    (tmp_path / ".data-00000-of-00001").write_bytes(data)
    tensors = checkpoint.read_checkpoint(tmp_path)
    assert sorted(tensors) == ["dense/bias", "dense/kernel"]
    np.testing.assert_array_equal(tensors["dense/kernel"], kernel)
    np.testing.assert_array_equal(tensors["dense/bias"], bias)
    (tmp_path / ".index").write_bytes(table + footer[:-8] + b"\0" * 8)
    with pytest.raises(BenchError, match="not a TensorFlow checkpoint index"):
        checkpoint.read_checkpoint(tmp_path)


def test_missing_or_altered_weights_are_one_line_errors_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(BenchError) as missing:
        weights.load_state("MSD_musicnn", tmp_path)
    assert "\n" not in str(missing.value) and "`bench weights fetch musicnn`" in str(missing.value)
    state = {"w": np.ones((2, 3), dtype=np.float32)}
    target = weights.weight_file("MSD_musicnn", tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(weights.to_safetensors(state, {"licence": "ISC"}))
    with pytest.raises(BenchError) as altered:
        weights.load_state("MSD_musicnn", tmp_path)
    message = str(altered.value)
    assert "\n" not in message and "SHA-256" in message and "bench weights fetch" in message
    read = weights.read_safetensors(target.read_bytes(), target)
    np.testing.assert_array_equal(read["w"], state["w"])


def test_fetch_refuses_a_wheel_whose_hash_is_not_musicnns(tmp_path: Path, capsys) -> None:
    from bench.cli import main

    wheel = tmp_path / weights.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("musicnn/MSD_musicnn/.index", b"forged")
    assert main(["weights", "fetch", "musicnn", "--wheel", str(wheel), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing it" in err[0]
    assert not (tmp_path / "musicnn").exists()


def test_converted_weights_hold_every_variable_of_the_checkpoint(fetched: Path) -> None:
    """musicnn's data file, 9,465,596 bytes, is 4 x (3 x 787,159 trained values, with Adam's
    two slots, + 4,920 batch-norm statistics + 2 step counters): all of them but the slots
    and counters are converted; VGG's 7,274,112 likewise."""
    sizes = {"musicnn": (787_159, 4_920, 9_465_596), "vgg": (605_748, 1_282, 7_274_112)}
    for model, arch in weights.ARCHITECTURE.items():
        state = weights.load_state(model, fetched)
        trained, statistics, data_bytes = sizes[arch]
        assert sum(p.numel() for p in build(arch, state).parameters()) == trained
        assert sum(v.size for v in state.values()) == trained + statistics
        assert 4 * (3 * trained + statistics + 2) == data_bytes


def test_logmel_is_the_originals_up_to_float16_ties(clips, reference) -> None:
    """librosa's STFT, Slaney mel bank and float16 rounding: at most 0.05% of the first
    patch's bins round to a neighbouring float16 (float32 sums in another order)."""
    for name, wave in clips.items():
        mel = (10 ** LogMel()(torch.from_numpy(wave))[:187].numpy() - 1) / 10000
        original = reference[f"{name}/mel16"].astype(np.float32)
        mine = mel.astype(np.float16).astype(np.float32)
        assert (mine != original).mean() <= 5e-4, name
        np.testing.assert_allclose(mine, original, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("model", sorted(weights.ARCHITECTURE))
def test_network_matches_the_original_on_the_same_input(fetched, reference, model) -> None:
    arch = weights.ARCHITECTURE[model]
    net = build(arch, weights.load_state(model, fetched))
    for name in (Path(c).name for c in CLIPS):
        x = np.log10(10000 * reference[f"{name}/mel16"].astype(np.float32) + 1)
        with torch.inference_mode():
            out = net(torch.from_numpy(x)[None])
        for layer, value in out.items():
            original = reference[f"{name}/{model}/{layer}"][0]
            _close(value[0].numpy(), original, layer, f"{model} {name} {layer}")


def test_port_matches_the_original_end_to_end(port_outputs, reference) -> None:
    """bench's reader, log-mel and network against the original's librosa log-mel and graph,
    per patch (the fixture's first three; the taggram's every patch) and per clip (means)."""
    for model, per_clip in port_outputs.items():
        arch = weights.ARCHITECTURE[model]
        for name, outputs in per_clip.items():
            assert outputs.shape == (10, 1003 if arch == "musicnn" else 306)
            for layer in ("taggram", "pool5") if arch == "vgg" else ("taggram", "max_pool",
                                                                       "penultimate"):  # fmt: skip
                value = outputs[:, layer_columns(model, layer)]
                original = reference[f"{name}/{model}/{layer}"]
                _close(value[: len(original)], original, layer, f"{model} {name} {layer}")
                mean = reference[f"{name}/{model}/{layer}_mean"]
                _close(value.mean(axis=0), mean, layer, f"{model} {name} {layer} mean")


def test_mtt_top_tags_are_the_originals(port_outputs, reference) -> None:
    for name, outputs in port_outputs["MTT_musicnn"].items():
        mine = outputs[:, layer_columns("MTT_musicnn", "taggram")].mean(axis=0)
        theirs = reference[f"{name}/MTT_musicnn/taggram"].mean(axis=0)
        top = [MTT_LABELS[i] for i in np.argsort(-mine)[:5]]
        assert top == [MTT_LABELS[i] for i in np.argsort(-theirs)[:5]], name
    classical = port_outputs["MTT_musicnn"]["classical.00013"]
    top3 = np.argsort(-classical[:, layer_columns("MTT_musicnn", "taggram")].mean(axis=0))[:3]
    assert "classical" in [MTT_LABELS[i] for i in top3]


def test_short_clip_is_repeated_to_one_patch() -> None:
    logmel = torch.arange(100 * 96, dtype=torch.float32).reshape(100, 96)
    cut = patches(logmel)
    assert cut.shape == (1, 187, 96)
    assert torch.equal(cut[0, 100:], logmel[:87])


def test_embeddings_are_computed_with_every_socket_blocked(fetched, monkeypatch) -> None:
    if not AUDIO.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set BENCH_SHARED_DATA)")

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    for name in ("connect", "connect_ex", "sendto", "bind"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("pypi.org", 443))
    paths = [AUDIO / "jazz" / "jazz.00054.wav"]
    first = clip_embeddings(paths, "MSD_musicnn", "penultimate", "cpu")
    assert first.shape == (1, 200) and np.isfinite(first).all() and first.std() > 0.1


def _shared_clips() -> tuple[np.ndarray, np.ndarray]:
    if not AUDIO.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set BENCH_SHARED_DATA)")
    paths = sorted(AUDIO.glob("*/*.wav"))
    genres = sorted({p.parent.name for p in paths})
    codes = np.array([genres.index(p.parent.name) for p in paths])  # as bench fits models
    return np.array([str(p) for p in paths], dtype=object), codes


@pytest.fixture(scope="module")
def embeddings_cache(tmp_path_factory) -> str:
    """One embedding cache for the probe tests: the 20 clips are embedded once (~20 s)."""
    return str(tmp_path_factory.mktemp("embeddings"))


def test_probe_learns_genres_from_one_clip_each_and_reloads(
    fetched, embeddings_cache, tmp_path, monkeypatch
):
    """Leave-one-out over the 20 shared clips (one training clip of the held-out genre):
    ~0.1 by chance, 0.35 measured; then a saved probe predicts the same through skops and
    the served model, with its embeddings read from the cache (no network built)."""
    from sklearn.model_selection import LeaveOneOut, cross_val_score

    from bench.served import ServedModel

    X, y = _shared_clips()
    probe = registry.create("musicnn_probe", device="cpu", cache_dir=embeddings_cache)
    assert clone(probe).get_params() == probe.get_params()
    scores = cross_val_score(probe, X, y, cv=LeaveOneOut())
    assert scores.mean() >= 0.3
    probe.fit(X, y)
    assert (probe.predict(X) == y).mean() == 1.0
    monkeypatch.setattr(Embedder, "__init__", lambda *a: pytest.fail("embeddings recomputed"))
    path = artifacts.save_model(probe, tmp_path / artifacts.MODEL_FILE)
    artifacts.write_card(
        tmp_path / artifacts.CARD_FILE,
        model="musicnn_probe",
        classes=sorted({Path(p).parent.name for p in X}),
        input_kind="audio",
        feature_columns=[],
    )
    loaded = artifacts.load_model(path)
    np.testing.assert_allclose(loaded.predict_proba(X), probe.predict_proba(X), atol=1e-9)
    served = ServedModel.load(tmp_path).predict({"audio_path": list(X[:3])})
    np.testing.assert_allclose(served.to_numpy(), probe.predict_proba(X[:3]), atol=1e-9)


def test_probe_heads_and_a_missing_weight_file(tmp_path, monkeypatch) -> None:
    with pytest.raises(BenchError, match="head must be a tabular model"):
        registry.create("vgg_probe", head="cnn").fit(np.array(["x.wav"]), np.array([0]))
    with pytest.raises(BenchError, match="no parameter 'gama'"):
        registry.get("musicnn_probe").check({"head": "svm", "head_params": {"gama": 1.0}})
    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path / "none"))
    X, y = _shared_clips()
    with pytest.raises(BenchError) as missing:
        registry.create("musicnn_probe", device="cpu").fit(X[:2], y[:2])
    assert "\n" not in str(missing.value)
    fix = f"`bench weights fetch musicnn --wheel {weights.WHEEL_NAME}`)"
    assert str(missing.value).endswith(fix)


def test_probe_is_an_audio_member_of_the_multimodal_stack(
    fetched, shared_data, embeddings_cache
) -> None:
    from bench.data.gtzan import load_gtzan
    from bench.evaluate import model_inputs

    dataset = load_gtzan(shared_data / "gtzan")
    rows = np.flatnonzero([t in dataset.audio for t in dataset.tracks])
    X = model_inputs(dataset, "multimodal").iloc[rows]
    y = dataset.labels[rows]
    stack = registry.create(
        "stack_multimodal",
        tabular=["logreg"],
        audio=["musicnn_probe"],
        estimator_params={"musicnn_probe": {"cache_dir": embeddings_cache}},
        bag=2,
        device="cpu",
    )
    proba = stack.fit(X, y).predict_proba(X)
    assert proba.shape == (20, 10) and np.allclose(proba.sum(axis=1), 1)
    assert (proba.argmax(axis=1) == y).mean() >= 0.9


@pytest.mark.slow
def test_probe_runs_is_logged_and_predicts_like_its_pyfunc(
    fetched, shared_data, monkeypatch, capsys
) -> None:
    """`bench run` logs the probe like any model; `bench predict --run` and MLflow's pyfunc
    loader then give the same probabilities for a clip path."""
    import json

    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from bench.cli import main
    from bench.tracking import resolve_uri

    argv = ["run", "--suite", "gtzan", "--data-dir", str(shared_data / "gtzan")]
    assert main([*argv, "--models", "musicnn_probe", "--folds", "2", "--no-report"]) == 0
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/gtzan")
    (run, _) = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'job'")
    clips = [str(AUDIO / "metal" / "metal.00012.wav"), str(AUDIO / "jazz" / "jazz.00054.wav")]
    capsys.readouterr()
    assert main(["predict", "--run", run.info.run_id, "--json", *clips]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    printed = {row["path"]: row["proba"] for row in map(json.loads, lines)}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", resolve_uri())
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert loaded.metadata.get_input_schema().input_names() == ["audio_path"]
    proba = loaded.predict(pd.DataFrame({"audio_path": clips}))
    for row, clip in zip(proba.to_dict("records"), clips, strict=True):
        assert row.keys() == printed[clip].keys()
        assert all(abs(p - printed[clip][genre]) <= 1e-6 for genre, p in row.items())
