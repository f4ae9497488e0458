"""An Engine over any OpenAI-compatible `/v1/chat/completions` endpoint, with an answer cache.

For the bench's frontier-API baseline, never for `analyze` by default: it sends the
samples to whatever endpoint it is given. Only the standard library is used.

The cache is a JSONL file of answers keyed by a hash of (model, messages, schema);
a baseline is paid for once and the file can be shared. With `offline=True` the
engine never sends anything: an answer missing from the cache comes back as
finish_reason "error".
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import OfflineCovError
from . import GenRequest, GenResult

BASE_ENV, MODEL_ENV, KEY_ENV = "OFFLINE_COV_API_BASE", "OFFLINE_COV_API_MODEL", "OFFLINE_COV_API_KEY"
CHARS_PER_TOKEN = 4
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
FINISH_REASONS = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


def cache_key(model: str, messages: list[dict], schema: dict | None) -> str:
    """The cache's key: sha256 of the canonical JSON of (model, messages, schema)."""
    blob = json.dumps([model, messages, schema], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def map_finish_reason(choice: dict) -> str:
    """The API's finish_reason in the Engine's words (stop, length, content_filter, refusal, error)."""
    if (choice.get("message") or {}).get("refusal"):
        return "refusal"
    return FINISH_REASONS.get(choice.get("finish_reason") or "", "error")


class AnswerCache:
    """Answers by key, loaded from and appended to a JSONL file (one answer a line)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.answers: dict[str, dict] = {}
        self.lock = threading.Lock()
        if self.path and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    item = json.loads(line)
                    self.answers[item["key"]] = item

    def get(self, key: str) -> dict | None:
        return self.answers.get(key)

    def models(self) -> set[str]:
        return {a.get("model", "") for a in self.answers.values()}

    def put(self, item: dict) -> None:
        with self.lock:
            self.answers[item["key"]] = item
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(item, ensure_ascii=False) + "\n")


class OpenAIEngine:
    """Chat completions with strict JSON-schema output at temperature 0, cached on disk."""

    name = "openai"

    def __init__(
        self,
        spec=None,
        seed: int = 0,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        cache_path: str | Path | None = None,
        offline: bool = False,
        max_model_len: int = 32768,
        concurrency: int = 4,
        timeout_s: float = 120.0,
        retries: int = 3,
    ):
        self.base_url = (base_url or os.environ.get(BASE_ENV) or "").rstrip("/")
        self.cache = AnswerCache(cache_path)
        self.model_name = model or os.environ.get(MODEL_ENV) or self._model_from_cache()
        self.api_key = api_key if api_key is not None else os.environ.get(KEY_ENV, "")
        self.offline, self.seed = offline, seed
        if not self.offline and not self.base_url:
            raise OfflineCovError(f"no API endpoint: pass base_url or set {BASE_ENV} (or use offline=True with a cache)")
        if not self.model_name:
            raise OfflineCovError(f"no API model: pass model or set {MODEL_ENV}")
        self.max_model_len, self.concurrency = max_model_len, max(1, concurrency)
        self.timeout_s, self.retries = timeout_s, retries
        self.requests_sent = self.cache_hits = self.cache_misses = 0
        self._count_lock = threading.Lock()

    def _model_from_cache(self) -> str:
        models = self.cache.models()
        return models.pop() if len(models) == 1 else ""

    # ------------------------------------------------------------ generation

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Answer each request from the cache, else from the endpoint; failures come back as 'error'."""
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, request: GenRequest) -> GenResult:
        key = cache_key(self.model_name, request.messages, request.schema)
        hit = self.cache.get(key)
        if hit is not None:
            self._count("cache_hits")
            return GenResult(hit["text"], hit["finish_reason"], hit.get("output_tokens", 0), {"cached": True})
        self._count("cache_misses")
        if self.offline:
            return GenResult("", "error", 0, {"error": "not in the baseline cache (offline)"})
        try:
            body = self._post(self.payload(request))
        except OfflineCovError as exc:
            return GenResult("", "error", 0, {"error": str(exc)})
        result = self.parse_response(body)
        if result.finish_reason in ("stop", "length", "content_filter", "refusal"):
            self.cache.put({"key": key, "model": self.model_name, "text": result.text,
                            "finish_reason": result.finish_reason, "output_tokens": result.output_tokens})
        return result

    def payload(self, request: GenRequest) -> dict:
        """The request body: same messages, temperature 0, strict JSON schema when one is given."""
        body = {
            "model": self.model_name,
            "messages": request.messages,
            "temperature": 0,
            "max_tokens": request.max_tokens,
            "seed": self.seed,
        }
        if request.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.schema, "strict": True},
            }
        return body

    @staticmethod
    def parse_response(body: dict) -> GenResult:
        choices = body.get("choices") or []
        if not choices:
            return GenResult("", "error", 0, {"error": f"no choices in the answer: {str(body)[:200]}"})
        choice = choices[0]
        text = (choice.get("message") or {}).get("content") or ""
        tokens = (body.get("usage") or {}).get("completion_tokens", 0) or 0
        return GenResult(text, map_finish_reason(choice), tokens)

    def _post(self, payload: dict) -> dict:
        data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.retries + 1):
            self._count("requests_sent")
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                if exc.code not in RETRY_STATUS or attempt == self.retries:
                    raise OfflineCovError(f"{url}: HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.retries:
                    raise OfflineCovError(f"{url}: {exc}") from None
            time.sleep(min(2**attempt, 30))
        raise OfflineCovError(f"{url}: no answer")  # not reached

    def _count(self, name: str) -> None:
        with self._count_lock:
            setattr(self, name, getattr(self, name) + 1)

    # ------------------------------------------------------------ the rest of the Engine interface

    def count_tokens(self, text: str) -> int:
        """An estimate (the endpoint's tokenizer is unknown): one token per 4 characters."""
        return -(-len(text) // CHARS_PER_TOKEN)

    def truncate(self, text: str, max_tokens: int) -> str:
        limit = max_tokens * CHARS_PER_TOKEN
        return text if len(text) <= limit else text[:limit]

    def info(self) -> dict:
        return {
            "engine": "openai-compatible",
            "api_base": self.base_url or "(none: cache only)",
            "model": self.model_name,
            "structured_output_backend": "server-side response_format json_schema (strict)",
            "cache": str(self.cache.path) if self.cache.path else None,
            "offline": self.offline,
            "requests_sent": self.requests_sent,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
        }

    def close(self) -> None:
        pass
