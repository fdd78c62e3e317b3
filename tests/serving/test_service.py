"""The BentoML service against a real server: ``nasseg serve`` (which becomes ``bentoml serve``) in a
subprocess on 127.0.0.1, a real HTTP client (httpx), answers checked against ``nasseg predict`` on the
same files, every bad input tried, and the server still healthy afterwards.

One tiny net (a 3-level U-Net) is exported once per module through the same cache ``nasseg serve``
uses, so the server finds it there and starts in seconds.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_server import Server, start_server
from typer.testing import CliRunner
from upload_images import corrupt_idat, encode, good_images, png_header_only, rgb

from nasseg import zoo
from nasseg.cli import app
from nasseg.serving.decode import decode_frame
from nasseg.serving.defects import find_defects
from nasseg.serving.resolve import resolve_onnx
from nasseg.serving.runtime import OnnxSegmenter

GOOD = good_images()
MIN_DEFECT_AREA = 5
# device cpu: the provider of the nasseg predict reference below
SERVER_OPTIONS = ["--max-body-mb", "1", "--max-pixels", "2000000", "--max-concurrency", "4",
                  "--min-defect-area", str(MIN_DEFECT_AREA), "--max-batch-size", "4", "--max-latency-ms", "10000",
                  "--threads", "1", "--streams", "2", "--graceful-timeout", "20", "--device", "cpu", "--tile", "256",
                  "--body-timeout", "2", "--max-request-pixels", "2000000", "--allow-random-weights"]  # fmt: skip
runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve_home")


@pytest.fixture(scope="module")
def genotype_file(home: Path) -> Path:
    """A 3-level U-Net (divisor 8) registered nowhere: served by its genotype file."""
    genotype = zoo.apply_overrides(zoo.resolve_genotype("unet-small"), {"channels": [8, 16, 32], "skips": [True, True],
                                   "dropout_layers": 1, "input_size": [64, 64]}).replace(name="serve-tiny")  # fmt: skip
    path = home / "serve-tiny.json"
    genotype.to_json(path)
    return path


@pytest.fixture(scope="module")
def onnx_file(genotype_file: Path, home: Path) -> Path:
    """The export ``nasseg serve serve-tiny.json`` will find in $NASSEG_HOME/onnx."""
    return resolve_onnx(genotype_file, cache_dir=home / "onnx")


@pytest.fixture(scope="module")
def server(genotype_file: Path, onnx_file: Path, home: Path) -> Iterator[Server]:
    server = start_server(genotype_file, home, *SERVER_OPTIONS)
    yield server
    assert server.stop() == 0, server.log_text()[-3000:]


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def image_dir(home: Path) -> Path:
    directory = home / "images"
    directory.mkdir()
    for filename, data in GOOD.values():
        (directory / filename).write_bytes(data)
    return directory


@pytest.fixture(scope="module")
def predicted(genotype_file: Path, onnx_file: Path, image_dir: Path, home: Path) -> Path:
    """``nasseg predict GENOTYPE IMAGES --onnx ONNX`` masks, the reference for the server's answers."""
    out = home / "predicted"
    result = runner.invoke(app, ["predict", str(genotype_file), str(image_dir), "--onnx", str(onnx_file),
                                 "--out", str(out), "--device", "cpu", "--allow-random-weights"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _file(name: str, content_type: str | None = None) -> dict:
    filename, data = GOOD[name]
    return {"image": (filename, data, content_type or _content_type(filename))}


def _content_type(filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1]
    return {"jpg": "image/jpeg", "tiff": "image/tiff", "bmp": "image/bmp"}.get(suffix, "image/png")


# -- health, card, startup -----------------------------------------------------------------------


def test_health_metrics_and_cached_export(server: Server, client: httpx.Client, onnx_file: Path) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert "bentoml_service_request" in client.get("/metrics").text
    spec = client.get("/docs.json").json()  # the OpenAPI page offers a file upload for each route
    assert "multipart/form-data" in spec["paths"]["/inspect"]["post"]["requestBody"]["content"]
    assert f"from {onnx_file}" in server.log_text()  # nasseg serve found the cached export


def test_model_card(client: httpx.Client, genotype_file: Path) -> None:
    response = client.get("/model")
    assert response.status_code == 200
    card = response.json()
    genotype = zoo.Genotype.from_json(genotype_file)
    assert (card["name"], card["arch_hash"]) == ("serve-tiny", genotype.arch_hash)
    assert card["class_names"] == ["background", "foreground"] and card["params"] > 0


# -- answers agree with nasseg predict ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOOD))
def test_segment_equals_nasseg_predict(name: str, client: httpx.Client, predicted: Path) -> None:
    response = client.post("/segment", files=_file(name))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    served = np.asarray(Image.open(io.BytesIO(response.content)))
    stem = GOOD[name][0].rsplit(".", 1)[0]
    expected = np.asarray(Image.open(predicted / f"{stem}_mask.png"))
    assert served.shape == expected.shape  # the (EXIF-oriented) input's size
    np.testing.assert_array_equal(served, expected)


@pytest.fixture(scope="module")
def segmenter(onnx_file: Path) -> OnnxSegmenter:
    return OnnxSegmenter(onnx_file, device="cpu", threads=1)


def _expected_inspection(segmenter: OnnxSegmenter, path: Path) -> dict:
    _, mask, probability = segmenter.predict_file(path)
    return find_defects(mask, probability, segmenter.metadata.class_names, MIN_DEFECT_AREA).to_dict(100)


@pytest.mark.parametrize("name", ["rgb-odd-size", "exif-rotated-jpeg", "gray-16bit", "cmyk-jpeg"])
def test_inspect_equals_defects_of_predict(name: str, client: httpx.Client, segmenter: OnnxSegmenter,
                                           image_dir: Path) -> None:  # fmt: skip
    response = client.post("/inspect", files=_file(name))
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = _expected_inspection(segmenter, image_dir / GOOD[name][0])
    assert {k: answer[k] for k in expected} == expected
    assert answer["verdict"] in ("OK", "NG") and (answer["verdict"] == "NG") == bool(answer["defects"])
    assert (answer["model"], answer["arch_hash"]) == ("serve-tiny", segmenter.metadata.arch_hash)
    assert answer["filename"] == GOOD[name][0]
    height, width = segmenter.predict_file(image_dir / GOOD[name][0])[1].shape
    assert (answer["height"], answer["width"]) == (height, width)
    assert set(answer["latency_ms"]) == {"decode", "inference", "defects", "total"}


def test_inspect_batch_equals_inspect(client: httpx.Client) -> None:
    names = sorted(GOOD)
    files = [("images", _file(name)["image"]) for name in names[:4]]
    response = client.post("/inspect_batch", files=files)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a["filename"] for a in answers] == [GOOD[n][0] for n in names[:4]]
    for name, answer in zip(names[:4], answers, strict=True):
        single = client.post("/inspect", files=_file(name)).json()
        assert {k: v for k, v in answer.items() if k != "latency_ms"} == {
            k: v for k, v in single.items() if k != "latency_ms"
        }


def test_concurrent_batch_requests_are_answered_each_their_own(client: httpx.Client) -> None:
    names = ["rgb-odd-size", "gray", "palette", "bmp"]  # one size: the server may batch them together
    expected = {n: client.post("/inspect", files=_file(n)).json()["defects"] for n in names}

    def one(name: str) -> tuple[str, httpx.Response]:
        return name, client.post("/inspect_batch", files=[("images", _file(name)["image"])])

    def single(name: str) -> tuple[str, httpx.Response]:  # the worker's narrow sessions side by side
        return name, client.post("/inspect", files=_file(name))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, names * 2))
        singles = list(pool.map(single, names * 3))
    for name, response in results:
        assert response.status_code == 200, response.text
        assert [a["defects"] for a in response.json()] == [expected[name]]
    for name, response in singles:
        assert response.status_code == 200, response.text
        assert response.json()["defects"] == expected[name]


