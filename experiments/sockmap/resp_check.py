#!/usr/bin/env python3
"""What resp.bpf.c must do to a client's byte stream (redis-server on 127.0.0.1:6390,
the program attached): each case's bytes, how they are sent, what must come back."""
import socket
import sys
import time

GET_BB = b"*2\r\n$3\r\nGET\r\n$2\r\nbb\r\n"
CASES = [
    # An allowed command before a refused one runs; the refused one fails the write
    # (SK_DROP) and nothing after it reaches the server.
    ("pipeline with FLUSHALL", b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*1\r\n$8\r\nFLUSHALL\r\n" + GET_BB,
     None, b"+OK\r\n", True),
    # One byte per write: every header is cut somewhere, the program waits (cork).
    ("one byte per write", b"*3\r\n$3\r\nSET\r\n$2\r\nbb\r\n$10\r\n0123456789\r\n" + GET_BB,
     1, b"+OK\r\n$10\r\n0123456789\r\n", False),
    # 40 commands in one write: runs of allowed commands, one verdict each run.
    ("40 pipelined", GET_BB * 40, None, b"$10\r\n0123456789\r\n" * 40, False),
    # A value larger than one sendmsg's pieces: continued across program runs.
    ("1 MB value", b"*3\r\n$3\r\nSET\r\n$2\r\nbb\r\n$1048576\r\n" + b"x" * 1048576 + b"\r\n"
     + b"*2\r\n$6\r\nSTRLEN\r\n$2\r\nbb\r\n", None, b"+OK\r\n:1048576\r\n", False),
    # Not RESP: refused (the product must read inline commands too).
    ("inline PING", b"PING\r\n", None, b"", True),
]


def run(data, chunk):
    s = socket.create_connection(("127.0.0.1", 6390))
    s.settimeout(1)
    refused = False
    try:
        step = chunk or len(data)
        for i in range(0, len(data), step):
            s.sendall(data[i:i + step])
            if chunk:
                time.sleep(0.002)
    except PermissionError:
        refused = True
    got = b""
    try:
        while True:
            x = s.recv(1 << 20)
            if not x:
                break
            got += x
    except socket.timeout:
        pass
    s.close()
    return got, refused


failed = 0
for name, data, chunk, want, want_refused in CASES:
    got, refused = run(data, chunk)
    ok = got == want and refused == want_refused
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {len(got)} bytes back, write refused: {refused}")
sys.exit(1 if failed else 0)
