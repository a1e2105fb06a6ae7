#!/usr/bin/env python3
"""Reads and changes a mailbox over IMAP with STARTTLS, as a user's mail client would.

Python 3 standard library only (imaplib, ssl). Driven by the Go e2e tests, which parse the JSON
this prints on stdout.

usage: imap_client.py HOST PORT USER PASSWORD CAFILE COMMAND [ARGS...]

commands:
  dump                     EXAMINE INBOX (read-only, flags untouched) and print
                           {"caps_before_tls", "caps_after_tls", "uidvalidity", "uidnext",
                            "messages": [{"uid", "flags", "size", "sha256", "message_b64"}]}
  digest                   the same, but size and sha256 of BODY[TEXT] (the body after the
                           header) and no message_b64: for large messages
  store UID FLAG...        UID STORE UID +FLAGS (FLAG...) on INBOX, print {"ok": true}
  login-without-tls        try LOGIN on the plain connection, print {"refused": bool, "error"}
"""

import base64
import hashlib
import imaplib
import json
import re
import ssl
import sys

FETCH_LINE = re.compile(rb"UID (\d+)")
FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def connect(host, port, cafile):
    conn = imaplib.IMAP4(host, int(port), timeout=30)
    caps_before = sorted(conn.capabilities)
    ctx = ssl.create_default_context(cafile=cafile)
    conn.starttls(ssl_context=ctx)
    return conn, caps_before, sorted(conn.capabilities)


def check(typ, data, what):
    if typ != "OK":
        raise SystemExit(f"{what} failed: {typ} {data!r}")
    return data


def dump(conn, mailbox, digest_only=False):
    typ, data = conn.select(mailbox, readonly=True)
    check(typ, data, "EXAMINE " + mailbox)
    exists = int(data[0])
    status = check(*conn.status(mailbox, "(UIDVALIDITY UIDNEXT)"), "STATUS")[0]
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", status).group(1))
    uidnext = int(re.search(rb"UIDNEXT (\d+)", status).group(1))
    messages = []
    if exists:
        for item in check(*conn.uid("FETCH", "1:*", "(UID FLAGS)"), "UID FETCH FLAGS"):
            if not isinstance(item, bytes) or not item:
                continue
            uid = int(FETCH_LINE.search(item).group(1))
            flags = FLAGS.search(item).group(1).decode().split()
            messages.append({"uid": uid, "flags": sorted(flags)})
        section = "TEXT" if digest_only else ""
        for m in messages:
            data = check(*conn.uid("FETCH", str(m["uid"]), f"(BODY.PEEK[{section}])"), "UID FETCH BODY.PEEK")
            literal = next(part[1] for part in data if isinstance(part, tuple))
            m["size"] = len(literal)
            m["sha256"] = hashlib.sha256(literal).hexdigest()
            if not digest_only:
                m["message_b64"] = base64.b64encode(literal).decode()
    return {"uidvalidity": uidvalidity, "uidnext": uidnext, "exists": exists, "messages": messages}


def main(argv):
    host, port, user, password, cafile, command, *args = argv
    if command == "login-without-tls":
        conn = imaplib.IMAP4(host, int(port), timeout=30)
        try:
            conn.login(user, password)
            result = {"refused": False, "error": ""}
        except imaplib.IMAP4.error as e:
            result = {"refused": True, "error": str(e), "caps": sorted(conn.capabilities)}
        conn.shutdown()
        print(json.dumps(result))
        return
    conn, caps_before, caps_after = connect(host, port, cafile)
    check(*conn.login(user, password), "LOGIN")
    if command == "dump":
        result = dump(conn, "INBOX")
        result["caps_before_tls"] = caps_before
        result["caps_after_tls"] = caps_after
    elif command == "digest":
        result = dump(conn, "INBOX", digest_only=True)
    elif command == "store":
        uid, flags = args[0], args[1:]
        check(*conn.select("INBOX"), "SELECT INBOX")
        check(*conn.uid("STORE", uid, "+FLAGS", "(" + " ".join(flags) + ")"), "UID STORE")
        conn.close()
        result = {"ok": True}
    else:
        raise SystemExit(f"unknown command {command!r}")
    conn.logout()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