# -- bad inputs: 4xx JSON that says what was wrong ------------------------------------------------------

PNG = GOOD["rgb-odd-size"][1]
JPEG = GOOD["cmyk-jpeg"][1]
BAD_FILES = {
    "zero-bytes": (("a.png", b"", "image/png"), 400, "empty (0 bytes)"),
    "random-bytes": (("a.png", np.random.default_rng(1).bytes(5000), "image/png"), 415, "not an image"),
    "truncated-png": (("a.png", PNG[: len(PNG) // 2], "image/png"), 400, "truncated or corrupt PNG"),
    "truncated-jpeg": (("a.jpg", JPEG[: len(JPEG) // 2], "image/jpeg"), 400, "truncated or corrupt JPEG"),
    "corrupt-png": (("a.png", corrupt_idat(PNG), "image/png"), 400, "corrupt PNG"),
    "text-as-image": (("notes.png", b"camera 3 frame 1234\nOK\n" * 20, "image/png"), 415, "it is text"),
    "png-labelled-jpeg": (("a.jpg", PNG, "image/jpeg"), 400, "declared as image/jpeg but its bytes are a PNG"),
    "gif": (("a.gif", encode(Image.fromarray(rgb(8, 8)), "GIF"), "image/gif"), 415, "it is a GIF file"),
    "pixel-bomb-header": (("bomb.png", png_header_only(60_000, 60_000), "image/png"), 413, "decompression bomb"),
    "pixel-bomb-real": (("bomb.png", encode(Image.new("L", (1600, 1600))), "image/png"), 413, "decompression bomb"),
    "side-too-long": (("strip.png", encode(Image.new("L", (9000, 1))), "image/png"), 413, "each side must be"),
}  # fmt: skip


@pytest.mark.parametrize("route", ["/segment", "/inspect", "/inspect_batch"])
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_get_4xx_json(route: str, name: str, client: httpx.Client) -> None:
    upload, status, words = BAD_FILES[name]
    field = "images" if route == "/inspect_batch" else "image"
    response = client.post(route, files={field: upload})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert words in error and "\n" not in error


def _oversized(n_bytes: int) -> bytes:
    return np.random.default_rng(2).bytes(n_bytes)


def _chunked_upload(data: bytes, chunk: int = 65536) -> Iterator[bytes]:
    """A valid multipart body (boundary ``abc``) sent in chunks: no Content-Length, the server must count."""
    head = b'--abc\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    body = head + data + b"\r\n--abc--\r\n"
    return iter([body[i : i + chunk] for i in range(0, len(body), chunk)])


BAD_REQUESTS = {
    "missing-field": (dict(files={"img": ("a.png", PNG, "image/png")}), 400, "missing form field 'image'"),
    "no-fields": (dict(files={"x": ("", b"")}, data={}), 400, "missing form field 'image'"),
    "text-value-not-file": (dict(data={"image": "http://10.0.0.1/frame.png"}, files={"note": ("n.txt", b"x")}), 400,
                            "must be a file upload"),
    "raw-body": (dict(content=PNG, headers={"content-type": "image/png"}), 415, "multipart/form-data"),
    "json-body": (dict(json={"image": "a.png"}), 415, "multipart/form-data"),
    "empty-body": (dict(content=b""), 415, "multipart/form-data"),
    "malformed-multipart": (dict(content=b"--x\r\nnot a part", headers={"content-type": "multipart/form-data"}), 400,
                            "unreadable multipart"),
    "two-files": (dict(files=[("image", ("a.png", PNG, "image/png")), ("image", ("b.png", PNG, "image/png"))]), 400,
                  "/inspect_batch takes several"),
    "body-over-limit": (dict(files={"image": ("big.png", _oversized(1_200_000), "image/png")}), 413, "over the limit"),
    "chunked-over-limit": (dict(content=_chunked_upload(_oversized(1_200_000)),
                                headers={"content-type": "multipart/form-data; boundary=abc"}), 413, "over the limit"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_requests_get_4xx_json(name: str, client: httpx.Client) -> None:
    kwargs, status, words = BAD_REQUESTS[name]
    response = client.post("/inspect", **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_too_many_images_in_one_batch(client: httpx.Client) -> None:
    files = [("images", ("a.png", PNG, "image/png"))] * 17
    response = client.post("/inspect_batch", files=files)
    assert response.status_code == 400 and "at most 16" in response.json()["error"]


def test_overload_is_answered_429_not_a_crash(server: Server) -> None:
    frame = encode(Image.fromarray(rgb(400, 400)))
    with httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=32)) as burst:

        def one(_: int) -> int:
            return burst.post("/segment", files={"image": ("f.png", frame, "image/png")}).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(16)))
    assert set(statuses) <= {200, 429} and 429 in statuses and 200 in statuses, statuses


def test_server_is_healthy_after_everything(server: Server, client: httpx.Client) -> None:
    assert server.process.poll() is None
    assert client.get("/readyz").status_code == 200
    assert client.post("/inspect", files=_file("rgb-odd-size")).status_code == 200
    log = server.log_text()
    assert "status=500" not in log and "Traceback" not in log, log[-3000:]


# -- hardening: tiles, budgets, stalled clients, bounded metrics, JSON everywhere -----------------------


def test_a_frame_above_the_tile_runs_in_tiles_and_matches_whole_frame_inference(
    client: httpx.Client, segmenter: OnnxSegmenter
) -> None:
    # sides that are multiples of the divisor (8): the whole frame needs no padding, so whole-frame and
    # tiled inference see the same pixels, and the tiny net's receptive field fits in the 64 px overlap
    data = encode(Image.fromarray(rgb(704, 1304, seed=5)), "JPEG", quality=80)  # --tile 256: 5 x 10 windows
    frame = decode_frame(data, 3)
    response = client.post("/segment", files={"image": ("line.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    served = np.asarray(Image.open(io.BytesIO(response.content))) // 255
    whole, probability = segmenter.predict_frame(frame, tile=None)
    assert served.shape == whole.shape == (704, 1304)
    undecided = np.abs(probability - 0.5) < 1e-3  # float noise of different conv sizes may flip these
    assert (served == whole)[~undecided].all() and (served == whole).mean() > 0.9999
    odd = encode(Image.fromarray(rgb(333, 1001, seed=6)), "JPEG", quality=80)
    response = client.post("/segment", files={"image": ("odd.jpg", odd, "image/jpeg")})
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (1001, 333)


def test_a_batch_over_the_pixel_budget_is_413_before_inference(client: httpx.Client) -> None:
    frame = encode(Image.fromarray(np.full((500, 500), 90, np.uint8)))  # 1 KB, 250,000 pixels: 9 pass 2,000,000
    response = client.post("/inspect_batch", files=[("images", (f"{i}.png", frame, "image/png")) for i in range(9)])
    assert response.status_code == 413 and "pixels in all" in response.json()["error"], response.text
    assert client.post("/inspect_batch", files=[("images", ("a.png", frame, "image/png"))] * 2).status_code == 200


def _stalled_socket(server: Server) -> socket.socket:
    """Headers and 5 body bytes of a 10,000-byte upload, then nothing."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    sock.sendall(b"POST /inspect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=abc\r\n"
                 b"Content-Length: 10000\r\n\r\n--abc")  # fmt: skip
    return sock


def _read_answer(sock: socket.socket) -> str:
    """One HTTP response, headers and its Content-Length body (they may come in separate packets)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _content_length(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1")


def _content_length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    line = next((x for x in head.split(b"\r\n") if x.startswith(b"content-length:")), b"content-length: 0")
    return int(line.split(b":", 1)[1])


def test_stalled_clients_get_408_and_free_their_slots(server: Server, client: httpx.Client) -> None:
    assert client.post("/inspect", files=_file("rgb-odd-size")).status_code == 200
    time.sleep(1.0)  # an earlier test's refused upload may still hold a slot for a moment (seen once: 429)
    sockets = [_stalled_socket(server) for _ in range(4)]  # --max-concurrency 4: every slot held
    try:
        answers = [_read_answer(sock) for sock in sockets]  # --body-timeout 2
    finally:
        for sock in sockets:
            sock.close()
    assert all(a.startswith("HTTP/1.1 408") and "did not arrive within 2 s" in a for a in answers), answers
    assert client.post("/inspect", files=_file("rgb-odd-size")).status_code == 200


def test_unknown_paths_and_methods_get_json_and_leave_metrics_bounded(client: httpx.Client) -> None:
    before = len(client.get("/metrics").text)
    for i in range(200):
        response = client.get(f"/no/such/path/{i}")
        assert response.status_code == 404 and "no such endpoint" in response.json()["error"]
    growth = len(client.get("/metrics").text) - before
    assert growth < 5000, growth  # 200 distinct paths would add 200 label sets (about 150 KB)
    response = client.get("/inspect")
    assert response.status_code == 405 and response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]


def test_control_characters_in_a_filename_are_not_echoed(client: httpx.Client) -> None:
    _, data = GOOD["rgb-odd-size"]
    head = (b'--abc\r\nContent-Disposition: form-data; name="image"; filename="a\x1b[31m\x07\x7fb.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")  # raw bytes: httpx would percent-encode them  # fmt: skip
    response = client.post("/inspect", content=head + data + b"\r\n--abc--\r\n",
                           headers={"content-type": "multipart/form-data; boundary=abc"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "a[31mb.png"


def test_api_key_is_required_when_set_and_probes_stay_open(genotype_file: Path, onnx_file: Path, home: Path) -> None:
    key = "line-7-secret-key"
    server = start_server(genotype_file, home, *SERVER_OPTIONS, "--api-key", key)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as open_client:
            files = _file("rgb-odd-size")
            denied = open_client.post("/inspect", files=files)
            assert denied.status_code == 401 and "API key" in denied.json()["error"]
            assert open_client.post("/inspect", files=files, headers={"X-API-Key": "wrong-key-123"}).status_code == 401
            assert open_client.get("/model").status_code == 401
            assert open_client.get("/readyz").status_code == 200 and open_client.get("/livez").status_code == 200
            ok = open_client.post("/inspect", files=files, headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200, ok.text
            assert open_client.get("/metrics", headers={"X-API-Key": key}).status_code == 200
        import asyncio

        import bentoml

        path = home / "client-frame.png"
        path.write_bytes(files["image"][1])
        with bentoml.SyncHTTPClient(server.url, token=key, timeout=60) as client:  # BentoML's own client
            assert client.inspect(image=path)["model"] == "serve-tiny"

        async def call_async() -> dict:
            async with bentoml.AsyncHTTPClient(server.url, token=key, timeout=60) as client:
                return await client.inspect(image=path)

        assert asyncio.run(call_async())["verdict"] in ("OK", "NG")
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]
    assert key not in server.log_text()


# -- the command -------------------------------------------------------------------------------------


def test_bentoml_s_own_client_calls_every_endpoint_by_name(server: Server, home: Path) -> None:
    import bentoml

    frame = home / "bentoml-client.png"
    frame.write_bytes(GOOD["rgb-odd-size"][1])
    with bentoml.SyncHTTPClient(server.url, timeout=60) as client:
        answer = client.inspect(image=frame)
        assert answer["model"] == "serve-tiny" and answer["verdict"] in ("OK", "NG")
        assert client.segment(image=frame).size == (answer["width"], answer["height"])
        batch = client.inspect_batch(images=[frame, frame])
        assert [a["width"] for a in batch] == [answer["width"]] * 2


def test_a_websocket_upgrade_gets_a_json_403(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /inspect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
        answer = b""
        while b"}" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert "no WebSocket endpoint" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


def test_the_server_process_tree_listens_on_one_tcp_port(server: Server) -> None:
    """BentoML's process manager (circus) binds its control endpoints as Unix sockets in a 0700
    folder (serving.launch): the HTTP port is the only TCP port any process of the server listens on."""
    import psutil

    root = psutil.Process(server.process.pid)
    processes = [root, *root.children(recursive=True)]
    listening = {(c.laddr.ip, c.laddr.port) for p in processes for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN}  # fmt: skip
    port = int(server.url.rsplit(":", 1)[1])
    assert listening == {("127.0.0.1", port)}, listening
    unix = [c.laddr for p in processes for c in p.net_connections(kind="unix") if c.laddr]
    control = [Path(path) for path in unix if "nasseg-circus-" in path]
    assert control and all((path.parent.stat().st_mode & 0o777) == 0o700 for path in control), unix


# -- last: SIGTERM finishes the requests in flight (this stops the module's server) -------------------


def test_sigterm_finishes_requests_in_flight(server: Server) -> None:
    ramp = np.linspace(0, 255, 1400, dtype=np.float32)
    frame = encode(Image.fromarray(np.add.outer(ramp, ramp).astype(np.uint8)))  # 1.96 Mpixel, small PNG: slow to serve
    answer: dict[str, httpx.Response] = {}

    def slow() -> None:
        answer["response"] = httpx.post(f"{server.url}/segment", files={"image": ("f.png", frame)}, timeout=60)

    worker = threading.Thread(target=slow)
    worker.start()
    time.sleep(0.4)  # the upload is in; the frame is being decoded or segmented
    code = server.stop()
    worker.join(60)
    assert answer["response"].status_code == 200
    assert Image.open(io.BytesIO(answer["response"].content)).size == (1400, 1400)
    assert code == 0, server.log_text()[-3000:]
