"""Decoding limits count bytes, not only pixels, and high-bit-depth images convert without float64 copies."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from index.ingest.images import ImageDecodeError, decode_slot, decoded_bytes, open_image
from tests.media_deep_images import gray16_png, gray16_tiff, rgb16_png

NO_PIXEL_LIMIT = 10**12


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="TIFF" if array.dtype in (np.int32, np.float32) else "PNG")
    return buffer.getvalue()


def _float64_reference(array: np.ndarray, is_float: bool) -> np.ndarray:
    """The conversion as it was (float64, whole image), to check the strip conversion gives the same pixels."""
    values = np.nan_to_num(array.astype(np.float64)) if is_float else array.astype(np.float64)
    low = float(values.min()) if is_float else 0.0
    high = float(values.max())
    if high <= low:
        return np.zeros(array.shape, dtype=np.uint8)
    return ((values - low) * (255.0 / (high - low))).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("array", "is_float"),
    [
        (np.arange(300 * 200, dtype=np.uint32).reshape(300, 200).astype(np.uint16), False),
        (np.arange(-30000, 30000, 10, dtype=np.int32).reshape(60, 100) * 1000, False),
        (np.where(np.eye(40) > 0, np.nan, np.linspace(-3.5, 9.25, 1600).reshape(40, 40)).astype(np.float32), True),
        (np.full((20, 30), 7, dtype=np.uint16), False),
    ],
    ids=["I;16", "I-negative", "F-with-nan", "flat"],
)
def test_high_depth_modes_convert_like_before(array: np.ndarray, is_float: bool) -> None:
    image, size = open_image(_png(array), NO_PIXEL_LIMIT)
    assert image.mode == "RGB" and size == (array.shape[1], array.shape[0])
    got = np.asarray(image)[:, :, 0].astype(int)
    difference = np.abs(got - _float64_reference(array, is_float).astype(int))
    assert difference.max() <= 1  # float32 instead of float64 may move a value across a truncation boundary


def test_decoded_bytes_count_sixteen_bits_twice() -> None:
    deep = Image.open(io.BytesIO(gray16_png(400, 300)))
    eight = Image.new("L", (400, 300))
    assert decoded_bytes(deep) == 2 * decoded_bytes(eight) == 240_000
    assert decoded_bytes(Image.new("RGB", (10, 10))) == 300 and decoded_bytes(Image.new("F", (10, 10))) == 400
    limit = 200_000  # between the 8-bit and the 16-bit size of the same pixels
    open_image(_png(np.zeros((300, 400), dtype=np.uint8)), NO_PIXEL_LIMIT, max_decoded_bytes=limit)
    with pytest.raises(ImageDecodeError, match=r"240,000 bytes decoded, over the limit of 200,000 .*MAX_DECODED"):
        open_image(gray16_png(400, 300), NO_PIXEL_LIMIT, max_decoded_bytes=limit)


def test_a_large_sixteen_bit_image_decodes_without_float64_copies() -> None:
    data = gray16_png(8000, 8000)
    tracemalloc.start()
    try:
        image, size = open_image(data, 64_000_000, max_decoded_bytes=192 * 1024**2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == (8000, 8000)
    assert min(image.size) >= 224 and max(image.size) >= 256 and max(image.size) < 1000  # reduced for the encoder
    # numpy's arrays are traced: the old float64 path made two 512 MB copies; now the 64 MB 8-bit result dominates.
    assert peak < 100 * 1024**2, f"{peak:,} bytes of numpy arrays"


@pytest.mark.parametrize("data", [rgb16_png(640, 480), gray16_tiff(640, 480)], ids=["rgb16-png", "gray16-tiff"])
def test_sixteen_bit_png_and_tiff_decode(data: bytes) -> None:
    image, size = open_image(data, 64_000_000, max_decoded_bytes=192 * 1024**2)
    assert size == (640, 480) and image.mode == "RGB"
    low, high = np.asarray(image).min(), np.asarray(image).max()
    assert high - low > 100  # the content survives the conversion, not a flat image


def test_decode_slots_bound_concurrent_decodes() -> None:
    import threading

    inside = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def decode() -> None:
        nonlocal inside, most
        with decode_slot(2):
            with lock:
                inside += 1
                most = max(most, inside)
            release.wait(5)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=decode) for _ in range(6)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        with lock:
            if inside == 2:
                break
        threading.Event().wait(0.01)
    release.set()
    for thread in threads:
        thread.join()
    assert most == 2
