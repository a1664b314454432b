"""Floods a Deckhand server with connections that never authenticate.

usage: flood.py HOST PORT SECONDS IDLE_ADDRESSES IDLE_PER_ADDRESS HANDSHAKE_ADDRESSES

- Idle connections: from 127.0.1.1, 127.0.1.2, ... (IDLE_ADDRESSES of
  them), IDLE_PER_ADDRESS plain TCP connections each that never send a
  byte (a peer gone quiet mid-handshake). Each one the server closes is
  opened again 100 ms later, so the pressure stays.
- Handshake flood: from 127.0.2.1, ... (HANDSHAKE_ADDRESSES), one thread
  each completing TLS handshakes as fast as it can, then closing.

Prints one JSON object of counts when done.
"""

import json
import selectors
import socket
import ssl
import sys
import threading
import time

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
idle_addresses, idle_per_address, handshake_addresses = (int(a) for a in sys.argv[4:7])
end = time.monotonic() + seconds
lock = threading.Lock()
stats = {
    "idle_opened": 0,
    "idle_closed_by_server": 0,
    "idle_max_open": 0,
    "handshakes": 0,
    "handshake_failures": 0,
}


def add(name, value=1):
    with lock:
        stats[name] += value


def idle():
    selector = selectors.DefaultSelector()
    open_sockets = {}
    reopen = []  # (when, source)

    def open_one(source):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.bind((source, 0))
            sock.connect((host, port))
        except BlockingIOError:
            pass
        except OSError:
            sock.close()
            reopen.append((time.monotonic() + 0.1, source))
            return
        selector.register(sock, selectors.EVENT_READ, source)
        open_sockets[sock] = source
        add("idle_opened")

    for a in range(idle_addresses):
        for _ in range(idle_per_address):
            open_one(f"127.0.1.{a + 1}")
    while time.monotonic() < end:
        for key, _ in selector.select(timeout=0.05):
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                sock.close()
                reopen.append((time.monotonic() + 0.1, open_sockets.pop(sock)))
                add("idle_closed_by_server")
        now = time.monotonic()
        due = [r for r in reopen if r[0] <= now]
        reopen[:] = [r for r in reopen if r[0] > now]
        for _, source in due:
            open_one(source)
        with lock:
            stats["idle_max_open"] = max(stats["idle_max_open"], len(open_sockets))
    for sock in open_sockets:
        sock.close()


def handshakes(source):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=5, source_address=(source, 0)) as raw:
                with context.wrap_socket(raw) as tls:
                    tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            add("handshakes")
        except OSError:
            add("handshake_failures")
            time.sleep(0.01)


threads = [threading.Thread(target=idle)]
threads += [threading.Thread(target=handshakes, args=(f"127.0.2.{a + 1}",)) for a in range(handshake_addresses)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(stats), flush=True)
