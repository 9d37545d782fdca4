"""The OCI hook's entry point (`python -c HOOK_CODE`): ask a running hook server first, decide here otherwise.

A hook is a new process per container start, and what it costs is added to every start. Deciding in process
means importing the policy, crypto and ledger code and opening the ledger (tens of ms on the embedded ledger;
hundreds on immudb through gRPC, whose client library alone takes ~150 ms to import; about 80 ms through
immudb's HTTP gateway). A resident `notary gate hook-server` has all that loaded already. So this module imports nothing but `os`, `sys` and `_socket`, and:

1. reads the container state from stdin (bounded, as the in-process hook does);
2. when a hook server listens on the socket (`--server PATH`, `NOTARY_GATE_SOCKET`, default
   /run/notary/gate.sock) and that socket is trustworthy (a socket owned by this user, in a directory owned
   by this user that nobody else may write to: otherwise anyone could plant an "allow" server), posts the
   state to it with an *identity*: the fingerprint of this hook's notary.toml (device, inode, size, mtime,
   ctime) and the overrides that change a decision (ledger, state dir, storage root, immudb server key). The
   server decides only when that identity is exactly its own (else HTTP 409): a hook never borrows a server
   started with another policy, ledger, or an older version of the same file;
3. a 200 allows and a 403 refuses with the server's reason and exit code. Anything else (no server, a socket
   that is not trusted, 409, 503 busy, a broken or slow answer) falls back to the full in-process decision
   (notary.gate.oci_hook), which is the same Gate.check and fails closed on its own.

`--no-server` (or NOTARY_GATE_SOCKET=none) never asks a server. Nothing is printed except the refusal line
on stderr, as the runtime shows it.
"""

from __future__ import annotations

import os
import sys

DEFAULT_SOCKET = "/run/notary/gate.sock"
SOCKET_ENV = "NOTARY_GATE_SOCKET"
IDENTITY_HEADER = "X-Notary-Hook-Identity"
MAX_STATE = 1 << 20  # the same limit as oci_hook.MAX_STATE (a test keeps them equal)
MAX_REPLY = 64 << 10
CONNECT_TIMEOUT = 1.0
REPLY_TIMEOUT = 20.0  # under the 30 s hook timeout `gate install` writes, leaving room to decide here
_PASS_THROUGH = ("--config", "--ledger", "--storage-root")


def config_fingerprint(path: str) -> str:
    """What identifies one version of a config file: a replaced or edited file changes it (ctime cannot be
    set back by a user). Raises OSError."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def identity(config_fp: str, ledger: str | None, storage_root: str | None, environ: dict[str, str]) -> str:
    """The string hook and server must share for the server to decide for the hook (hex fields: no header
    injection whatever the paths hold)."""
    fields = (
        ("config", config_fp),
        ("ledger", ledger or environ.get("NOTARY_LEDGER") or ""),
        ("state_dir", environ.get("NOTARY_STATE_DIR") or ""),
        ("storage_root", storage_root or environ.get("NOTARY_PODMAN_STORAGE") or ""),
        ("immudb_server_key", environ.get("NOTARY_IMMUDB_SERVER_KEY") or ""),
    )
    return ";".join(f"{k}={v.encode('utf-8', 'surrogateescape').hex()}" for k, v in fields)


def trusted_socket(path: str) -> bool:
    """A socket only this user (root, for a runtime) could have put there: anyone able to bind it could
    answer "allowed"."""
    import stat

    try:
        st = os.lstat(path)
        parent = os.stat(os.path.dirname(path) or ".")
    except (OSError, ValueError):
        return False
    euid = os.geteuid()
    return (stat.S_ISSOCK(st.st_mode) and st.st_uid == euid and stat.S_ISDIR(parent.st_mode)
            and parent.st_uid == euid and not parent.st_mode & 0o022)


def ask_server(path: str, body: bytes, ident: str, *, reply_timeout: float = REPLY_TIMEOUT) -> tuple[int, int, bytes] | None:
    """(HTTP status, notary exit code, body) from the hook server, or None when it cannot be asked or its
    answer cannot be read (the caller then decides itself)."""
    import _socket  # the C module: `socket` would import selectors, enum and collections (several ms)

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(path)
        sock.settimeout(reply_timeout)
        head = (f"POST /oci-hook HTTP/1.1\r\nHost: notary\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n{IDENTITY_HEADER}: {ident}\r\n\r\n")
        sock.sendall(head.encode("ascii") + body)
        reply = bytearray()
        while len(reply) <= MAX_REPLY:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        else:
            return None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
    return parse_reply(bytes(reply))


def parse_reply(reply: bytes) -> tuple[int, int, bytes] | None:
    """(status, exit code, body) of a complete HTTP/1.1 reply; None for anything else."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if not sep or len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1.") or not status_line[1].isdigit():
        return None
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    length = headers.get(b"content-length", b"")
    if not length.isdigit() or int(length) != len(body):
        return None  # cut short: not an answer to act on
    code = headers.get(b"x-notary-exit-code", b"")
    return int(status_line[1]), int(code) if code.isdigit() and len(code) == 1 else -1, body


