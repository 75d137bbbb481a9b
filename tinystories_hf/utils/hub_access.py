"""Reaching the Hugging Face Hub: the probe every Hub call makes first, and what a failed call raises.

huggingface_hub retries an unreachable endpoint for about half a minute before it fails; one TCP
connection, at most `HUB_PROBE_SECONDS`, says the same at once. Used by each step that may reach the Hub:
a Hub source, a base tokenizer named by its Hub id, a pushed repository downloaded, a push.
"""
import importlib
import socket
import sys
import threading

from ..errors import TinyStoriesError

HUB_PROBE_SECONDS = 3.0


def require_hub(what: str, fix: str) -> None:
    """Raise one line at once when the Hub cannot be reached, instead of huggingface_hub's half minute of
    retries: one TCP connection to the Hub endpoint (or to the https proxy the environment names), at most
    `HUB_PROBE_SECONDS`. Offline mode (HF_HUB_OFFLINE=1) skips it: the libraries then read their cache.
    `fix` ends the message: what to do instead."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE or getattr(sys.modules.get("datasets.config"), "HF_HUB_OFFLINE", False):
        return
    endpoint = urlsplit(hub.ENDPOINT)
    host, port = endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)
    proxy = getproxies().get(endpoint.scheme)
    if proxy and not proxy_bypass(host):
        proxy = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy.hostname, proxy.port or 80
    failed = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS).close()
        except OSError as e:  # name resolution, refused, unreachable, timeout
            failed.append(e.strerror or str(e) or type(e).__name__)

    probe = threading.Thread(target=connect, daemon=True)  # a thread: name resolution has no timeout of its own
    probe.start()
    probe.join(HUB_PROBE_SECONDS)
    if probe.is_alive():
        failed.append(f"no answer from {host}:{port} in {HUB_PROBE_SECONDS:g} s")
    if failed:
        raise TinyStoriesError(f"{what}: the Hub ({hub.ENDPOINT}) cannot be reached ({failed[0]}); {fix}")


def hub_errors() -> tuple:
    """What a failed Hub call raises: huggingface_hub's errors are OSErrors, except a few, and its HTTP
    client (httpx2 in huggingface_hub 2, httpx before) raises its own transport errors."""
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError

    errors = [OSError, EntryNotFoundError, HFValidationError]
    for client in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(client).HTTPError)
        except ImportError:
            pass
    return tuple(errors)
