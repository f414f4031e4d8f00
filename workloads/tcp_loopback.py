"""connect/accept/close on 127.0.0.1, plus one refused connection (ECONNREFUSED)."""

import socket

N = 20
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(N)
addr = listener.getsockname()
for _ in range(N):
    client = socket.create_connection(addr)
    server, _peer = listener.accept()
    client.sendall(b"x")
    assert server.recv(1) == b"x"
    client.close()
    server.close()
listener.close()
refused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    refused.connect(addr)
except ConnectionRefusedError:
    pass
refused.close()
