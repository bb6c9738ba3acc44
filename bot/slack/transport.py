"""Web API calls: the client, its retries, and what Slack's errors mean to the bot.

`SlackTransport.call` makes one call and raises `RateLimited` (429), `Refused` (Slack will
never take it), `Gone` (an edit of a message that can no longer be edited) or
`SlackCallFailed` (bot.slack.outbox); 5xx answers and dropped connections were retried
by slack_sdk's handlers first. A 429 is never waited out inside `call` (the SDK's
rate-limit retry handler is left out): a caller may hold a run's lock. `call_waiting`
waits out up to three, for callers that hold none.
"""

from __future__ import annotations

import io
import ssl
from http.client import HTTPMessage
from typing import Any, cast
from urllib.error import HTTPError, URLError
from urllib.request import Request

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler

from bot.slack.channels import ChannelDirectory, is_channel_id
from bot.slack.outbox import GONE, REFUSALS, Gone, RateLimited, Refused, SlackCallFailed
from phases.checks.base import Clock

DEFAULT_API_URL = "https://slack.com/api/"


def retry_handlers(
    *,
    rate_limited: int = 3,
    server_errors: int = 2,
    connection_errors: int = 2,
    backoff: float = 0.5,
) -> list[RetryHandler]:
    """429 waits for Retry-After; 500/503 and connection errors back off exponentially."""
    interval = BackoffRetryIntervalCalculator(backoff_factor=backoff)
    return [
        ConnectionErrorRetryHandler(
            max_retry_count=connection_errors, interval_calculator=interval
        ),
        RateLimitErrorRetryHandler(max_retry_count=rate_limited),
        ServerErrorRetryHandler(max_retry_count=server_errors, interval_calculator=interval),
    ]


def api_base_url(url: str | None) -> str:
    base = (url or DEFAULT_API_URL).strip()
    return base if base.endswith("/") else base + "/"


class PooledWebClient(WebClient):
    """slack_sdk's WebClient, its requests sent over kept-alive connections (one httpx pool,
    shared between threads) instead of a new connection per call.

    urllib, under the SDK's client, opens a connection for every Web API call: against
    slack.com a TCP and TLS handshake (two or three round trips to Slack's edge) before
    every post, edit and lookup, and on loopback ~0.5 ms of a click's way to its next
    checkpoint. Only the SDK's last step is replaced (`_perform_urllib_http_request_internal`,
    one request and its answer): what it sends, its retries and its errors are the SDK's,
    with httpx's outcomes given as urllib's (an answer of 400 and up as HTTPError, a
    connection that failed as URLError) so that the SDK's retry handlers see what they
    know."""

    def __init__(self, *args: Any, http: httpx.Client | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = http or httpx.Client(
            timeout=self.timeout,
            # The system's CA store, as urllib's default context reads it (SSL_CERT_FILE
            # honoured), not certifi's bundle: a CA a company installed keeps working.
            verify=self.ssl if self.ssl is not None else ssl.create_default_context(),
            proxy=self.proxy or None,  # the SDK's own (its argument, or HTTPS_PROXY)
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=30),
        )

    def close(self) -> None:
        self.http.close()

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        if not url.lower().startswith(("http://", "https://")):
            raise SlackRequestError(f"Invalid URL detected: {url}")
        body = cast("bytes | None", req.data)  # the SDK encodes every body to bytes first
        try:
            resp = self.http.request(
                req.get_method(), url, content=body, headers=dict(req.header_items())
            )
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"Slack did not answer in {self.timeout} s: {exc}") from exc
        except httpx.TransportError as exc:  # refused, reset, closed: as urllib says them
            raise URLError(exc) from exc
        headers = HTTPMessage()
        for name, value in resp.headers.multi_items():
            headers[name] = value
        if resp.status_code >= 400:
            raise HTTPError(
                url, resp.status_code, resp.reason_phrase, headers, io.BytesIO(resp.content)
            )
        if headers.get_content_type() == "application/gzip":
            return {"status": resp.status_code, "headers": headers, "body": resp.content}
        text = resp.content.decode(headers.get_content_charset() or "utf-8")
        return {"status": resp.status_code, "headers": headers, "body": text}


def make_client(
    token: str, api_url: str | None = None, handlers: list[RetryHandler] | None = None
) -> PooledWebClient:
    return PooledWebClient(
        token=token,
        base_url=api_base_url(api_url),
        timeout=15,
        retry_handlers=handlers if handlers is not None else retry_handlers(),
    )


def split_ref(ref: str) -> tuple[str, str]:
    """A message ref "CHANNEL:TS" as (channel, ts)."""
    channel, _, ts = ref.partition(":")
    return channel, ts


class SlackTransport:
    """Web API calls through `client`'s settings, without its rate-limit retry handler."""

    def __init__(self, client: WebClient, clock: Clock) -> None:
        self.clock = clock
        # The same client without the SDK's rate-limit handler: it sleeps on Retry-After in
        # the calling thread, which may hold the run's lock.
        self.api = PooledWebClient(
            token=client.token,
            base_url=client.base_url,
            timeout=client.timeout,
            retry_handlers=[
                h for h in client.retry_handlers if not isinstance(h, RateLimitErrorRetryHandler)
            ],
            http=client.http if isinstance(client, PooledWebClient) else None,
        )
        # The runbook's channel names as ids, looked up once (bot.slack.channels).
        self.channels = ChannelDirectory(self.api)

    def call(self, method: str, **kwargs: Any) -> Any:
        """One Web API call. Raises RateLimited (429), Refused (Slack will never take it) or
        SlackCallFailed; 5xx and connection errors were retried by the client."""
        args = {k: v for k, v in kwargs.items() if v is not None}
        channel = args.get("channel")
        if isinstance(channel, str) and not is_channel_id(channel):
            args["channel"] = self.channels.resolve(channel)  # a runbook's #name: its id
        name = method.replace("_", ".")
        try:
            return getattr(self.api, method)(**args)
        except SlackApiError as exc:
            resp = exc.response
            error = str((resp.get("error") if resp is not None else None) or "error")
            status = resp.status_code if resp is not None else "?"
            if status == 429:
                headers = resp.headers if resp is not None else {}
                raise RateLimited(name, _retry_after(headers)) from None
            if error in REFUSALS:
                raise Refused(name, error, status) from None
            if method == "chat_update" and error in GONE:
                raise Gone(name, error, status) from None
            raise SlackCallFailed(name, error, status) from None

    def call_waiting(self, method: str, **kwargs: Any) -> Any:
        """`call`, waiting out up to three 429s. Only where no lock is held."""
        for attempt in range(4):
            try:
                return self.call(method, **kwargs)
            except RateLimited as exc:
                if attempt == 3:
                    raise SlackCallFailed(exc.method, "ratelimited", 429) from None
                self.clock.sleep(exc.retry_after)
        return None


def _retry_after(headers: Any) -> float:
    """Seconds from a Retry-After header (1 if it is missing or unreadable)."""
    for key, value in dict(headers or {}).items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value[0] if isinstance(value, list) else value))
            except (TypeError, ValueError):
                break
    return 1.0
