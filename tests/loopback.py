"""Loopback servers: CRDS, speaking what the unmodified ``crds`` client asks of one, and
MAST's download API.

The client (``crds.client.api`` and ``crds.client.proxy``) POSTs JSON-RPC 1.0 requests
to ``<server>/json/<method>/<id>/`` and reads ``{"result": ..., "error": ..., "id": ...}``;
it downloads mappings and references with plain GETs from the ``mapping_url`` and
``reference_url`` that ``get_server_info`` names, and checks each download's size and
sha1 against ``download_metadata`` (crds-encoded: gzip, base64, JSON) of that same
answer.  This server answers those calls from a directory the test builds (a context
under a real-looking name, its mappings and reference files), and records every call
and download so that tests can say exactly what crds fetched.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def crds_encode(obj: object) -> dict[str, str]:
    """What a CRDS server sends for large results (crds's ``crds_decode`` reverses it)."""
    payload = base64.b64encode(gzip.compress(json.dumps(obj).encode())).decode("ascii")
    return {"crds_encoded": "1.0", "crds_payload": payload}


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@dataclass
class CrdsServer:
    """State of one loopback CRDS server."""

    mappings: Path
    references: Path
    context: str
    url: str = ""
    calls: list[str] = field(default_factory=list)
    """JSON-RPC method names, in the order they were called."""
    downloads: list[str] = field(default_factory=list)
    """File names served by GET."""
    corrupt: set[str] = field(default_factory=set)
    """Reference names served with one byte changed (their catalogued sha1 is the true one)."""

    def files(self) -> dict[str, Path]:
        out = {p.name: p for p in sorted(self.mappings.glob("*map"))}
        out.update({p.name: p for p in sorted(self.references.glob("*.fits"))})
        return out

    def file_info(self, names: list[str] | None = None) -> dict[str, object]:
        known = self.files()
        wanted = names if names else sorted(known)
        return {n: ({"size": str(known[n].stat().st_size), "sha1sum": sha1(known[n]),
                     "state": "archived", "rejected": "false", "blacklisted": "false",
                     "name": n, "instrument": "acs", "observatory": "hst"}
                    if n in known else "NOT FOUND") for n in wanted}

    def server_info(self) -> dict[str, object]:
        metadata = {n: {"size": v["size"], "sha1sum": v["sha1sum"]}  # type: ignore[index]
                    for n, v in self.file_info().items()}
        return {
            "observatory": "hst",
            "operational_context": self.context,
            "edit_context": self.context,
            "latest_context": self.context,
            "build_context": self.context,
            "versions_context": self.context,
            "bad_files": "",
            "bad_files_list": [],
            "force_remote_mode": False,
            "crds_version": {"str": "12.1.4, master, 0000000"},
            "context_history": [["2026-01-01 00:00:00", self.context, "loopback test context"]],
            "last_synced": "2026-01-01 00:00:00",
            "mappings": sorted(p.name for p in self.mappings.glob("*map")),
            "mapping_url": {"hst": f"{self.url}/unchecked_get/mappings/hst/"},
            "reference_url": {"hst": f"{self.url}/unchecked_get/references/hst/"},
            "download_metadata": crds_encode(metadata),
        }

    def rpc(self, method: str, params: list | dict) -> object:
        args = params if isinstance(params, list) else list(params.values())
        if method == "get_server_info":
            return self.server_info()
        if method == "get_default_context":
            return self.context
        if method == "get_mapping_names":
            return sorted(p.name for p in self.mappings.glob("*map"))
        if method == "get_reference_names":
            return sorted(p.name for p in self.references.glob("*.fits"))
        if method == "get_file_info_map":
            names = args[1] if len(args) > 1 and args[1] else None
            info = self.file_info(list(names) if names else None)
            fields = args[2] if len(args) > 2 and args[2] else None
            if fields:
                info = {k: ({f: v[f] for f in fields if f in v} if isinstance(v, dict) else v)
                        for k, v in info.items()}
            return crds_encode(info)
        raise KeyError(f"unknown method {method}")


class _Handler(BaseHTTPRequestHandler):
    """Answers with a body; logs nothing."""

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _handler(state: CrdsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            method = str(request.get("method", ""))
            state.calls.append(method)
            try:
                body = {"result": state.rpc(method, request.get("params", [])), "error": None,
                        "id": request.get("id")}
            except Exception as err:  # what a server says about a method it lacks
                body = {"result": None, "error": {"message": str(err)}, "id": request.get("id")}
            self._send(json.dumps(body).encode(), "application/json")

        def do_GET(self) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) != 4 or parts[0] != "unchecked_get" or parts[2] != "hst":
                self.send_error(404)
                return
            name = parts[3]
            path = state.files().get(name)
            if path is None:
                self.send_error(404)
                return
            state.downloads.append(name)
            data = bytearray(path.read_bytes())
            if name in state.corrupt:
                data[len(data) // 2] ^= 0x01
            self._send(bytes(data), "application/octet-stream")

    return Handler


@contextmanager
def _running(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run an HTTP server with `handler` on 127.0.0.1; yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve(state: CrdsServer) -> Iterator[CrdsServer]:
    """Run `state` as a CRDS server on 127.0.0.1 for the duration of the block."""
    with _running(_handler(state)) as url:
        state.url = url
        yield state


# ---------------------------------------------------------------------------------------
# MAST's download API

MAST_PREFIX = "mast:HST/product/"


@dataclass
class MastServer:
    """A loopback server answering MAST's download API from a directory."""

    root: Path
    url: str = ""
    requests: list[str] = field(default_factory=list)
    """The ``uri`` of every request, in order."""


def _mast_handler(state: MastServer) -> type[BaseHTTPRequestHandler]:
    from urllib.parse import parse_qs, urlparse

    class Handler(_Handler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            uri = parse_qs(url.query).get("uri", [""])[0]
            state.requests.append(uri)
            name = uri[len(MAST_PREFIX):]
            path = state.root / name
            if url.path != "/api/v0.1/Download/file" or not uri.startswith(MAST_PREFIX) \
                    or "/" in name or not path.is_file():
                self.send_error(404)
                return
            self._send(path.read_bytes(), "application/octet-stream")

    return Handler


@contextmanager
def serve_mast(root: Path) -> Iterator[MastServer]:
    """Serve the files of `root` through MAST's download API on 127.0.0.1."""
    state = MastServer(root)
    with _running(_mast_handler(state)) as url:
        state.url = url
        yield state
