#!/usr/bin/env python3
"""Writes keyed audit trails with Python's hmac and hashlib, apart from qsapi's code, so that the
chain construction of service/server/audit_log.h is checked by an independent implementation
(AuditLogTest.AnIndependentImplementationsKeyedTrailVerifies) and the audit_log fuzzer has keyed
seeds. The key is 32 bytes of 0x5a, keyed from entry 1 (the tests' and the fuzzer's keying).

  mac_n = HMAC-SHA-256(key, prev_hex || JSON of the entry without "mac", keys sorted, no spaces)

Run from the project root: python3 tests/data/audit/make_keyed_logs.py"""
import hashlib
import hmac
import json

KEY = bytes([0x5A]) * 32


def entry(seq, prev, who, action, mac=True):
    e = {"seq": seq, "time": "2026-12-07T06:00:0%dZ" % seq, "who": who, "action": action, "key": "orders",
         "version": 1, "result": "ok", "request_id": "r%d" % seq, "prev": prev}
    canonical = (prev + json.dumps(e, sort_keys=True, separators=(",", ":"))).encode()
    value = hmac.new(KEY, canonical, hashlib.sha256).hexdigest() if mac else hashlib.sha256(canonical).hexdigest()
    e["mac" if mac else "hash"] = value
    return json.dumps(e, sort_keys=True, separators=(",", ":")), value


def main():
    prev, lines = "0" * 64, []
    for seq, (who, action) in enumerate([("admin", "keys.create"), ("billing", "encrypt"), ("qsapid", "audit.anchor")], 1):
        line, prev = entry(seq, prev, who, action)
        lines.append(line)
    forged, _ = entry(4, prev, "mallory", "keys.destroy", mac=False)
    for path, content in [("tests/data/audit/keyed_python.log", lines),
                          ("fuzz/corpus/audit_log/keyed_three_lines.log", lines),
                          ("tests/data/audit/keyed_then_unkeyed.log", lines + [forged]),
                          ("fuzz/corpus/audit_log/keyed_then_unkeyed.log", lines + [forged])]:
        with open(path, "w") as f:
            f.write("\n".join(content) + "\n")


if __name__ == "__main__":
    main()
