"""The CLI against a running server (client mode), and what the server says about random weights and moments."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from tests.api.conftest import REPO, ApiServer
from tests.media_factory import SCENE_COLORS, make_scene_video, scene_pattern
from tests.media_images import write_images

PROBE = """
import sys
from api.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    print("EXIT", exc.code)
print("TORCH-LOADED" if "torch" in sys.modules else "TORCH-ABSENT")
"""


def client_env(server: ApiServer, key: str = "admin") -> dict[str, str]:
    """Return the server's environment plus client mode with ``key``."""
    return {**server.env, "SENSORIUM_SERVER_URL": server.url, "SENSORIUM_API_KEY": server.keys[key], "COLUMNS": "200"}


def cli(env: dict[str, str], *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run ``sensorium ARGS`` with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_readyz_reports_the_encoder_and_random_weights(api_server: ApiServer) -> None:
    with api_server.client(None) as client:
        body = client.get("/readyz").json()
    assert body["encoder"] == {"model": "tiny-clip", "weights": "none", "pretrained": False}
    assert "seeded random weights" in api_server.log.read_text(errors="replace")  # serve said so at start


def test_rest_search_warns_while_weights_are_random(api_server: ApiServer) -> None:
    with api_server.client("search") as client:
        for body in ({"text": "a cat"}, {"text": "a cat", "mode": "text"}):
            answer = client.post("/v1/search", json=body)
            assert answer.status_code == 200, answer.text
            warnings = answer.json()["warnings"]
            assert [w["code"] for w in warnings] == ["random-weights"] and warnings[0]["message"]


def test_client_mode_search_matches_embedded_output_and_loads_no_torch(api_server: ApiServer, tmp_path: Path) -> None:
    folder = api_server.library / f"client-{uuid.uuid4().hex[:6]}"
    write_images(folder, 3, start_seed=9100)
    remote = client_env(api_server)
    ingested = cli(remote, "ingest", str(folder), "--collection", "client-mode", "--json")
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["indexed"] == 3

    args = ("search", "img", "--collection", "client-mode", "-k", "2")
    embedded = cli({**api_server.env, "COLUMNS": "200"}, *args)
    client = cli(remote, *args)
    assert client.returncode == 0 and embedded.returncode == 0, client.stderr + embedded.stderr
    assert client.stdout == embedded.stdout and "more: --offset 2" in client.stdout
    assert client.stderr.count("seeded random weights") == 1
    as_json = json.loads(cli(remote, *args, "--json").stdout)
    assert as_json["warnings"][0]["code"] == "random-weights" and len(as_json["results"]) == 2

    probe = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=REPO, env=remote, capture_output=True, text=True, timeout=300
    )
    assert "TORCH-ABSENT" in probe.stdout and "client-mode" in probe.stdout, probe.stdout + probe.stderr
    jobs = subprocess.run(
        [sys.executable, "-c", PROBE, "jobs", "list"], cwd=REPO, env=remote, capture_output=True, text=True
    )
    assert "TORCH-ABSENT" in jobs.stdout and "ingest" in jobs.stdout


def test_client_mode_ingest_names_server_paths_checked_against_its_roots(api_server: ApiServer, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_images(outside, 2, start_seed=9200)
    remote = client_env(api_server)
    refused = cli(remote, "ingest", str(outside))
    assert refused.returncode == 2 and "not inside a folder this server may ingest from" in refused.stderr
    uploaded = cli(remote, "ingest", "--upload", str(outside), "--collection", "uploaded", "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    summary = json.loads(uploaded.stdout)
    assert (summary["indexed"], summary["failed"]) == (2, 0)
    bad_key = {**remote, "SENSORIUM_API_KEY": "sk-sens-" + "x" * 43}
    denied = cli(bad_key, "search", "x")
    assert denied.returncode == 2 and "Traceback" not in denied.stderr


def _jpeg_pixels(data: bytes, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize(size), dtype=np.float32)


def test_a_video_result_shows_the_matched_scene(api_server: ApiServer, tmp_path: Path) -> None:
    folder = api_server.library / f"video-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    size, scene_s = (320, 180), 3.0
    make_scene_video(folder / "scenes.mp4", SCENE_COLORS[:3], scene_s=scene_s, fps=10, size=size)
    remote = client_env(api_server)
    assert cli(remote, "ingest", str(folder), "--json").returncode == 0
    query = tmp_path / "scene-2.png"
    Image.fromarray(scene_pattern(2, SCENE_COLORS[2], size)).save(query)
    found = cli(remote, "search", "--image", str(query), "--kind", "video", "-k", "1", "--json")
    assert found.returncode == 0, found.stderr
    top = json.loads(found.stdout)["results"][0]
    segment = top["segment"]
    assert top["name"] == "scenes.mp4" and segment["kind"] == "frame"
    assert abs(segment["t_start"] - 2 * scene_s) <= 1.0
    assert top["content_url"].endswith(f"#t={segment['t_start']:g},{segment['t_end']:g}")
    with api_server.client(None) as client:  # signed URLs need no key
        moment = client.get(segment["thumbnail_url"])
        poster = client.get(top["thumbnail_url"])
    assert moment.status_code == 200 and moment.headers["content-type"] == "image/jpeg"
    pixels = _jpeg_pixels(moment.content, size)
    distances = [float(np.abs(pixels - scene_pattern(i, c, size)).mean()) for i, c in enumerate(SCENE_COLORS[:3])]
    assert int(np.argmin(distances)) == 2 and distances[2] < 25, distances
    # The asset's own thumbnail is its first scene: the moment's is a different picture.
    assert poster.content != moment.content
