#!/usr/bin/env python3
"""Reads an INBOX over IMAP with STARTTLS, as a user's mail client would (Python imaplib).

usage: imap_read.py HOST PORT SERVERNAME cert
         STARTTLS without verification; print the server's certificate as PEM (the first
         contact a user accepts; later connections verify against it)
       imap_read.py HOST PORT SERVERNAME dump USER PASSWORD CAFILE
         STARTTLS verified against CAFILE for SERVERNAME, LOGIN, EXAMINE INBOX and print
         {"uidvalidity", "messages": [{"uid", "subject", "sha256"}]} as JSON
       imap_read.py HOST PORT SERVERNAME login USER PASSWORD CAFILE
         STARTTLS verified as for dump, then LOGIN; print {"ok": bool, "error": "..."} (a refused
         login is a result, not a failure of the script)
"""

import email
import hashlib
import imaplib
import json
import re
import ssl
import sys


def connect(host, port, servername, ctx):
    conn = imaplib.IMAP4(host, int(port), timeout=30)
    conn.host = servername  # the name the certificate is checked against (SNI too)
    conn.starttls(ssl_context=ctx)
    return conn


def check(typ, data, what):
    if typ != "OK":
        raise SystemExit(f"{what} failed: {typ} {data!r}")
    return data


def main():
    host, port, servername, cmd = sys.argv[1:5]
    if cmd == "cert":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = connect(host, port, servername, ctx)
        der = conn.sock.getpeercert(binary_form=True)
        conn.logout()
        print(ssl.DER_cert_to_PEM_cert(der), end="")
        return
    user, password, cafile = sys.argv[5:8]
    conn = connect(host, port, servername, ssl.create_default_context(cafile=cafile))
    if cmd == "login":
        try:
            conn.login(user, password)
        except imaplib.IMAP4.error as e:
            print(json.dumps({"ok": False, "error": str(e)}))
            return
        conn.logout()
        print(json.dumps({"ok": True, "error": ""}))
        return
    check(*conn.login(user, password), "LOGIN")
    check(*conn.select("INBOX", readonly=True), "EXAMINE INBOX")
    status = check(*conn.status("INBOX", "(UIDVALIDITY)"), "STATUS")[0]
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", status).group(1))
    messages = []
    for item in check(*conn.uid("FETCH", "1:*", "(UID BODY.PEEK[])"), "UID FETCH"):
        if not isinstance(item, tuple):
            continue
        uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
        msg = email.message_from_bytes(item[1])
        messages.append({"uid": uid, "subject": msg.get("Subject", ""),
                         "sha256": hashlib.sha256(item[1]).hexdigest()})
    conn.logout()
    print(json.dumps({"uidvalidity": uidvalidity, "messages": messages}))


if __name__ == "__main__":
    main()
