#!/usr/bin/env python3
"""Sends one message file through SMTP with STARTTLS, as another mail server would.

Python 3 standard library only (smtplib, ssl). Driven by the Go e2e tests, which parse the JSON
this prints on stdout.

usage: smtp_send.py HOST PORT CAFILE FROM TO MESSAGE_FILE [SMTPUTF8]

Prints {"ok": true, "esmtp": {...EHLO keywords...}} when the message is accepted, or
{"ok": false, "code": N, "error": "..."} when the server refuses it.
"""

import json
import smtplib
import ssl
import sys


def main(argv):
    host, port, cafile, sender, rcpt, path, *rest = argv
    with open(path, "rb") as f:
        message = f.read()
    mail_options = ["BODY=8BITMIME"]
    if rest and rest[0] == "SMTPUTF8":
        mail_options.append("SMTPUTF8")
    ctx = ssl.create_default_context(cafile=cafile)
    with smtplib.SMTP(host, int(port), local_hostname="client.remote.test", timeout=120) as s:
        s.ehlo()
        s.starttls(context=ctx)
        s.ehlo()
        features = {k: v for k, v in s.esmtp_features.items()}
        try:
            refused = s.sendmail(sender, [rcpt], message, mail_options=mail_options)
        except smtplib.SMTPRecipientsRefused as e:
            code, msg = e.recipients[rcpt]
            print(json.dumps({"ok": False, "code": code, "error": msg.decode(errors="replace")}))
            return
        except smtplib.SMTPResponseException as e:
            print(json.dumps({"ok": False, "code": e.smtp_code, "error": e.smtp_error.decode(errors="replace")}))
            return
        if refused:
            print(json.dumps({"ok": False, "code": 0, "error": repr(refused)}))
            return
    print(json.dumps({"ok": True, "esmtp": features}))


if __name__ == "__main__":
    main(sys.argv[1:])
