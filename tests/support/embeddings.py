"""A local OpenAI-compatible embeddings endpoint for tests: ``POST /v1/embeddings`` on
127.0.0.1, answering deterministic vectors, so litellm's real HTTP path runs offline.

    with EmbeddingServer() as srv:
        litellm.embedding(model="openai/x", input=["hi"], api_base=srv.url, api_key="k")
        srv.inputs  # [["hi"]]
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DIM", "EmbeddingServer", "hashed_bag_of_words"]

DIM = 64


def hashed_bag_of_words(text: str) -> list[float]:
    """A deterministic embedding: signed word hashes in 64 buckets, normalised."""
    v = [0.0] * DIM
    for word in re.findall(r"\w+", text.lower()):
        h = int(hashlib.sha1(word.encode()).hexdigest(), 16)
        v[h % DIM] += 1.0 if (h >> 8) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


class EmbeddingServer:
    """``POST /v1/embeddings`` on 127.0.0.1 (OpenAI's format), recording every input."""

    def __init__(self) -> None:
        self.inputs: list[list[str]] = []
        self.headers: list[Message] = []
        """Each request's headers, looked up without regard to case (as HTTP says)."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                owner.inputs.append(texts)
                owner.headers.append(self.headers)
                if self.path != "/v1/embeddings":
                    self.send_error(404)
                    return
                data = json.dumps(
                    {
                        "object": "list",
                        "model": body["model"],
                        "data": [
                            {"object": "embedding", "index": i, "embedding": hashed_bag_of_words(t)}
                            for i, t in enumerate(texts)
                        ],
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EmbeddingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
