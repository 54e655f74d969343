"""What the egress proxy costs: an HTTP GET and a bulk download from inside a sandboxed
child, direct (``process`` without its network namespace, the port granted to Landlock)
against through the proxy (``process`` with its namespace: forwarder + host proxy).

    python benchmarks/egress.py [--gets 300] [--mib 64]

Each GET opens a new connection (through the proxy: connect to the forwarder, CONNECT,
GET), the worst case for the proxy. The timing runs inside the child, so the MCP round trip
is not in it. Read the ratios of one run; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sandbox"))
sys.path.insert(0, str(REPO / "benchmarks"))

from process_call import _load  # noqa: E402
from sandbox_helpers import run, write_probe_plugin  # noqa: E402

SERVER = r"""
import http.server, sys
CHUNK = b"x" * 65536
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        mib = int(self.path.strip("/") or 0)
        n = mib * 1024 * 1024 if mib else 2
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        if not mib:
            self.wfile.write(b"ok")
            return
        for _ in range(n // len(CHUNK)):
            self.wfile.write(CHUNK)
    def log_message(self, *a):
        pass
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"""
"""The upstream: its own process, as a remote server would be (not competing for the
proxy's interpreter lock)."""


CHILD = '''
import os, socket, time, statistics
PORT, GETS, MIB, VIA = {port}, {gets}, {mib}, {via}
proxy = int(os.environ["HTTPS_PROXY"].rpartition(":")[2]) if VIA else 0
def open_conn():
    if not VIA:
        return socket.create_connection(("127.0.0.1", PORT))
    s = socket.create_connection(("127.0.0.1", proxy))
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\\r\\n\\r\\n" % PORT)
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    return s
def get(path):
    s = open_conn()
    s.sendall(b"GET /%s HTTP/1.0\\r\\n\\r\\n" % path)
    n = 0
    while True:
        chunk = s.recv(1 << 18)
        if not chunk:
            break
        n += len(chunk)
    s.close()
    return n
lat = []
for _ in range(GETS):
    t = time.perf_counter(); get(b""); lat.append((time.perf_counter() - t) * 1e3)
t = time.perf_counter(); n = get(str(MIB).encode()); dt = time.perf_counter() - t
lat.sort()
result = [statistics.median(lat), lat[int(len(lat) * 0.9)], n / dt / 2 ** 20]
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gets", type=int, default=300)
    ap.add_argument("--mib", type=int, default=64)
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
    port = int(server.stdout.readline())
    tmp = Path(tempfile.mkdtemp(prefix="bench-egress-"))
    rows = {}
    for i, (wall, via) in enumerate((("process, seccomp only", 0), ("process + netns", 1))):
        root = write_probe_plugin(tmp / f"p{i}", "bench-egress", network=[f"127.0.0.1:{port}"])
        loaded = _load(root, tmp, wall)
        try:
            run(loaded, textwrap.dedent(CHILD).format(port=port, gets=20, mib=1, via=via), timeout=120)   # warm up
            rows[wall] = run(loaded, textwrap.dedent(CHILD).format(port=port, gets=args.gets, mib=args.mib, via=via),
                             timeout=300)
        finally:
            loaded.plugin.shutdown()
    server.kill()
    server.wait()
    print(f"HTTP GET from inside a sandboxed child, new connection each ({args.gets} GETs), "
          f"and one {args.mib} MiB download")
    print(f"{'path':<34}{'GET p50':>10}{'GET p90':>10}{'MiB/s':>10}")
    names = {"process, seccomp only": "direct (no namespace)", "process + netns": "through the egress proxy"}
    for wall, (p50, p90, mibs) in rows.items():
        print(f"{names[wall]:<34}{p50:>7.3f} ms{p90:>7.3f} ms{mibs:>10.0f}")
    d, p = rows["process, seccomp only"], rows["process + netns"]
    print(f"proxy / direct: GET p50 x{p[0] / d[0]:.2f} (+{p[0] - d[0]:.3f} ms), throughput x{p[2] / d[2]:.2f}")


if __name__ == "__main__":
    main()
