"""A small TCP proxy for fault tests: forward, cut every connection, or black-hole them.

    with TcpProxy(target_port) as proxy:      # clients connect to proxy.port
        proxy.cut()                            # close every open connection (RST-like)
        proxy.blackhole(True)                  # keep sockets open, forward nothing
"""

from __future__ import annotations

import selectors
import socket
import threading


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listen = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listen.getsockname()[1])
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._hole = threading.Event()
        self._cut_request = threading.Event()
        self._cut = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.cut()
        self._listen.close()

    def cut(self) -> None:
        """Close every open connection (the proxy thread does it between two selects)."""
        if self._thread.is_alive() and not self._stop.is_set():
            self._cut.clear()
            self._cut_request.set()
            self._cut.wait(5)
            return
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()
                except OSError:
                    pass

    def blackhole(self, on: bool) -> None:
        """While on, nothing moves (as in a network partition): no byte is read or forwarded,
        new connections are not accepted; TCP keeps the bytes, so they flow on afterwards."""
        if on:
            self._hole.set()
        else:
            self._hole.clear()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        self._listen.setblocking(False)
        sel.register(self._listen, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket] = {}
        while not self._stop.is_set():
            if self._cut_request.is_set():
                for s in list(peers):
                    try:
                        sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                peers.clear()
                self._close_all()
                self._cut_request.clear()
                self._cut.set()
            if self._hole.is_set():
                self._stop.wait(0.05)
                continue
            for key, _ in sel.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listen:
                    try:
                        client, _ = self._listen.accept()
                    except OSError:
                        continue
                    try:
                        upstream = socket.create_connection(self.target, timeout=5)
                    except OSError:
                        client.close()
                        continue
                    self.accepted += 1
                    with self._lock:
                        self._pairs.append((client, upstream))
                    peers[client], peers[upstream] = upstream, client
                    sel.register(client, selectors.EVENT_READ)
                    sel.register(upstream, selectors.EVENT_READ)
                    continue
                other = peers.get(sock)
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data or other is None or other.fileno() < 0:
                    for s in (sock, other):
                        if s is not None:
                            peers.pop(s, None)
                            try:
                                sel.unregister(s)
                            except (KeyError, ValueError):
                                pass
                            try:
                                s.close()
                            except OSError:
                                pass
                    continue
                try:
                    other.sendall(data)
                except OSError:
                    pass
