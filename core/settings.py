"""One typed settings tree, read once from the environment (prefix ``SENSORIUM_``, nesting ``__``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EncoderSettings(BaseModel):
    """Which open_clip model embeds images and text, and where it runs."""

    model: str = "ViT-B-32"
    pretrained: str = "laion2b_s34b_b79k"
    device: str = "auto"
    batch_size: int = Field(default=32, ge=1, le=4096)
    seed: int = 0


class IngestSettings(BaseModel):
    """Where path ingest may read from and how hard it works."""

    allowed_roots: list[Path] | None = None
    workers: int = Field(default=2, ge=1, le=64)
    max_image_pixels: int = Field(default=64_000_000, ge=1)
    max_file_bytes: int = Field(default=2 * 1024**3, ge=1)
    # Distributed ingest: files per chunk job on the ``ingest`` queue (each chunk runs whole on one worker).
    chunk_size: int = Field(default=256, ge=1, le=100_000)


class IndexSettings(BaseModel):
    """Vector index backend choice and search tuning."""

    ivf_threshold: int = Field(default=200_000, ge=1)
    nlist: int = Field(default=0, ge=0)  # IVF lists; 0 = about 4 x sqrt(vectors), a power of two
    nprobe: int = Field(default=32, ge=1)
    oversample: int = Field(default=4, ge=1, le=100)
    use_gpu: bool = True


class MediaSettings(BaseModel):
    """How audio and video are cut into segments."""

    # Scene cuts: frames per second fed to the cut detector (PySceneDetect, on a downscaled stream).
    scene_fps: float = Field(default=10.0, ge=10, le=60)
    scene_detector: Literal["adaptive", "content"] = "adaptive"
    # Frame-change score (PySceneDetect's content_val, 0-255) a hard cut must reach; None = the detector's default.
    scene_threshold: float | None = Field(default=None, gt=0, le=255)
    audio_window_s: float = Field(default=5.0, gt=0)
    audio_hop_s: float = Field(default=2.5, gt=0)
    max_duration_s: float = Field(default=4 * 3600, gt=0)


class WhisperSettings(BaseModel):
    """Speech transcription engine."""

    enabled: bool = True
    backend: str = "faster-whisper"
    model: str = "tiny.en"
    device: str = "auto"
    beam_size: int = Field(default=1, ge=1, le=10)
    # Audio is transcribed in chunks this long, each with the last overlap_s of the one before (no seams).
    chunk_s: float = Field(default=60.0, ge=5, le=600)
    overlap_s: float = Field(default=4.0, ge=0, le=30)


class OcrSettings(BaseModel):
    """Text in images and video frames (PP-OCR through rapidocr-onnxruntime), read in a pass after embedding."""

    enabled: bool = True
    # Lines the recogniser is less sure of than this are dropped.
    min_confidence: float = Field(default=0.6, ge=0, le=1)
    device: str = "auto"  # auto (CUDA when onnxruntime-gpu can use it), cpu, cuda
    # A scene frame whose grey thumbnail differs from the previous scene's by less than this (0-255, the mean over
    # the most changed of 10x10 cells) reuses its text instead of running detection again.
    same_frame_difference: float = Field(default=3.0, ge=0, le=255)


class ThumbnailSettings(BaseModel):
    """Thumbnail rendering."""

    size: int = Field(default=256, ge=16, le=2048)
    quality: int = Field(default=85, ge=1, le=100)


class AuthSettings(BaseModel):
    """API authentication; ``disabled`` is for loopback development only."""

    disabled: bool = False


class ApiSettings(BaseModel):
    """REST server limits and behaviour."""

    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1)
    max_json_bytes: int = Field(default=1024**2, ge=1)
    rate_limit_per_minute: int = Field(default=600, ge=0)
    cors_origins: list[str] = Field(default_factory=list)
    url_ttl_s: int = Field(default=3600, ge=1)
    signing_key: str | None = None
    # GET /metrics (Prometheus text format) is open, like /healthz: scrapers rarely send credentials.
    metrics_enabled: bool = True


class JobSettings(BaseModel):
    """Job execution: leases, retries, queue bounds and the in-process executor."""

    lease_s: float = Field(default=60.0, gt=0)
    heartbeat_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    max_queue_depth: int = Field(default=100, ge=1)
    embedded_workers: int = Field(default=1, ge=1)
    allow_private_callbacks: bool = False
    callback_secret: str | None = None


class GeneratorSettings(BaseModel):
    """Generation: extra generator definitions and where pipelines run."""

    config_file: Path | None = None
    device: str = "auto"
    offload: bool = False


class AgentSettings(BaseModel):
    """The agent loop and its optional LLM planner."""

    generate_threshold: float = Field(default=0.25, ge=-1, le=1)
    default_count: int = Field(default=5, ge=1, le=100)
    planner_base_url: str | None = None
    planner_api_key: str | None = None
    planner_model: str | None = None
    planner_timeout_s: float = Field(default=10.0, gt=0)


class Settings(BaseSettings):
    """Every Sensorium setting; defaults give the embedded mode (SQLite, FAISS file, in-process jobs)."""

    model_config = SettingsConfigDict(env_prefix="SENSORIUM_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("sensorium-data")
    database_url: str | None = None
    broker_url: str | None = None
    # `sensorium serve` and `sensorium worker` log JSON lines unless this says text; other commands always log text.
    log_format: Literal["json", "text"] = "json"
    encoder: EncoderSettings = EncoderSettings()
    ingest: IngestSettings = IngestSettings()
    index: IndexSettings = IndexSettings()
    media: MediaSettings = MediaSettings()
    whisper: WhisperSettings = WhisperSettings()
    ocr: OcrSettings = OcrSettings()
    thumbnails: ThumbnailSettings = ThumbnailSettings()
    auth: AuthSettings = AuthSettings()
    api: ApiSettings = ApiSettings()
    jobs: JobSettings = JobSettings()
    generators: GeneratorSettings = GeneratorSettings()
    agent: AgentSettings = AgentSettings()

    def resolved_data_dir(self) -> Path:
        """Return the absolute data dir, creating it if needed."""
        path = self.data_dir.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolved_database_url(self) -> str:
        """Return the configured database URL, or SQLite inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir() / 'sensorium.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()


def reset_settings_cache() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
