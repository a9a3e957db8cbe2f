"""Open media files with PyAV and describe their streams, turning every failure into a clear MediaError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.settings import MediaSettings
from index.media.errors import MediaError

if TYPE_CHECKING:
    from av.container import InputContainer

# Leading bytes of containers FFmpeg reads: a file that starts like one but does not open is damaged,
# not a wrong file type. (offset, magic, format name)
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/QuickTime"),
    (4, b"moov", "MP4/QuickTime"),
    (4, b"mdat", "MP4/QuickTime"),
    (4, b"free", "MP4/QuickTime"),
    (4, b"wide", "MP4/QuickTime"),
    (0, b"RIFF", "RIFF (WAV/AVI)"),
    (0, b"OggS", "Ogg"),
    (0, b"fLaC", "FLAC"),
    (0, b"ID3", "MP3"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"FLV", "FLV"),
    (0, b"FORM", "AIFF"),
    (0, b"caff", "CAF"),
    (0, b"#!AMR", "AMR"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMV"),
    (0, b"\x00\x00\x01\xba", "MPEG program stream"),
)


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds: its kind, duration and the parameters of its first audio and video streams."""

    kind: Literal["audio", "video"]
    duration_s: float
    has_audio: bool
    has_video: bool
    container: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    audio_codec: str | None = None
    # Timestamps in the file count from here; decoders subtract it so times start at 0.
    start_time_s: float = 0.0
    # Container indexes of the streams described above, for decoders.
    video_stream: int | None = None
    audio_stream: int | None = None


def probe(path: str | Path, settings: MediaSettings | None = None) -> MediaInfo:
    """Return the MediaInfo of ``path``, or raise MediaError saying why it cannot be used."""
    settings = settings or MediaSettings()
    with open_container(path) as container:
        return describe(container, Path(path), settings.max_duration_s)


@contextmanager
def open_container(path: str | Path) -> Iterator[InputContainer]:
    """Open ``path`` for decoding and close it afterwards; open and decode failures become MediaError."""
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise MediaError(f"empty file (0 bytes): {path.name}")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise _open_error(path, exc) from exc
    try:
        yield container
    except av.FFmpegError as exc:
        # Raised mid-stream: the header was fine but the data ends early or is damaged.
        raise MediaError(f"truncated or corrupt: {path.name}: {exc.strerror or exc}") from exc
    finally:
        container.close()


def describe(container: InputContainer, path: Path, max_duration_s: float) -> MediaInfo:
    """Return the MediaInfo of an open container, raising MediaError for unusable streams or durations."""
    video = next((s for s in container.streams.video if not _is_cover_art(s)), None)
    audio = next(iter(container.streams.audio), None)
    if video is None and audio is None:
        raise MediaError(f"no audio or video stream in {path.name}")
    for stream in (video, audio):
        if stream is not None and stream.codec_context is None:
            raise MediaError(f"unsupported codec: FFmpeg has no decoder for {stream.type} stream #{stream.index}")
    duration = _duration(container, path)
    if duration <= 0:
        raise MediaError(f"zero-length media: {path.name} holds no samples or frames")
    if duration > max_duration_s:
        raise MediaError(f"duration {duration:.0f} s exceeds the maximum of {max_duration_s:.0f} s")
    start = container.start_time / 1_000_000 if container.start_time is not None else 0.0
    info: dict[str, Any] = {}
    if video is not None:
        rate = video.average_rate or video.guessed_rate
        info.update(
            width=video.codec_context.width,
            height=video.codec_context.height,
            fps=float(rate) if rate else None,
            video_codec=video.codec_context.name,
            video_stream=video.index,
        )
    if audio is not None:
        info.update(
            sample_rate=audio.codec_context.sample_rate,
            channels=audio.codec_context.channels,
            audio_codec=audio.codec_context.name,
            audio_stream=audio.index,
        )
    return MediaInfo(
        kind="video" if video is not None else "audio",
        duration_s=duration,
        has_audio=audio is not None,
        has_video=video is not None,
        container=container.format.name,
        start_time_s=start,
        **info,
    )


def _is_cover_art(stream: Any) -> bool:
    """Tell whether a video stream is an attached picture (album art in mp3/m4a), not moving video."""
    import av

    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _duration(container: InputContainer, path: Path) -> float:
    """Return the duration in seconds from the header, or from the packet timestamps when the header lacks it."""
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    stream_durations = [
        float(s.duration * s.time_base) for s in container.streams if s.duration is not None and s.time_base
    ]
    if stream_durations and max(stream_durations) > 0:
        return max(stream_durations)
    return _scan_duration(path)


def _scan_duration(path: Path) -> float:
    """Return the end time of the last packet, reading packets without decoding them."""
    import av

    end = start = 0.0
    with av.open(str(path), mode="r") as container:
        start = container.start_time / 1_000_000 if container.start_time is not None else 0.0
        for packet in container.demux():
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return max(0.0, end - start)


def _open_error(path: Path, exc: Exception) -> MediaError:
    """Explain why FFmpeg could not open ``path``: wrong file type, or a damaged media file."""
    with path.open("rb") as handle:
        head = handle.read(512)
    reason = getattr(exc, "strerror", None) or str(exc)
    if _looks_like_text(head):
        return MediaError(f"file is not a media container: {path.name} contains text")
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return MediaError(f"truncated or corrupt: {path.name} starts like {name} but cannot be read ({reason})")
    return MediaError(f"file is not a media container: FFmpeg recognises no format in {path.name} ({reason})")


def _looks_like_text(head: bytes) -> bool:
    """Tell whether the first bytes of a file decode as UTF-8 text without control characters."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # The 512-byte cut may split a multi-byte character; retry without the last few bytes.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return bool(text) and all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