def _split_args(argv: list[str]) -> tuple[list[str], str | None, dict[str, str], bool]:
    """(arguments for oci_hook.main, --server value, pass-through values, whether delegation is allowed)."""
    rest: list[str] = []
    values: dict[str, str] = {}
    server: str | None = None
    allowed = True
    items = list(argv)
    while items:
        arg = items.pop(0)
        name, eq, value = arg.partition("=")
        if name == "--no-server" and not eq:
            allowed = False
            continue
        if name not in ("--server", *_PASS_THROUGH):
            rest.append(arg)  # oci_hook.main refuses it with its usage line
            allowed = False
            continue
        if not eq:
            if not items:
                rest.append(arg)
                allowed = False
                continue
            value = items.pop(0)
        if name == "--server":
            server = value
        else:
            values[name] = value
            rest += [name, value]
    return rest, server, values, allowed


def delegate(argv: list[str], state: bytes, environ: dict[str, str]) -> int | None:
    """The exit code the hook server decided, or None when this process must decide itself."""
    rest, server, values, allowed = _split_args(argv)
    path = server or environ.get(SOCKET_ENV) or DEFAULT_SOCKET
    config = values.get("--config") or environ.get("NOTARY_CONFIG")
    if not allowed or path == "none" or not config or len(state) > MAX_STATE or not trusted_socket(path):
        return None
    try:
        ident = identity(config_fingerprint(config), values.get("--ledger"), values.get("--storage-root"), environ)
    except (OSError, ValueError):
        return None  # the in-process hook reports the unreadable config
    answer = ask_server(path, state, ident)
    if answer is None:
        return None
    status, code, body = answer
    if status == 200 and code == 0:
        return 0
    if status == 403 and code > 0:
        sys.stderr.write(body.decode("utf-8", "replace")[:4096])
        return code
    return None  # 409 (another policy), 503 (busy), anything unexpected: decide here


def main(argv: list[str] | None = None) -> int:
    """The hook's exit code: 0 lets the container start."""
    args = sys.argv[1:] if argv is None else argv
    state = sys.stdin.buffer.read(MAX_STATE + 1)
    try:
        code = delegate(args, state, dict(os.environ))
    except Exception:  # noqa: BLE001 - asking the server is an optimization: on any surprise, decide here
        code = None
    if code is not None:
        return code
    import io

    from notary.gate.oci_hook import main as decide_here

    rest, _, _, _ = _split_args(args)
    return decide_here(rest, io.BytesIO(state))


def run() -> None:
    """The process entry point. A hook process lives for one decision: the cyclic garbage collector (about a
    tenth of its instructions, collecting during imports) is off, and the exit skips the interpreter's
    teardown (another ~7%: freeing every module one by one) once stdout and stderr are flushed. Files the
    decision wrote (decision log, trusted state) are written with os.write / fsync'ed renames and closed."""
    import gc

    gc.disable()
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    run()
