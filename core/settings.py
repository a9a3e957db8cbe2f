"""One typed settings tree, read once from the environment (prefix ``SENSORIUM_``, nesting ``__``)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class EncoderSettings(BaseModel):
    """Which open_clip model embeds images and text, and where it runs."""

    model: str = "ViT-B-32"
    pretrained: str = "laion2b_s34b_b79k"
    device: str = "auto"
    batch_size: int = Field(default=32, ge=1, le=4096)
    seed: int = 0
    # auto: ONNX Runtime on CPU (measured faster, bench/encoder.py), torch on CUDA.
    runtime: Literal["auto", "torch", "onnx"] = "auto"
    # int8: ONNX Runtime dynamic quantization; its vectors get a model id of their own.
    quantize: Literal["none", "int8"] = "none"
    onnx_threads: int = Field(default=0, ge=0, le=256)  # ONNX Runtime intra-op threads; 0 = one per usable core
    export_dir: Path | None = None  # ONNX exports; unset = <data dir>/models
    query_cache_size: int = Field(default=1024, ge=0, le=1_000_000)  # text query vectors kept per process; 0 = off
    query_batch_wait_ms: float = Field(default=2.0, ge=0, le=50)  # serve: wait this long to batch queries; 0 = off
    query_batch_max: int = Field(default=32, ge=1, le=1024)


class IngestSettings(BaseModel):
    """Where path ingest may read from and how hard it works."""

    allowed_roots: list[Path] | None = None
    workers: int = Field(default=2, ge=1, le=64)
    max_image_pixels: int = Field(default=64_000_000, ge=1)
    # Decoded size (pixels x bands x bytes per sample): a 16-bit image costs twice an 8-bit one of the same pixels.
    max_decoded_bytes: int = Field(default=192 * 1024**2, ge=1)
    # Query images and uploads decoded at once per process (each may take up to max_decoded_bytes).
    max_concurrent_decodes: int = Field(default=2, ge=1)
    max_file_bytes: int = Field(default=2 * 1024**3, ge=1)
    # Distributed ingest: files per chunk job on the ``ingest`` queue (each chunk runs whole on one worker).
    chunk_size: int = Field(default=256, ge=1, le=100_000)

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _path_list(cls, value: object) -> object:
        """Accept a plain ``/a:/b`` list (like PATH) as well as a JSON list."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(
                    f"not a JSON list of folders: {text[:80]!r}; write [\"/a\", \"/b\"] or /a:/b"
                ) from None
        return [part for part in text.split(os.pathsep) if part.strip()]


class AssetSettings(BaseModel):
    """The asset trash, the blob sweep, and how long an ingest's claim on a content lasts."""

    trash_days: float = Field(default=30.0, ge=0)  # assets in the trash this long are purged
    gc_grace_s: float = Field(default=3600.0, ge=0)  # the sweep spares blob and thumbnail files younger than this
    claim_lease_s: float = Field(default=900.0, gt=0)  # a claim from another machine older than this is taken over


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
    # Hardening: concurrent `wait=` requests per key (and how often their jobs are polled), JSON nesting depth.
    max_waits_per_key: int = Field(default=16, ge=1)
    wait_poll_s: float = Field(default=0.05, gt=0, le=5)
    max_json_depth: int = Field(default=64, ge=1, le=500)
    # `sensorium serve`: a request's headers must arrive within header_timeout_s; a request (headers or body) that
    # sends nothing for idle_timeout_s is dropped; idle keep-alive connections close after keep_alive_s.
    header_timeout_s: float = Field(default=15.0, gt=0)
    idle_timeout_s: float = Field(default=30.0, gt=0)
    keep_alive_s: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)


class JobSettings(BaseModel):
    """Job execution: leases, retries, queue bounds and the in-process executor."""

    lease_s: float = Field(default=60.0, gt=0)
    heartbeat_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    max_queue_depth: int = Field(default=100, ge=1)
    # Each API key's share of a kind's waiting queue, so one key cannot fill it for everyone.
    max_queued_per_key: int = Field(default=25, ge=1)
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


class DuplicateSettings(BaseModel):
    """Near-duplicate tiers and their thresholds (exact: sha256; near: perceptual hashes; similar: vectors)."""

    # Bits of the 128-bit pHash + dHash code two copies may differ by (measured in bench/near_duplicates.py).
    near_max_distance: int = Field(default=26, ge=0, le=64)
    similar_min_cosine: float = Field(default=0.95, ge=-1, le=1)
    # Hash tables of the multi-index search: more tables find more pairs far apart, in more time.
    tables: int = Field(default=64, ge=1, le=1024)
    # Ingest: index (record the group), skip (leave near copies out) or link (index as a hidden variant).
    ingest_policy: Literal["index", "skip", "link"] = "index"


class Settings(BaseSettings):
    """Every Sensorium setting; defaults give the embedded mode (SQLite, FAISS file, in-process jobs)."""

    model_config = SettingsConfigDict(env_prefix="SENSORIUM_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("sensorium-data")
    database_url: str | None = None
    broker_url: str | None = None
    # `sensorium serve` and `sensorium worker` log JSON lines unless this says text; other commands always log text.
    log_format: Literal["json", "text"] = "json"
    # Client mode: the CLI sends search, ingest, generate, jobs and agent to this running server.
    server_url: str | None = None
    api_key: str | None = None
    encoder: EncoderSettings = EncoderSettings()
    ingest: IngestSettings = IngestSettings()
    assets: AssetSettings = AssetSettings()
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
    duplicates: DuplicateSettings = DuplicateSettings()

    @model_validator(mode="after")
    def _export_dir_in_data_dir(self) -> Settings:
        if self.encoder.export_dir is None:
            self.encoder = self.encoder.model_copy(update={"export_dir": self.data_dir / "models"})
        return self

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
