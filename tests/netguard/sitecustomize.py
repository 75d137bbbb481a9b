"""Network guard of the test suite: refuses connections and name look-ups of non-local addresses, and logs them.

conftest.py installs it in the pytest process and puts this folder first on the PYTHONPATH of every Python
the tests start (CLIs, DataLoader workers, scripts), which imports it as `sitecustomize` at start-up. Each
refused attempt is appended to the file named by TINYSTORIES_NET_LOG; conftest fails the test that made it.
The refusal is an ordinary OSError / socket.gaierror, so the code under test still takes its real
"Hub unreachable" path, at once instead of after a time-out.
"""
import ipaddress
import os
import socket

LOCAL_NAMES = {None, "", "localhost", "localhost.localdomain", "ip6-localhost"}


def _is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False  # a host name other than localhost
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback or (mapped or address).is_unspecified


def _refuse(what: str):
    log = os.environ.get("TINYSTORIES_NET_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {what}\n")


def install() -> None:
    if getattr(socket, "_tinystories_guarded", False):
        return
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _is_local(host):
            _refuse(f"getaddrinfo {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known (tests are offline: {host})")
        return getaddrinfo(host, *args, **kwargs)

    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _refuse(f"connect {address!r}")
            raise OSError(101, f"Network is unreachable (tests are offline: {address[0]})")

    def guarded_connect(self, address):
        _check(self, address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        _check(self, address)
        return connect_ex(self, address)

    socket.getaddrinfo = guarded_getaddrinfo
    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket._tinystories_guarded = True


if os.environ.get("TINYSTORIES_NET_LOG"):
    install()
