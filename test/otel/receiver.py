"""A small OTLP/HTTP receiver for tests: accepts traces and metrics, keeps them, serves them back as simple JSON.

It understands both encodings the exporters in this repository use: protobuf (Python's
opentelemetry-exporter-otlp-proto-http) and JSON (the JavaScript @opentelemetry/exporter-*-otlp-http), gzip or not.

    POST /v1/traces, /v1/metrics   OTLP/HTTP export requests (application/x-protobuf or application/json)
    GET  /spans                    every span received so far, flattened (see `flatten_span`)
    GET  /metrics                  every metric data point received so far, flattened (see `flatten_metrics`)
    GET  /stats                    request counts per path and encoding
    POST /reset                    forgets everything

usage: receiver.py [--port 0]   (prints {"url": "http://127.0.0.1:PORT"} on stdout once listening)
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import signal
import sys
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

KINDS = {
    0: "UNSPECIFIED",
    1: "INTERNAL",
    2: "SERVER",
    3: "CLIENT",
    4: "PRODUCER",
    5: "CONSUMER",
}
STATUS = {Status.STATUS_CODE_UNSET: "UNSET", Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}
ID_FIELDS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def any_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping expects base64 for bytes fields."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ID_FIELDS and isinstance(value, str) and value and len(value) in (16, 32):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    pass
            out[key] = hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [hex_ids_to_base64(v) for v in node]
    return node


def flatten_span(span: Span, resource: dict[str, Any], scope: str, encoding: str) -> dict[str, Any]:
    return {
        "traceId": span.trace_id.hex(),
        "spanId": span.span_id.hex(),
        "parentSpanId": span.parent_span_id.hex(),
        "traceState": span.trace_state,
        "name": span.name,
        "kind": KINDS.get(span.kind, str(span.kind)),
        "service": resource.get("service.name"),
        "resource": resource,
        "scope": scope,
        "startNs": span.start_time_unix_nano,
        "endNs": span.end_time_unix_nano,
        "attributes": attributes(span.attributes),
        "status": {"code": STATUS.get(span.status.code, str(span.status.code)), "message": span.status.message},
        "events": [{"name": e.name, "attributes": attributes(e.attributes)} for e in span.events],
        "links": [{"traceId": link.trace_id.hex(), "spanId": link.span_id.hex()} for link in span.links],
        "encoding": encoding,
    }


def flatten_metrics(request: ExportMetricsServiceRequest, encoding: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rm in request.resource_metrics:
        resource = attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                base = {
                    "name": metric.name,
                    "unit": metric.unit,
                    "type": kind,
                    "service": resource.get("service.name"),
                    "scope": sm.scope.name,
                    "encoding": encoding,
                }
                if kind in ("sum", "gauge"):
                    for p in getattr(metric, kind).data_points:
                        value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                        out.append({**base, "attributes": attributes(p.attributes), "value": value})
                elif kind == "histogram":
                    for p in metric.histogram.data_points:
                        out.append(
                            {
                                **base,
                                "attributes": attributes(p.attributes),
                                "count": p.count,
                                "sum": p.sum,
                                "bounds": list(p.explicit_bounds),
                                "buckets": list(p.bucket_counts),
                            }
                        )
                elif kind == "exponential_histogram":
                    for p in metric.exponential_histogram.data_points:
                        out.append({**base, "attributes": attributes(p.attributes), "count": p.count, "sum": p.sum})
    return out


class Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.requests: Counter[str] = Counter()

    def reset(self) -> None:
        with self.lock:
            self.spans.clear()
            self.metrics.clear()
            self.requests.clear()


STORE = Store()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                data += self.rfile.read(size)
                self.rfile.readline()  # CRLF after each chunk
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            data = gzip.decompress(data)
        elif encoding == "deflate":
            data = zlib.decompress(data)
        return data

    def do_GET(self) -> None:
        with STORE.lock:
            if self.path == "/spans":
                return self._json(list(STORE.spans))
            if self.path == "/metrics":
                return self._json(list(STORE.metrics))
            if self.path == "/stats":
                return self._json(dict(STORE.requests))
        self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        if self.path == "/reset":
            self._body()
            STORE.reset()
            return self._json({})
        if self.path not in ("/v1/traces", "/v1/metrics"):
            self._body()
            return self._json({"error": "not found"}, 404)
        is_json = "json" in (self.headers.get("Content-Type") or "")
        encoding = "json" if is_json else "protobuf"
        try:
            data = self._body()
            if self.path == "/v1/traces":
                request: Any = ExportTraceServiceRequest()
                response: Any = ExportTraceServiceResponse()
            else:
                request = ExportMetricsServiceRequest()
                response = ExportMetricsServiceResponse()
            if is_json:
                json_format.ParseDict(hex_ids_to_base64(json.loads(data or b"{}")), request, ignore_unknown_fields=True)
            else:
                request.ParseFromString(data)
        except Exception as exc:
            sys.stderr.write(f"receiver: bad {encoding} request on {self.path}: {exc}\n")
            return self._json({"error": str(exc)}, 400)
        with STORE.lock:
            STORE.requests[f"{self.path} {encoding}"] += 1
            if self.path == "/v1/traces":
                for rs in request.resource_spans:
                    resource = attributes(rs.resource.attributes)
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            STORE.spans.append(flatten_span(span, resource, ss.scope.name, encoding))
            else:
                STORE.metrics.extend(flatten_metrics(request, encoding))
        if is_json:
            self._send(200, json_format.MessageToJson(response).encode(), "application/json")
        else:
            self._send(200, response.SerializeToString(), "application/x-protobuf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(json.dumps({"url": f"http://{args.host}:{server.server_address[1]}"}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
