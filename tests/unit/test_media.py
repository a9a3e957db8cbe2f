"""Media decoding: probing, scene cuts, audio decoding, spectrogram windows and clear errors for bad files."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from core.settings import MediaSettings
from index.media.audio import (
    iter_audio_chunks,
    load_audio,
    mel_filterbank,
    spectrogram_windows,
)
from index.media.errors import MediaError
from index.media.probe import probe
from index.media.video import iter_scenes
from tests.media_factory import (
    FASTSTART,
    SCENE_COLORS,
    make_scene_video,
    make_silence_wav,
    make_tone_wav,
    scene_pattern,
    write_audio,
)
from tests.scene_videos import make_pan_video, make_scenes_video, photo, texture

SR = 16000


def tone(seconds: float, freq: float = 440.0, rate: int = SR) -> np.ndarray:
    """Return a sine at ``freq`` Hz, amplitude 0.5, as float32."""
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int = SR) -> float:
    """Return the frequency of the strongest FFT bin."""
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def scene_video(media_dir: Path) -> Path:
    """20 s, 4 scenes of 5 s each, with a 20 s 440 Hz audio track."""
    return make_scene_video(media_dir / "scenes.mp4", SCENE_COLORS[:4], scene_s=5.0, with_audio=tone(20.0))


@pytest.fixture(scope="module")
def silent_video(media_dir: Path) -> Path:
    """4 scenes of 2.3 s each (cuts between sample times), no audio track."""
    return make_scene_video(media_dir / "offbeat.mp4", SCENE_COLORS[:4], scene_s=2.3, fps=10, size=(320, 180))


# --- probe -----------------------------------------------------------------------------------------


def test_probe_describes_video_and_audio(scene_video: Path, media_dir: Path) -> None:
    info = probe(scene_video)
    assert (info.kind, info.has_video, info.has_audio) == ("video", True, True)
    assert (info.width, info.height, info.fps, info.video_codec) == (640, 360, 30.0, "h264")
    assert info.duration_s == pytest.approx(20.0, abs=0.1)
    assert info.sample_rate == SR

    audio = probe(make_tone_wav(media_dir / "probe.wav", 1.5))
    assert (audio.kind, audio.has_video, audio.audio_codec, audio.sample_rate) == ("audio", False, "pcm_s16le", SR)
    assert audio.duration_s == pytest.approx(1.5, abs=0.01)


# --- scenes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_scenes_follow_the_cuts(scene_video: Path, detector: str) -> None:
    scenes = list(iter_scenes(scene_video, MediaSettings(scene_detector=detector)))
    assert len(scenes) == 4
    assert scenes[0].t_start == 0.0
    assert scenes[-1].t_end == pytest.approx(20.0, abs=0.1)
    for before, after in zip(scenes, scenes[1:], strict=False):
        assert before.t_end == after.t_start
    for scene, cut in zip(scenes[1:], (5.0, 10.0, 15.0), strict=True):
        # A cut is seen at the first detector sample (10 per second) on or after it.
        assert cut - 1e-6 <= scene.t_start <= cut + 0.1 + 1e-6, (cut, scene.t_start)
    for scene in scenes:
        assert scene.t_start <= scene.frame_time < scene.t_end


def test_scene_cuts_between_samples_are_bracketed(silent_video: Path) -> None:
    scenes = list(iter_scenes(silent_video, MediaSettings()))
    assert len(scenes) == 4
    for scene, cut in zip(scenes[1:], (2.3, 4.6, 6.9), strict=True):
        assert cut - 1e-6 <= scene.t_start <= cut + 0.1 + 1e-6
        assert scene.t_start <= scene.frame_time < scene.t_end
    assert scenes[-1].t_end == pytest.approx(9.2, abs=0.11)


def test_scene_frame_comes_from_its_scene(scene_video: Path) -> None:
    scenes = list(iter_scenes(scene_video, MediaSettings()))
    third = next(s for s in scenes if 10.0 <= s.frame_time < 15.0)
    assert third.frame.mode == "RGB" and third.frame.size == (640, 360)
    means = [scene_pattern(i, color, (640, 360)).mean(axis=(0, 1)) for i, color in enumerate(SCENE_COLORS[:4])]
    observed = np.asarray(third.frame, dtype=np.float64).mean(axis=(0, 1))
    distances = [float(np.abs(observed - mean).sum()) for mean in means]
    assert int(np.argmin(distances)) == 2
    assert distances[2] < 20


def test_scenes_stream_lazily(scene_video: Path) -> None:
    scenes = iter_scenes(scene_video, MediaSettings())
    first = next(scenes)
    assert (first.t_start, first.t_end) == (0.0, 5.0)
    scenes.close()


def test_textures_of_one_palette_are_cut(media_dir: Path) -> None:
    # Three busy textures with identical colour histograms: the case a histogram detector misses.
    palette = np.array([(30, 30, 120), (200, 60, 60), (240, 220, 200), (20, 140, 40)])
    pictures = [texture(seed, (640, 360), palette) for seed in (1, 2, 3)]
    truth = make_scenes_video(media_dir / "textures.mp4", pictures, [4.0, 4.0, 4.0], [("cut", 0), ("cut", 0)])
    scenes = list(iter_scenes(media_dir / "textures.mp4", MediaSettings()))
    assert [round(s.t_start, 1) for s in scenes] == [0.0, *truth.hard]


def test_dissolve_and_fade_through_black_are_cut_at_their_midpoint(media_dir: Path) -> None:
    pictures = [photo(seed, (480, 270)) for seed in (11, 12, 13)]
    joins = [("dissolve", 1.0), ("black", 1.6)]
    truth = make_scenes_video(media_dir / "fades.mp4", pictures, [4.0, 4.0, 4.0], joins)
    cuts = [s.t_start for s in iter_scenes(media_dir / "fades.mp4", MediaSettings())][1:]
    assert len(cuts) == 2
    for cut, midpoint in zip(cuts, truth.gradual, strict=True):
        assert abs(cut - midpoint) <= 0.5


def test_a_pan_and_a_zoom_are_one_scene(media_dir: Path) -> None:
    canvas = photo(7, (1280, 720))
    make_pan_video(media_dir / "pan.mp4", canvas, (480, 270), 8.0, speed=(3.0, 0.5), zoom=0.002)
    scenes = list(iter_scenes(media_dir / "pan.mp4", MediaSettings()))
    assert [(s.t_start, round(s.t_end, 1)) for s in scenes] == [(0.0, 8.0)]


# --- audio -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3", ".m4a"])
def test_load_audio_formats(media_dir: Path, suffix: str) -> None:
    # Written at 22.05 kHz so that decoding must resample to 16 kHz.
    path = write_audio(media_dir / f"tone{suffix}", tone(2.0, rate=22050), sample_rate=22050)
    samples = load_audio(path, MediaSettings())
    assert samples.dtype == np.float32 and samples.ndim == 1
    # Lossy codecs add up to one frame of encoder delay or padding.
    assert len(samples) / SR == pytest.approx(2.0, abs=0.07)
    assert dominant_frequency(samples) == pytest.approx(440.0, abs=2.0)
    assert 0.4 < float(np.abs(samples).max()) < 0.6


def test_load_audio_from_video_track(scene_video: Path) -> None:
    samples = load_audio(scene_video, MediaSettings())
    assert len(samples) / SR == pytest.approx(20.0, abs=0.07)
    assert dominant_frequency(samples) == pytest.approx(440.0, abs=1.0)


def test_audio_chunks_are_bounded_and_complete(media_dir: Path) -> None:
    path = make_tone_wav(media_dir / "five.wav", 5.0)
    chunks = list(iter_audio_chunks(path, 2.0))
    assert [len(c) for c in chunks] == [32000, 32000, 16000]
    np.testing.assert_array_equal(np.concatenate(chunks), load_audio(path, MediaSettings()))


# --- spectrograms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (20.0, [(i * 2.5, i * 2.5 + 5.0) for i in range(7)]),
        (21.0, [(i * 2.5, i * 2.5 + 5.0) for i in range(7)] + [(17.5, 21.0)]),
        (5.0, [(0.0, 5.0)]),
        (3.0, [(0.0, 3.0)]),
    ],
)
def test_spectrogram_window_ranges(seconds: float, expected: list[tuple[float, float]]) -> None:
    windows = list(spectrogram_windows(tone(seconds), MediaSettings()))
    assert [(w.t_start, pytest.approx(w.t_end)) for w in windows] == expected
    assert all(w.image.mode == "RGB" and w.image.size == (224, 224) for w in windows)


def test_spectrogram_of_silence_and_empty_audio() -> None:
    assert list(spectrogram_windows(np.zeros(0, dtype=np.float32), MediaSettings())) == []
    (window,) = spectrogram_windows(np.zeros(SR * 2, dtype=np.float32), MediaSettings())
    pixels = np.asarray(window.image).reshape(-1, 3)
    assert (pixels == pixels[0]).all()  # one flat colour: the darkest of the colour map
    assert pixels[0].sum() < 10


def test_spectrogram_shows_a_tone_as_one_bright_band() -> None:
    (window,) = spectrogram_windows(tone(5.0, 1000.0), MediaSettings())
    rows = np.asarray(window.image, dtype=np.float64).sum(axis=(1, 2))
    brightest = int(np.argmax(rows))
    # 1 kHz sits at about 37 % of the mel scale (up to 8 kHz); images put low frequencies at the bottom.
    assert 0.55 < brightest / 224 < 0.72
    assert rows[brightest] > 3 * np.median(rows)


def test_mel_filterbank_matches_whisper() -> None:
    spec = importlib.util.find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("openai-whisper is not installed")
    assets = Path(next(iter(spec.submodule_search_locations))) / "assets" / "mel_filters.npz"
    with np.load(assets) as reference:
        np.testing.assert_allclose(mel_filterbank(SR), reference["mel_80"], atol=1e-6)


# --- errors ----------------------------------------------------------------------------------------


def test_truncated_mp4_is_reported(scene_video: Path, media_dir: Path) -> None:
    data = scene_video.read_bytes()
    cut = media_dir / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated or corrupt"):
        list(iter_scenes(cut, MediaSettings()))


def test_truncated_faststart_mp4_fails_while_decoding(media_dir: Path) -> None:
    path = make_scene_video(media_dir / "fs.mp4", SCENE_COLORS[:2], scene_s=1.0, container_options=FASTSTART)
    data = path.read_bytes()
    cut = media_dir / "fs_cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    # The index is intact, so the file opens; the missing half is found while decoding.
    with pytest.raises(MediaError, match="truncated or corrupt"):
        list(iter_scenes(cut, MediaSettings()))


def test_text_file_named_mp4(media_dir: Path) -> None:
    path = media_dir / "notes.mp4"
    path.write_text("meeting notes, not a video\n" * 20)
    with pytest.raises(MediaError, match="not a media container.*text"):
        probe(path)
    with pytest.raises(MediaError, match="not a media container"):
        list(iter_scenes(path, MediaSettings()))


def test_random_bytes_are_not_media(media_dir: Path) -> None:
    path = media_dir / "noise.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()[1:])
    with pytest.raises(MediaError, match="not a media container"):
        load_audio(path, MediaSettings())


def test_empty_and_missing_files(media_dir: Path) -> None:
    empty = media_dir / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        load_audio(empty, MediaSettings())
    with pytest.raises(MediaError, match="no such file"):
        load_audio(media_dir / "absent.wav", MediaSettings())


def test_zero_sample_audio(media_dir: Path) -> None:
    path = media_dir / "nothing.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), SR, subtype="PCM_16")  # a header and no samples
    with pytest.raises(MediaError, match="zero-length"):
        load_audio(path, MediaSettings())


def test_audio_file_has_no_video_stream(media_dir: Path) -> None:
    with pytest.raises(MediaError, match="no video stream"):
        list(iter_scenes(make_silence_wav(media_dir / "quiet.wav", 1.0), MediaSettings()))


def test_video_without_audio_has_no_audio_stream(silent_video: Path) -> None:
    with pytest.raises(MediaError, match="no audio stream"):
        load_audio(silent_video, MediaSettings())


def test_subtitles_only_file_has_no_media_stream(media_dir: Path) -> None:
    path = media_dir / "captions.srt"
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nhello\n\n")
    with pytest.raises(MediaError, match="no audio or video stream"):
        probe(path)


def test_unsupported_codec(media_dir: Path) -> None:
    # A WAV whose format tag (0x1234) no FFmpeg decoder handles.
    data = bytes(3200)
    fmt = struct.pack("<HHIIHH", 0x1234, 1, SR, 2 * SR, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path = media_dir / "odd.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(MediaError, match="unsupported codec"):
        load_audio(path, MediaSettings())


def test_over_max_duration(scene_video: Path) -> None:
    settings = MediaSettings(max_duration_s=10)
    with pytest.raises(MediaError, match=r"duration 20 s exceeds the maximum of 10 s"):
        list(iter_scenes(scene_video, settings))
    with pytest.raises(MediaError, match="exceeds the maximum"):
        load_audio(scene_video, settings)


def test_slide_changes_are_cut_and_keyframes_are_not(media_dir: Path) -> None:
    # Text-only slide changes on grainy light backgrounds, 10 s each at 30 fps: x264 starts a new GOP every
    # 250 frames (8.3 s), whose re-encoded grain PySceneDetect alone scores as a cut.
    from tests.ocr_images import fonts, render

    rng = np.random.default_rng(4)
    slides = [
        np.asarray(render([f"Part {i}", "quarterly shipping volume"], fonts()[0], 26, rng, size=(640, 360)).image)
        for i in range(4)
    ]
    make_scenes_video(media_dir / "slides.mp4", slides, [10.0] * 4, [("cut", 0.0)] * 3, fps=30)
    scenes = list(iter_scenes(media_dir / "slides.mp4", MediaSettings()))
    assert [round(s.t_start, 1) for s in scenes] == [0.0, 10.0, 20.0, 30.0]
