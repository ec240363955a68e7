"""musicnn and its VGG baseline (Pons & Serra 2019), ported from TensorFlow 1 to torch.

The networks, input and weights are those of the ``musicnn`` 0.1.0 package (ISC licence,
Music Technology Group, Universitat Pompeu Fabra; code by Jordi Pons): its ``models.py``,
``extractor.py`` and ``configuration.py`` were read to get every detail, and
``tests/test_musicnn.py`` checks the port against outputs of that code (to 1e-4).

Input, as ``extractor.batch_data`` computes it: 16 kHz mono; ``librosa.feature.melspectrogram``
with n_fft 512, hop 256, a periodic Hann window, frames centred on zero padding, power 2 and
librosa's 96-band Slaney mel filterbank (area-normalised, 0-8 kHz); the mel rounded to float16,
then ``log10(10000 * mel + 1)``; cut into non-overlapping patches of 187 frames (3 s). The
float16 rounding is kept because the weights were trained on it; the arithmetic after it is
float32, as it was under the numpy of 2019 (under numpy 2 the original's log overflows in
float16: see ``../shared/GUIDE.md`` section 4).

TensorFlow's conventions, translated once in :func:`state_dict_from_tf`: NHWC activations and
HWIO kernels (torch: NCHW, OIHW), dense kernels (in, out) (torch: (out, in)), batch norm with
epsilon 1e-3 (torch's default is 1e-5), and ``padding="same"`` that pads one more frame after
than before when the kernel is even (the temporal filters of 128, 64 and 32 frames).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
TF_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default

MTT_LABELS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
MSD_LABELS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)  # fmt: skip


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's ``htk=False``): linear to 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log = hz >= 1000.0
    return np.where(log, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log = mel >= 15.0
    return np.where(log, 1000.0 * np.exp(np.log(6.4) / 27 * (mel - 15.0)), mel * (200.0 / 3))


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """librosa's ``filters.mel(sr, n_fft, n_mels)`` (Slaney scale and area norm, float32),
    computed as librosa does: triangles in float64 stored as float32, then scaled."""
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_hz)
    weights = np.zeros((n_mels, len(fft_hz)), dtype=np.float32)
    for i in range(n_mels):
        lower, upper = -ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return weights


class LogMel(nn.Module):
    """(samples,) at 16 kHz -> (frames, 96) float32, musicnn's network input.

    The STFT is taken in float64 and stored as complex64, as librosa's is (its window is
    float64); power, mel and log are float32.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True, dtype=torch.float64))
        self.register_buffer("mel", torch.from_numpy(mel_filterbank()))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        padded = F.pad(wave.to(torch.float64)[None], (N_FFT // 2, N_FFT // 2))[0]
        frames = padded.unfold(0, N_FFT, HOP) * self.window
        power = torch.fft.rfft(frames).to(torch.complex64).abs().square()
        mel = power @ self.mel.T
        return torch.log10(10000 * mel.half().float() + 1)


def patches(logmel: torch.Tensor) -> torch.Tensor:
    """(frames, 96) -> (n, 187, 96): non-overlapping 3 s patches, a partial last one dropped,
    as ``batch_data`` cuts them. A clip under 3 s is repeated to one patch (musicnn's
    training padded short clips by repetition; the original extractor fails on them)."""
    if logmel.shape[0] < PATCH_FRAMES:
        logmel = logmel.repeat(math.ceil(PATCH_FRAMES / logmel.shape[0]), 1)
    n = logmel.shape[0] // PATCH_FRAMES
    return logmel[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS)


def _bn2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=TF_EPSILON)


def _bn1d(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=TF_EPSILON)


def _max_over_frequency(z: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``bn(relu(z)).amax(dim=3)`` of a (B, C, T, F) convolution output, computed on (B, C, T).

    ReLU and batch norm (an affine map per channel) are monotone, so the maximum over F of
    their output is their output of z's maximum over F, or of its minimum where the channel's
    scale is negative; rounding is monotone too, so the values are the same bit for bit. It
    spares two passes over the front-end's largest tensors (~14 MB a patch), a third of
    musicnn's CPU time.
    """
    last = z.permute(0, 2, 3, 1)  # (B, T, F, C): contiguous for channels-last z, 2.5x faster
    high, low = last.amax(dim=2).transpose(1, 2), last.amin(dim=2).transpose(1, 2)
    extreme = torch.where((bn.weight >= 0)[:, None], high, low)
    return F.batch_norm(F.relu(extreme), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        False, 0.0, bn.eps)  # fmt: skip


class Musicnn(nn.Module):
    """``build_musicnn``: timbral (7x38, 7x67) and temporal (128, 64, 32 frames) front-end,
    a dense mid-end of three 7-frame convolutions with residual sums, a back-end pooling max
    and mean over time into a 200-unit layer and 50 tag logits."""

    def __init__(self, n_tags: int = 50, midend: int = 64, backend: int = 200) -> None:
        super().__init__()
        self.bn_input = _bn2d(1)
        self.timbral = nn.ModuleList(nn.Conv2d(1, 204, (7, w)) for w in (38, 67))
        self.timbral_bn = nn.ModuleList(_bn2d(204) for _ in range(2))
        self.temporal = nn.ModuleList(nn.Conv2d(1, 51, (k, 1)) for k in (128, 64, 32))
        self.temporal_bn = nn.ModuleList(_bn2d(51) for _ in range(3))
        widths = (561, midend, midend)
        self.midend = nn.ModuleList(nn.Conv1d(c, midend, 7, padding=3) for c in widths)
        self.midend_bn = nn.ModuleList(_bn1d(midend) for _ in range(3))
        pooled = 2 * (561 + 3 * midend)
        self.bn_pool = _bn1d(pooled)
        self.dense = nn.Linear(pooled, backend)
        self.bn_dense = _bn1d(backend)
        self.tags = nn.Linear(backend, n_tags)
        self.to(memory_format=torch.channels_last)  # 2x faster convolutions through oneDNN

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 187, 96) log-mel patches -> taggram (B, 50), max_pool (B, 753), penultimate
        (B, 200)."""
        x = self.bn_input(x[:, None]).contiguous(memory_format=torch.channels_last)
        padded = F.pad(x, (0, 0, 3, 3))
        front = [
            _max_over_frequency(conv(padded), bn)
            for conv, bn in zip(self.timbral, self.timbral_bn, strict=True)
        ]
        for conv, bn in zip(self.temporal, self.temporal_bn, strict=True):
            k = conv.kernel_size[0]
            same = F.pad(x, (0, 0, (k - 1) // 2, k // 2))  # TensorFlow's "same"
            front.append(_max_over_frequency(conv(same), bn))
        mid = [torch.cat(front, dim=1)]  # (B, 561, T)
        for i, (conv, bn) in enumerate(zip(self.midend, self.midend_bn, strict=True)):
            out = bn(F.relu(conv(mid[-1])))
            mid.append(out if i == 0 else out + mid[-1])
        features = torch.cat(mid, dim=1)  # (B, 753, T)
        max_pool, mean_pool = features.amax(dim=2), features.mean(dim=2)
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # TF's interleaved concat
        penultimate = self.bn_dense(F.relu(self.dense(self.bn_pool(pooled))))
        taggram = torch.sigmoid(self.tags(penultimate))
        return {"taggram": taggram, "max_pool": max_pool, "penultimate": penultimate}


class VGG(nn.Module):
    """``vgg``: five 3x3 convolutions of 128 filters, each with batch norm and max pooling
    ((4, 1) stride 2, three (2, 2), then (4, 4)), flattened to 256 values and 50 tag logits."""

    POOLS = (
        ((4, 1), (2, 2)),
        ((2, 2), (2, 2)),
        ((2, 2), (2, 2)),
        ((2, 2), (2, 2)),
        ((4, 4), (4, 4)),
    )

    def __init__(self, n_tags: int = 50, filters: int = 128) -> None:
        super().__init__()
        self.bn_input = _bn2d(1)
        channels = (1,) + (filters,) * 4
        self.convs = nn.ModuleList(nn.Conv2d(c, filters, 3, padding=1) for c in channels)
        self.bns = nn.ModuleList(_bn2d(filters) for _ in channels)
        self.tags = nn.Linear(2 * filters, n_tags)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 187, 96) log-mel patches -> taggram (B, 50), pool5 (B, 256)."""
        x = self.bn_input(x[:, None]).contiguous(memory_format=torch.channels_last)
        for conv, bn, (size, stride) in zip(self.convs, self.bns, self.POOLS, strict=True):
            x = F.max_pool2d(bn(F.relu(conv(x))), size, stride)
        pool5 = x.permute(0, 2, 3, 1).flatten(1)  # TF flattens NHWC
        return {"taggram": torch.sigmoid(self.tags(pool5)), "pool5": pool5}


ARCHITECTURES = {"musicnn": Musicnn, "vgg": VGG}


def _bn_names(prefix: str, tf_name: str) -> dict[str, str]:
    return {
        f"{prefix}.weight": f"{tf_name}/gamma",
        f"{prefix}.bias": f"{tf_name}/beta",
        f"{prefix}.running_mean": f"{tf_name}/moving_mean",
        f"{prefix}.running_var": f"{tf_name}/moving_variance",
    }


def _tf_names(arch: str) -> dict[str, str]:
    """torch parameter name -> TF variable name, in the order TF created the variables."""
    names: dict[str, str] = {}
    bn = [f"batch_normalization_{i}" if i else "batch_normalization" for i in range(11)]
    names.update(_bn_names("bn_input", bn[0]))
    if arch == "vgg":
        for i in range(5):
            names[f"convs.{i}.weight"], names[f"convs.{i}.bias"] = (
                f"{i + 1}CNN/kernel",
                f"{i + 1}CNN/bias",
            )
            names.update(_bn_names(f"bns.{i}", bn[i + 1]))
        names["tags.weight"], names["tags.bias"] = "dense/kernel", "dense/bias"
        return names
    convs = [f"conv2d_{i}" if i else "conv2d" for i in range(8)]
    layers = [("timbral", 2), ("temporal", 3), ("midend", 3)]
    index = 0
    for layer, count in layers:
        for j in range(count):
            names[f"{layer}.{j}.weight"] = f"{convs[index]}/kernel"
            names[f"{layer}.{j}.bias"] = f"{convs[index]}/bias"
            names.update(_bn_names(f"{layer}_bn.{j}", bn[index + 1]))
            index += 1
    names.update(_bn_names("bn_pool", bn[9]))
    names.update(_bn_names("bn_dense", bn[10]))
    names["dense.weight"], names["dense.bias"] = "dense/kernel", "dense/bias"
    names["tags.weight"], names["tags.bias"] = "dense_1/kernel", "dense_1/bias"
    return names


def state_dict_from_tf(tensors: dict[str, np.ndarray], arch: str) -> dict[str, np.ndarray]:
    """The torch state dict (float32, contiguous, torch layouts) of a TF checkpoint of ``arch``
    (Adam slots and step counters dropped): HWIO -> OIHW kernels, (in, out) -> (out, in)."""
    state: dict[str, np.ndarray] = {}
    for name, tf_name in _tf_names(arch).items():
        value = np.asarray(tensors[tf_name], dtype=np.float32)
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
            if name.startswith("midend."):
                value = value[:, 0].transpose(0, 2, 1)  # (O, 1, 7, C) -> conv1d (O, C, 7)
        elif value.ndim == 2:
            value = value.T
        state[name] = np.ascontiguousarray(value)
    return state


def build(arch: str, state: dict[str, np.ndarray]) -> nn.Module:
    """``arch`` (``musicnn`` or ``vgg``) with ``state`` loaded, in eval mode."""
    model = ARCHITECTURES[arch]()
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{arch} weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.eval()
