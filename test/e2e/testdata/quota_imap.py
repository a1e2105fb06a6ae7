#!/usr/bin/env python3
"""What a user of a mailbox with a quota does over IMAP (STARTTLS), with Python's imaplib.

Python 3 standard library only. Driven by the Go e2e tests, which parse the JSON this prints on
its last line.

usage: quota_imap.py HOST PORT USER PASSWORD CAFILE COMMAND [ARGS...]

commands:
  usage                 the sum of RFC822.SIZE over every folder: {"bytes": N, "messages": N}
  append FOLDER FILE    APPEND the file to FOLDER: {"ok": bool, "response": "tagged response text"}
  expunge-all FOLDER    STORE 1:* +FLAGS (\\Deleted) and EXPUNGE: {"expunged": N}
"""

import imaplib
import json
import re
import ssl
import sys

LIST_LINE = re.compile(rb'\((?P<attrs>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.+)$')
SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


def check(typ, data, what):
    if typ != "OK":
        raise SystemExit(f"{what} failed: {typ} {data!r}")
    return data


def folders(conn):
    names = []
    for line in check(*conn.list(), "LIST"):
        m = LIST_LINE.match(line)
        if not m or b"\\Noselect" in m.group("attrs"):
            continue
        name = m.group("name").decode()
        names.append(name[1:-1] if name.startswith('"') else name)
    return names


def usage(conn):
    total, count = 0, 0
    for name in folders(conn):
        typ, data = conn.select('"' + name + '"', readonly=True)
        check(typ, data, "EXAMINE " + name)
        if int(data[0]) == 0:
            continue
        for item in check(*conn.fetch("1:*", "(RFC822.SIZE)"), "FETCH RFC822.SIZE"):
            m = SIZE.search(item if isinstance(item, bytes) else item[0])
            if m:
                total += int(m.group(1))
                count += 1
    return {"bytes": total, "messages": count}


def main(argv):
    host, port, user, password, cafile, command, *args = argv
    conn = imaplib.IMAP4(host, int(port), timeout=30)
    conn.starttls(ssl_context=ssl.create_default_context(cafile=cafile))
    check(*conn.login(user, password), "LOGIN")
    if command == "usage":
        result = usage(conn)
    elif command == "append":
        folder, path = args
        with open(path, "rb") as f:
            message = f.read()
        typ, data = conn.append(folder, None, None, message)
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        result = {"ok": typ == "OK", "response": typ + " " + text}
    elif command == "expunge-all":
        check(*conn.select(args[0]), "SELECT")
        check(*conn.store("1:*", "+FLAGS", "(\\Deleted)"), "STORE")
        expunged = check(*conn.expunge(), "EXPUNGE")
        result = {"expunged": len([e for e in expunged if e])}
    else:
        raise SystemExit(f"unknown command {command!r}")
    conn.logout()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
