"""The 57 Kaggle GTZAN handcrafted features, computed in torch from raw audio.

`features_30_sec.csv` of the Kaggle GTZAN dataset was made with librosa's defaults (22050 Hz,
2048-point Hann STFT, hop 512, centred frames with reflect padding as librosa < 0.10 did). This
module recomputes the same 57 columns batched on any torch device, so that synthetic or new audio
gets features comparable with the real table without depending on librosa (about 12x faster than
librosa 0.11 on one CPU thread; HPSS dominates both). Clips of equal length are batched together
and every feature shares one STFT.

Why one module (~500 lines): the 57 features share one STFT, one HPSS and one batch, and
must stay comparable with Kaggle's librosa columns as a whole (``FEATURE_VERSION`` versions
them together); split up, a change to one would silently leave the cache of the others stale.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bench.environment import cpu_threads

logger = logging.getLogger(__name__)

_FRAME_FEATURES = (
    "chroma_stft",
    "rms",
    "spectral_centroid",
    "spectral_bandwidth",
    "rolloff",
    "zero_crossing_rate",
    "harmony",
    "perceptr",
)
N_MFCC = 20
FEATURE_COLUMNS: tuple[str, ...] = (
    *(f"{name}_{stat}" for name in _FRAME_FEATURES for stat in ("mean", "var")),
    "tempo",
    *(f"mfcc{i}_{stat}" for i in range(1, N_MFCC + 1) for stat in ("mean", "var")),
)

FEATURE_VERSION = 2
"""Part of cached feature keys: bump when the computed values change, so caches are rebuilt."""

N_FFT = 2048
HOP = 512
N_MELS = 128
N_CHROMA = 12
HPSS_WIDTH = 31
ROLL_PERCENT = 0.85
TOP_DB = 80.0
# Samples are clamped to this magnitude: far beyond any audio scaling, yet small enough that
# powers and their sums stay finite in float32.
_MAX_ABS_SAMPLE = 1e6
_TINY = torch.finfo(torch.float32).tiny
# Below this the tuning band (150 Hz to 4 kHz) and the 8 s tempo window are (nearly) empty.
_MIN_SR = 1000
# Work sizes: on CPU the pipeline is memory-bound (one 30 s clip per batch measured fastest) and
# median-filter chunks are kept near cache size; on a GPU large ones amortise kernel launches.
_BATCH_SAMPLES = {"cpu": 700_000, "cuda": 20_000_000}
_MEDIAN_CHUNK = {"cpu": 65_536, "cuda": 8_000_000}


def gtzan_features(
    waves: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
    sr: int = 22050,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Compute the 57 Kaggle GTZAN features of each clip, in `FEATURE_COLUMNS` order.

    `waves` is a (B, T) array or tensor of mono audio, or a list of 1-D clips of any lengths.
    Non-finite samples are replaced by 0 and clips shorter than half a frame are zero-padded, so
    every row is finite. Returns a (B, 57) float64 array.
    """
    if sr < _MIN_SR:
        raise ValueError(f"sample rate must be at least {_MIN_SR} Hz, got {sr}")
    device = torch.device(device)
    clips = _as_clips(waves, device)
    out = np.zeros((len(clips), len(FEATURE_COLUMNS)))
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, clip in enumerate(clips):
        by_length[clip.shape[0]].append(index)
    budget = _BATCH_SAMPLES.get(device.type, _BATCH_SAMPLES["cuda"])
    with torch.inference_mode(), cpu_threads(1 if device.type == "cpu" else None):
        for length, indices in by_length.items():
            per_batch = max(1, budget // max(length, 1))
            for start in range(0, len(indices), per_batch):
                chunk = indices[start : start + per_batch]
                batch = torch.stack([clips[i] for i in chunk])
                out[chunk] = _batch_features(batch, sr).cpu().numpy()
    return out


def _as_clips(waves, device: torch.device) -> list[torch.Tensor]:
    """Turn any accepted input into sanitised 1-D float32 tensors on `device`."""
    if isinstance(waves, np.ndarray | torch.Tensor) and waves.ndim != 2:
        raise ValueError(f"waves must be (batch, samples), got shape {tuple(waves.shape)}")
    clips = []
    n_dirty = 0
    for index, item in enumerate(waves):
        if isinstance(item, torch.Tensor):
            clip = item.detach().to(device=device, dtype=torch.float32)
        else:
            clip = torch.tensor(np.asarray(item, dtype=np.float32), device=device)
        if clip.ndim != 1:
            raise ValueError(f"clip {index} must be 1-D audio, got shape {tuple(clip.shape)}")
        finite = torch.isfinite(clip)
        if not bool(finite.all()):
            n_dirty += 1
            clip = torch.where(finite, clip, 0.0)
        clips.append(clip.clamp(-_MAX_ABS_SAMPLE, _MAX_ABS_SAMPLE))
    if n_dirty:
        logger.warning("%d clip(s) had non-finite samples; they were replaced by 0", n_dirty)
    return clips


def _batch_features(x: torch.Tensor, sr: int) -> torch.Tensor:
    """All 57 features of a (B, T) batch of equal-length clips, as a (B, 57) float64 tensor."""
    if x.shape[-1] <= N_FFT // 2:  # reflect padding needs more samples than half a frame
        x = F.pad(x, (0, N_FFT // 2 + 1 - x.shape[-1]))
    window = torch.hann_window(N_FFT, device=x.device)
    spec = torch.stft(
        x, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True
    )
    power = spec.real.square() + spec.imag.square()
    mag = power.sqrt()
    log_mel = _log_mel(power, sr)
    mag64 = mag.double()  # (clip, bin, frame), frame-major in memory like the STFT
    centroid, bandwidth = _centroid_bandwidth(mag64, sr)
    frame_features = [
        _chroma(power, sr),
        _rms(x),
        centroid,
        bandwidth,
        _rolloff(mag64, sr),
        _zero_crossing_rate(x),
    ]
    stats = [s for feature in frame_features for s in _mean_var(feature.flatten(1))]
    stats += _hpss_stats(x, spec, mag, window)
    stats.append(_tempo(log_mel, sr))
    mfcc = (_dct_matrix(log_mel.device) @ log_mel).double()
    for coefficient in mfcc.unbind(1):
        stats += _mean_var(coefficient)
    return torch.stack(stats, dim=1)


def _mean_var(values: torch.Tensor) -> list[torch.Tensor]:
    """Mean and population variance per row, in float64 as the CSV's numpy statistics."""
    values = values.double()
    return [values.mean(1), values.var(1, correction=0)]


def _rms(x: torch.Tensor) -> torch.Tensor:
    """Frame RMS of the time signal (librosa pads it by reflection, unlike the ZCR)."""
    padded = F.pad(x[:, None], (N_FFT // 2, N_FFT // 2), mode="reflect")[:, 0]
    return padded.square().unfold(-1, N_FFT, HOP).mean(-1).sqrt()


def _zero_crossing_rate(x: torch.Tensor) -> torch.Tensor:
    """Sign changes per frame / frame length, counted with a cumulative sum instead of framing.

    As librosa: edge padding, |x| <= 1e-10 counts as +0, and a frame's first sample has no
    predecessor.
    """
    padded = F.pad(x[:, None], (N_FFT // 2, N_FFT // 2), mode="replicate")[:, 0]
    negative = torch.signbit(torch.where(padded.abs() <= 1e-10, 0.0, padded))
    changes = (negative[:, 1:] != negative[:, :-1]).to(torch.int32)
    before = F.pad(changes.cumsum(1, dtype=torch.int32), (1, 0))
    starts = torch.arange(0, x.shape[-1] // HOP + 1, device=x.device) * HOP
    return (before[:, starts + N_FFT - 1] - before[:, starts]).float() / N_FFT


def _fft_freqs(sr: int, device: torch.device) -> torch.Tensor:
    return torch.arange(N_FFT // 2 + 1, dtype=torch.float64, device=device) * (sr / N_FFT)


def _centroid_bandwidth(mag64: torch.Tensor, sr: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectral centroid and 2nd-order bandwidth from raw moments (float64, so no cancellation).

    Silent frames stay unnormalised, as in librosa, and so give 0.
    """
    freqs = _fft_freqs(sr, mag64.device)
    moments = torch.stack([torch.ones_like(freqs), freqs, freqs.square()]) @ mag64
    total = moments[:, 0]
    total = torch.where(total > _TINY, total, 1.0)
    centroid = moments[:, 1] / total
    bandwidth = (moments[:, 2] / total - centroid.square()).clamp_min(0).sqrt()
    return centroid, bandwidth


def _rolloff(mag64: torch.Tensor, sr: int) -> torch.Tensor:
    """Lowest frequency whose cumulative magnitude reaches 85% of the frame's total.

    Sums over blocks of 32 bins find each frame's crossing block and only that block is summed
    bin by bin: a cumulative sum over all 1025 bins is sequential, and took 5% of a clip.
    """
    by_frame = mag64.transpose(1, 2)  # (clip, frame, bin)
    width = 32
    n_blocks = (N_FFT // 2) // width  # the blocks cover all bins but the last (Nyquist) one
    blocks = by_frame[..., : n_blocks * width].unflatten(-1, (n_blocks, width))
    before = F.pad(blocks.sum(-1).cumsum(-1), (1, 0))  # the sum before each block, and of all
    threshold = ROLL_PERCENT * (before[..., -1] + by_frame[..., -1])
    crossing = (before[..., 1:] < threshold[..., None]).sum(-1, keepdim=True)
    block = blocks.gather(-2, crossing.clamp_max(n_blocks - 1)[..., None].expand(-1, -1, 1, width))
    cumulative = before.gather(-1, crossing) + block[..., 0, :].cumsum(-1)
    below = width * crossing[..., 0] + (cumulative < threshold[..., None]).sum(-1)
    # a frame whose blocks all stay below crosses at the Nyquist bin: 1024 + anything, clamped
    return _fft_freqs(sr, mag64.device)[below.clamp_max(N_FFT // 2)]


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    log_part = 15.0 + torch.log(hz.clamp_min(1000.0) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(hz >= 1000.0, log_part, hz * 3.0 / 200.0)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    log_part = 1000.0 * torch.exp((math.log(6.4) / 27.0) * (mel - 15.0))
    return torch.where(mel >= 15.0, log_part, mel * 200.0 / 3.0)


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, device: torch.device) -> torch.Tensor:
    """Slaney mel filterbank (128 bands, 0..sr/2, area-normalised triangles), as librosa's."""
    freqs = _fft_freqs(sr, torch.device("cpu"))
    mel_edges = torch.linspace(0.0, float(_hz_to_mel(torch.tensor(sr / 2.0))), N_MELS + 2)
    edges = _mel_to_hz(mel_edges.double())
    widths = edges.diff()
    offsets = edges[:, None] - freqs[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = torch.minimum(rising, falling).clamp_min(0)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.float().to(device)


@functools.lru_cache(maxsize=8)
def _dct_matrix(device: torch.device) -> torch.Tensor:
    """Orthonormal DCT-II rows 0..19 over the 128 mel bands (scipy's dct(type=2, norm='ortho'))."""
    k = torch.arange(N_MFCC, dtype=torch.float64)[:, None]
    n = torch.arange(N_MELS, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * k * (2 * n + 1) / (2 * N_MELS)) * math.sqrt(2.0 / N_MELS)
    basis[0] /= math.sqrt(2.0)
    return basis.float().to(device)


def _log_mel(power: torch.Tensor, sr: int) -> torch.Tensor:
    """Mel power in dB (ref 1, amin 1e-10), floored 80 dB below each clip's own maximum."""
    db = 10.0 * torch.log10((_mel_basis(sr, power.device) @ power).clamp_min(1e-10))
    return torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - TOP_DB)


def _chroma(power: torch.Tensor, sr: int) -> torch.Tensor:
    """Chroma from the power spectrogram with a per-clip tuned filterbank, max-normalised."""
    raw = _chroma_basis(_estimate_tuning(power, sr), sr) @ power
    peak = raw.amax(1, keepdim=True)
    return raw / torch.where(peak > _TINY, peak, 1.0)


def _estimate_tuning(power: torch.Tensor, sr: int) -> torch.Tensor:
    """Per-clip tuning offset in fractions of a semitone, as librosa's `estimate_tuning`.

    Parabolically interpolated spectral peaks between 150 Hz and 4 kHz (above 10% of the frame's
    maximum) that are at least as strong as the median peak vote in a 100-bin histogram of their
    deviation from equal temperament.
    """
    freqs = _fft_freqs(sr, torch.device("cpu"))
    in_range = torch.nonzero((freqs >= 150.0) & (freqs < min(4000.0, sr / 2.0))).flatten()
    lo, hi = int(in_range[0]), int(in_range[-1])
    band = power[:, lo - 1 : hi + 2]  # the range and one neighbour on each side
    loud = band * (band > 0.1 * power.amax(1, keepdim=True))
    centre = loud[:, 1:-1]
    is_peak = (centre > loud[:, :-2]) & (centre >= loud[:, 2:])
    clip, offset, frame = is_peak.nonzero(as_tuple=True)
    prev, mid, nxt = (band[clip, offset + i, frame] for i in range(3))
    slope = 0.5 * (nxt - prev)
    curvature = 2 * mid - nxt - prev
    shift = slope / (curvature + (curvature.abs() < _TINY).float())
    pitch = (offset + lo + shift) * (sr / N_FFT)
    strength = mid + 0.5 * slope * shift
    counts = torch.bincount(clip, minlength=power.shape[0]).tolist()
    tunings = []
    for clip_pitch, clip_strength in zip(pitch.split(counts), strength.split(counts), strict=True):
        voiced = clip_pitch > 0
        if not bool(voiced.any()):
            tunings.append(torch.zeros((), dtype=torch.float64, device=power.device))
            continue
        ordered = clip_strength[voiced].sort().values
        median = 0.5 * (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2])
        tunings.append(_pitch_tuning(clip_pitch[voiced & (clip_strength >= median)]))
    return torch.stack(tunings)


def _pitch_tuning(pitch: torch.Tensor) -> torch.Tensor:
    """Most common deviation (resolution 0.01 semitone) of `pitch` from A440 equal temperament."""
    deviation = torch.remainder(12.0 * torch.log2(pitch / (440.0 / 16)), 1.0).double()
    deviation = torch.where(deviation >= 0.5, deviation - 1.0, deviation)
    edges = torch.linspace(-0.5, 0.5, 101, dtype=torch.float64, device=pitch.device)
    index = ((deviation + 0.5) * 100).floor().long().clamp(0, 99)
    index -= (deviation < edges[index]).long()  # numpy.histogram's exact edge comparisons
    index += ((deviation >= edges[index + 1]) & (index != 99)).long()
    return edges[torch.bincount(index, minlength=100).argmax()]


def _chroma_basis(tuning: torch.Tensor, sr: int) -> torch.Tensor:
    """(B, 12, 1025) chroma filterbanks, one per tuning, as librosa's `filters.chroma`.

    Gaussian bumps in log-frequency around each pitch class, L2-normalised per FFT bin, weighted
    by a 2-octave-wide Gaussian centred on octave 5, rows starting at C.
    """
    device = tuning.device
    freqs = torch.arange(1, N_FFT, dtype=torch.float64, device=device) * (sr / N_FFT)
    a440 = 440.0 * 2.0 ** (tuning / N_CHROMA)
    octaves = N_CHROMA * torch.log2(freqs[None, :] / (a440[:, None] / 16.0))
    octaves = torch.cat([octaves[:, :1] - 1.5 * N_CHROMA, octaves], dim=1)
    widths = F.pad(octaves.diff(dim=1).clamp_min(1.0), (0, 1), value=1.0)
    classes = torch.arange(N_CHROMA, dtype=torch.float64, device=device)[None, :, None]
    half = N_CHROMA // 2
    distance = torch.remainder(octaves[:, None, :] - classes + half + 10 * N_CHROMA, N_CHROMA)
    weights = torch.exp(-0.5 * (2 * (distance - half) / widths[:, None, :]).square())
    weights = weights / weights.norm(dim=1, keepdim=True)
    weights = weights * torch.exp(-0.5 * ((octaves / N_CHROMA - 5.0) / 2.0).square())[:, None, :]
    weights = torch.roll(weights, -3, dims=1)
    return weights[:, :, : N_FFT // 2 + 1].float()


def _hpss_stats(
    x: torch.Tensor, spec: torch.Tensor, mag: torch.Tensor, window: torch.Tensor
) -> list[torch.Tensor]:
    """Mean and variance of librosa's harmonic and percussive waveforms.

    Median filters 31 wide across time (harmonic) and across frequency (percussive) give soft
    masks of power 2 (0.5 where both are 0, as librosa's; librosa also rescales before squaring,
    which only matters for magnitudes below 1e-19). The percussive waveform is the signal minus
    the harmonic one (the masks sum to 1 and the STFT inverts exactly), which saves a second
    inverse STFT. As in the old librosa that made the CSV, both waveforms end at the last full
    hop and are zero-padded to the clip's length.

    Everything after the time-axis filter runs frame-major, the layout `torch.stft` returns
    under its (clip, bin, frame) view, so the frequency-axis filter, the mask and the inverse
    FFT all read contiguous rows.
    """
    by_frame = mag.transpose(1, 2)  # (clip, frame, bin), contiguous for a fresh STFT
    harmonic_mag = _running_median(mag, HPSS_WIDTH).transpose(1, 2).contiguous().square()
    percussive_mag = _running_median(by_frame, HPSS_WIDTH).square()
    mask = torch.nan_to_num(harmonic_mag / (harmonic_mag + percussive_mag), nan=0.5)  # 0/0
    # a real mask times a complex spectrum is several times faster as complex times complex
    masked = spec.transpose(1, 2) * mask.to(spec.dtype)
    kept = HOP * (spec.shape[-1] - 1)
    harmonic = _inverse_stft(masked, window, kept)
    percussive = x[:, :kept] - harmonic
    return [
        *_zero_padded_mean_var(harmonic, x.shape[-1]),
        *_zero_padded_mean_var(percussive, x.shape[-1]),
    ]


def _inverse_stft(by_frame: torch.Tensor, window: torch.Tensor, length: int) -> torch.Tensor:
    """`torch.istft(..., center=True, length=length)` of a frame-major (clip, frame, bin) STFT.

    The same least-squares overlap-add (windowed frames summed, divided by the summed squared
    window), but with HOP dividing N_FFT the frames are added as N_FFT // HOP shifted blocks of
    HOP samples instead of torch's general fold, about 3x faster on CPU.
    """
    frames = torch.fft.irfft(by_frame, N_FFT, dim=-1) * window
    n_clips, n_frames = frames.shape[:2]
    parts = N_FFT // HOP
    blocks = frames.view(n_clips, n_frames, parts, HOP)
    signal = frames.new_zeros((n_clips, n_frames + parts - 1, HOP))
    envelope = window.square().view(parts, HOP)
    weight = window.new_zeros((n_frames + parts - 1, HOP))
    for part in range(parts):
        signal[:, part : part + n_frames] += blocks[:, :, part]
        weight[part : part + n_frames] += envelope[part]
    start = N_FFT // 2  # centred frames: drop the reflect padding
    signal = signal.view(n_clips, -1)[:, start : start + length]
    weight = weight.view(-1)[start : start + length]
    return signal / torch.where(weight > 1e-11, weight, 1.0)


def _zero_padded_mean_var(signal: torch.Tensor, length: int) -> list[torch.Tensor]:
    """Mean and variance of `signal` zero-padded to `length`, without materialising the padding."""
    signal = signal.double()
    mean = signal.sum(1) / length
    spread = (signal - mean[:, None]).square().sum(1) + (length - signal.shape[-1]) * mean.square()
    return [mean, spread / length]


def _running_median(x: torch.Tensor, width: int) -> torch.Tensor:
    """Exact running median along the last axis with scipy.ndimage's 'reflect' edges.

    `width` must be 2 * 2**k - 1 (31 for HPSS). Sorted runs of 2**k samples at every even offset
    are built by odd-even merges; two adjacent runs give the two middle values of a window one
    sample wider than `width`, and dropping its last or its first sample gives the medians at
    two neighbouring offsets. Only min/max are used, so it is exact on any device; row chunks
    keep the working set small (on CPU, within cache). On one core it is ~18x faster than
    scipy.ndimage.median_filter or unfold + median. (For rows shorter than half the width the
    edges repeat periodically, where scipy's rank filter extends them differently.)
    """
    run = (width + 1) // 2
    if run < 2 or width % 2 == 0 or run & (run - 1):
        raise ValueError(f"width must be 2 * 2**k - 1 with k >= 1, got {width}")
    n = x.shape[-1]
    half = width // 2
    right = half + n % 2  # one more when n is odd, so that outputs come in pairs
    if n >= right:
        padded = torch.cat([x[..., :half].flip(-1), x, x[..., n - right :].flip(-1)], dim=-1)
    else:
        index = torch.arange(-half, n + right, device=x.device) % (2 * n)
        padded = x.index_select(-1, torch.where(index >= n, 2 * n - 1 - index, index))
    rows = padded.reshape(-1, padded.shape[-1])
    out = torch.empty((rows.shape[0], n + n % 2), dtype=x.dtype, device=x.device)
    chunk = _MEDIAN_CHUNK.get(x.device.type, _MEDIAN_CHUNK["cuda"])
    step = max(1, chunk // rows.shape[-1])
    for start in range(0, rows.shape[0], step):
        out[start : start + step] = _median_of_rows(rows[start : start + step], run)
    return out[:, :n].reshape(x.shape)


def _median_of_rows(padded: torch.Tensor, run: int) -> torch.Tensor:
    """Medians of all windows of 2 * run - 1 samples along the last axis of `padded`.

    `padded` holds an even number n of outputs plus 2 * run - 2 samples of context.
    """
    even, odd = padded[..., 0::2], padded[..., 1::2]
    runs = torch.empty((2, *even.shape), dtype=padded.dtype, device=padded.device)
    torch.minimum(even, odd, out=runs[0])
    torch.maximum(even, odd, out=runs[1])
    size = 2
    while size < run:  # runs[:, :, p] holds samples 2p .. 2p + size - 1, sorted
        shift = size // 2
        runs = _merge_sorted(runs[..., : runs.shape[-1] - shift], runs[..., shift:])
        size *= 2
    pairs = (padded.shape[-1] - 2 * run + 2) // 2
    first = runs[..., :pairs]
    second = runs[..., run // 2 : run // 2 + pairs].flip(0)
    # the two middle values of the 2 * run samples from 2p to 2p + 2 * run - 1
    upper = torch.maximum(first, second).amin(0)
    lower = torch.minimum(first, second, out=second).amax(0)
    out = torch.empty((*padded.shape[:-1], 2 * pairs), dtype=padded.dtype, device=padded.device)
    last = padded[..., 2 * run - 1 :: 2]
    # the window without its last sample, then without its first
    torch.where(last <= lower, upper, lower, out=out[..., 0::2])
    torch.where(even[..., :pairs] <= lower, upper, lower, out=out[..., 1::2])
    return out


def _merge_sorted(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Merge runs sorted along dim 0 (length a power of two) with Batcher's odd-even network."""
    size = low.shape[0]
    merged = torch.empty((2 * size, *low.shape[1:]), dtype=low.dtype, device=low.device)
    torch.minimum(low, high, out=merged[:size])
    torch.maximum(low, high, out=merged[size:])
    gap = size // 2
    while gap >= 1:
        pairs = merged[gap : 2 * size - gap].view(-1, 2, gap, *low.shape[1:])
        smaller = torch.minimum(pairs[:, 0], pairs[:, 1])
        torch.maximum(pairs[:, 0], pairs[:, 1], out=pairs[:, 1])
        pairs[:, 0].copy_(smaller)
        gap //= 2
    return merged


def _tempo(log_mel: torch.Tensor, sr: int) -> torch.Tensor:
    """Global tempo (BPM) as librosa's `beat.beat_track` estimates it; 0 when nothing changes.

    Onset strength is the median over mel bands of the positive dB flux; its windowed
    autocorrelation (8 s, max-normalised, averaged over frames) is weighted by a log-normal prior
    around 120 BPM (one octave wide) and tempi above 320 BPM are excluded.
    """
    bands, frames = log_mel.shape[1], log_mel.shape[2]
    flux = (log_mel[:, :, 1:] - log_mel[:, :, :-1]).clamp_min(0)
    # the two middle values of each frame's bands (a partial sort: 1.5x faster than sorting)
    low = flux.topk(bands // 2 + 1, dim=1, largest=False, sorted=True).values
    median = 0.5 * (low[:, (bands - 1) // 2] + low[:, bands // 2])
    envelope = F.pad(median, (1 + N_FFT // (2 * HOP), 0))[:, :frames]

    win = int(8.0 * sr) // HOP
    half = win // 2
    ramp = torch.arange(half, device=log_mel.device, dtype=envelope.dtype) / half
    # numpy's linear_ramp padding to 0 at both ends
    padded = torch.cat([envelope[:, :1] * ramp, envelope, envelope[:, -1:] * ramp.flip(0)], dim=1)
    segments = padded.unfold(1, win, 1)[:, :frames] * torch.hann_window(win, device=log_mel.device)
    n_fft = 1 << (2 * win - 2).bit_length()
    spectrum = torch.fft.rfft(segments, n=n_fft)
    spectrum = spectrum.real.square() + spectrum.imag.square()
    autocorr = torch.fft.irfft(spectrum, n=n_fft)[..., :win]
    peak = autocorr.abs().amax(-1, keepdim=True)
    tempogram = (autocorr / torch.where(peak > _TINY, peak, 1.0)).mean(1).double().clamp_min(0)

    lags = torch.arange(win, dtype=torch.float64, device=log_mel.device)
    bpm = 60.0 * sr / (HOP * lags.clamp_min(1))
    log_prior = -0.5 * (torch.log2(bpm) - math.log2(120.0)).square()
    log_prior = torch.where((lags > 0) & (bpm < 320.0), log_prior, -math.inf)
    best = (torch.log1p(1e6 * tempogram) + log_prior).argmax(1)
    return torch.where(envelope.any(1), bpm[best], 0.0)
