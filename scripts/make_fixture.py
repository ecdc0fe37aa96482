#!/usr/bin/env python3
"""Writes a Latch data directory with a given Latch binary, for the upgrade tests.

    python3 scripts/make_fixture.py target/release/latch tests/fixtures/0.1.0

Starts the binary on a fresh data directory, builds a realistic vault through
the public JSON API only (users and roles, a disabled user, display names,
API tokens, a session, files in folders at several revisions, a held lock
with a comment, an overridden and a deleted file, a few hundred events),
records what the API answered in `expected.json`, stops the server with
SIGTERM and packs the data directory as `data.tar.gz`. `tests/it/upgrade.rs`
opens every fixture under tests/fixtures with the current binary and checks
that all of it is still there. Make one per release; never edit one after.
Standard library only.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

ADMIN_PASSWORD = "admin-password-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, auth, body=None, content_type=None, want=200):
        headers = {}
        if auth is not None:
            if isinstance(auth, tuple):
                raw = f"{auth[0]}:{auth[1]}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            else:
                headers["Authorization"] = "Bearer " + auth
        data = None
        if body is not None and content_type is None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif body is not None:
            data = body
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req) as resp:
                status, raw, hdrs = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            status, raw, hdrs = e.code, e.read(), e.headers
        if status != want:
            sys.exit(f"{method} {path}: {status} (wanted {want}): {raw[:400]!r}")
        self.last_headers = hdrs
        if hdrs.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw)
        return raw

    def multipart(self, method, path, auth, fields, file_name, content, want=200):
        boundary = "latchfixture" + hashlib.sha1(content).hexdigest()[:16]
        out = b""
        for name, value in fields.items():
            out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value.encode() + b"\r\n"
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{file_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode("utf-8")
        out += content + f"\r\n--{boundary}--\r\n".encode()
        return self.call(method, path, auth, out, f"multipart/form-data; boundary={boundary}", want)


def content_of(path, n):
    """Deterministic content for version n of a file (some of it binary)."""
    seed = hashlib.sha256(f"{path}#{n}".encode()).digest()
    return f"{path} version {n}\n".encode() + seed * (16 + n)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, out_dir = os.path.abspath(sys.argv[1]), sys.argv[2]
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()[-1]
    work = tempfile.mkdtemp(prefix="latch-fixture-")
    data = os.path.join(work, "data")
    port = free_port()
    env = dict(os.environ, LATCH_ADMIN_PASSWORD=ADMIN_PASSWORD, LATCH_LOG="warn")
    server = subprocess.Popen(
        [binary, "serve", "--data", data, "--bind", f"127.0.0.1:{port}"], env=env
    )
    try:
        api = Api(f"http://127.0.0.1:{port}")
        for _ in range(200):
            try:
                if urllib.request.urlopen(api.base + "/healthz").status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        expected = build(api)
        expected["version"] = version
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    os.makedirs(out_dir, exist_ok=True)
    with tarfile.open(os.path.join(out_dir, "data.tar.gz"), "w:gz") as tar:
        # The spool is empty after a clean stop; leave it out.
        tar.add(data, arcname="data", filter=lambda t: None if "/spool" in t.name else t)
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    shutil.rmtree(work)
    print(f"wrote {out_dir} from Latch {version}")


def build(api):
    admin = ("admin", ADMIN_PASSWORD)
    users = [
        {"username": "admin", "password": ADMIN_PASSWORD, "role": "admin",
         "display_name": "Administrator", "disabled": False},
        {"username": "alice", "password": "alice-password-1", "role": "user",
         "display_name": "Alice Ng", "disabled": False},
        {"username": "bob", "password": "bob-password-1", "role": "admin",
         "display_name": "Bob Ortiz", "disabled": False},
        {"username": "carol", "password": "carol-password-1", "role": "user",
         "display_name": "Carol Ämmälä", "disabled": True},
        {"username": "dave.k", "password": "dave-password-1", "role": "user",
         "display_name": "", "disabled": False},
    ]
    for u in users[1:]:
        body = {"username": u["username"], "password": u["password"], "role": u["role"]}
        if u["display_name"]:
            body["display_name"] = u["display_name"]
        api.call("POST", "/api/users", admin, body, want=201)
    api.call("PATCH", "/api/users/carol", admin, {"disabled": True})
    pw = {u["username"]: (u["username"], u["password"]) for u in users}

    tokens = []
    for who, name in [("alice", "ci script"), ("bob", "git lfs"), ("dave.k", "cnc cell")]:
        t = api.call("POST", "/api/tokens", pw[who], {"name": name}, want=201)
        tokens.append({"username": who, "name": name, "token": t["token"], "id": t["id"]})
    revoked = api.call("POST", "/api/tokens", pw["alice"], {"name": "old laptop"}, want=201)
    api.call("DELETE", f"/api/tokens/{revoked['id']}", pw["alice"], want=204)
    tok = {t["username"]: t["token"] for t in tokens}

    login = api.call("POST", "/api/login", None,
                     {"username": "alice", "password": "alice-password-1"})
    cookie = api.last_headers.get("Set-Cookie", "").split(";")[0]
    session = {"username": "alice", "cookie": cookie, "csrf_token": login["csrf_token"]}

    contents = {}

    def upload(who, path, description="", revision=None):
        fields = {"path": path, "description": description}
        if revision:
            fields["revision"] = revision
        content = content_of(path, 0)
        f = api.multipart("POST", "/api/files", tok.get(who, pw[who]), fields,
                          path.rsplit("/", 1)[-1], content, want=201)
        contents.setdefault(path, []).append(content)
        return f["id"]

    def checkin(who, fid, path, message, bump):
        content = content_of(path, len(contents[path]))
        api.multipart("POST", f"/api/files/{fid}/checkin", tok.get(who, pw[who]),
                      {"message": message, "bump": bump}, path.rsplit("/", 1)[-1], content)
        contents[path].append(content)

    def checkout(who, fid, comment=None):
        body = {"comment": comment} if comment else {}
        api.call("POST", f"/api/files/{fid}/checkout", tok.get(who, pw[who]), body)

    bracket = upload("alice", "parts/bracket.mcam", "Mounting bracket, 6061")
    checkout("alice", bracket, "new post processor")
    checkin("alice", bracket, "parts/bracket.mcam", "Retool for the 6 mm end mill", "minor")
    checkout("alice", bracket)
    checkin("alice", bracket, "parts/bracket.mcam", "Second op\n\nFlip and face to 12.0", "major")
    checkout("dave.k", bracket, "fixing the post — ø12 ✓")

    frame = upload("bob", "cad/assy/frame.step", "Welded frame\nrev from supplier", "3.5")
    checkout("alice", frame, "checking tolerances")
    api.call("POST", f"/api/files/{frame}/override", pw["bob"])

    halter = upload("dave.k", "Teile/Halter ü.mcam")
    checkout("dave.k", halter)
    checkin("dave.k", halter, "Teile/Halter ü.mcam", "Bohrung 8H7", "minor")

    scrap = upload("alice", "scrap/old.nc", "to be removed")
    api.call("DELETE", f"/api/files/{scrap}", admin, want=204)

    top = upload("alice", "readme.txt")
    # A few hundred events, as a shop makes in a week.
    for i in range(150):
        checkout("alice", top, f"look #{i}" if i % 3 == 0 else None)
        api.call("POST", f"/api/files/{top}/cancel", tok["alice"])
    checkout("bob", top)

    files = api.call("GET", "/api/files", admin)["files"]
    histories, versions = {}, []
    for f in files:
        hist = api.call("GET", f"/api/files/{f['id']}/history", admin)["versions"]
        histories[str(f["id"])] = hist
        # History is newest first; contents were recorded oldest first.
        for v, content in zip(reversed(hist), contents[f["path"]]):
            versions.append({"file_id": f["id"], "commit": v["commit"],
                             "sha256": hashlib.sha256(content).hexdigest(),
                             "size": len(content)})
    activity = api.call("GET", "/api/activity?since=0", admin)
    return {
        "users": users,
        "tokens": tokens,
        "revoked_token": revoked["token"],
        "session": session,
        "files": files,
        "histories": histories,
        "versions": versions,
        "deleted": [{"id": scrap, "path": "scrap/old.nc"}],
        "activity": activity,
        "users_list": api.call("GET", "/api/users", admin),
    }


if __name__ == "__main__":
    main()
