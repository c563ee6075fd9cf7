#!/usr/bin/env python3
"""Smoke test of a running iop-bridge HAPI sandbox server (stdlib only).

Runs the checks the sandbox was built for and prints what HAPI actually answered:
metadata, transaction with conditional create, conditional update, _lastUpdated + paging,
$validate against an uploaded profile, rest-hook subscription delivery, stale If-Match,
and (only with --expunge, because it deletes EVERYTHING on the server) $expunge.

Usage: python3 smoke_test.py [--base http://127.0.0.1:8090/fhir] [--expunge]
Exit code 0 when every check passed. Synthetic data only.
"""

import argparse
import http.server
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

FHIR_JSON = "application/fhir+json"
ID_SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.1"


class Client:
    def __init__(self, base):
        self.base = base.rstrip("/")

    def call(self, method, path, body=None, headers=None):
        """Returns (status, headers, parsed JSON body or None)."""
        url = path if path.startswith("http") else self.base + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", FHIR_JSON)
        if data is not None:
            req.add_header("Content-Type", FHIR_JSON)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                raw = resp.read()
                return resp.status, dict(resp.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = {"raw": raw.decode("utf-8", "replace")}
            return err.code, dict(err.headers), parsed


def issues(outcome):
    return [(i.get("severity"), i.get("diagnostics", "")) for i in (outcome or {}).get("issue", [])]


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}", flush=True)


def start_receiver():
    """Tiny rest-hook receiver on 127.0.0.1 (free port); records every request."""
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            received.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "body": body.decode("utf-8", "replace"),
                }
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8090/fhir")
    parser.add_argument(
        "--expunge",
        action="store_true",
        help="finish with $expunge expungeEverything=true (wipes the server)",
    )
    args = parser.parse_args()
    c = Client(args.base)
    r = Results()
    run = uuid.uuid4().hex[:8]
    mrn = f"MRN-TEST-1-{run}"

    # 1. CapabilityStatement
    st, _, cs = c.call("GET", "/metadata")
    r.check(
        "metadata",
        st == 200 and cs.get("fhirVersion") == "4.0.1",
        f"HTTP {st}, fhirVersion={cs.get('fhirVersion')}, software={cs.get('software')}",
    )

    # 2. transaction with conditional create (twice)
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": ID_SYSTEM, "value": mrn}],
                    "name": [{"family": "Smoke", "given": ["Synthetic"]}],
                    "birthDate": "1980-01-01",
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={ID_SYSTEM}|{mrn}",
                },
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Condition",
                    "identifier": [{"system": ID_SYSTEM, "value": f"COND-{run}"}],
                    "code": {"text": "synthetic condition"},
                },
                "request": {
                    "method": "POST",
                    "url": "Condition",
                    "ifNoneExist": f"identifier={ID_SYSTEM}|COND-{run}",
                },
            },
        ],
    }
    tx["entry"][1]["resource"]["subject"] = {"reference": tx["entry"][0]["fullUrl"]}
    st1, _, b1 = c.call("POST", "", tx)
    s1 = [e["response"]["status"] for e in (b1 or {}).get("entry", [])]
    st2, _, b2 = c.call("POST", "", tx)
    s2 = [e["response"]["status"] for e in (b2 or {}).get("entry", [])]
    r.check(
        "transaction #1",
        st1 == 200 and all(s.startswith("201") for s in s1) and len(s1) == 2,
        f"HTTP {st1}, entries {s1}",
    )
    r.check(
        "transaction #2 (conditional match)",
        st2 == 200 and all(s.startswith("200") for s in s2) and len(s2) == 2,
        f"HTTP {st2}, entries {s2}",
    )
    query = urllib.parse.urlencode({"identifier": f"{ID_SYSTEM}|{mrn}"})
    st, _, bundle = c.call("GET", f"/Patient?{query}")
    r.check(
        "search by identifier",
        st == 200 and bundle.get("total") == 1,
        f"HTTP {st}, total={bundle.get('total')}",
    )
    cond_loc = (b1 or {}).get("entry", [{}, {}])[1].get("response", {}).get("location", "")
    st, _, cond = (
        c.call("GET", "/" + "/".join(cond_loc.split("/")[:2])) if cond_loc else (0, {}, {})
    )
    pat_loc = (b1 or {}).get("entry", [{}])[0].get("response", {}).get("location", "")
    r.check(
        "urn:uuid reference resolved",
        st == 200 and pat_loc.startswith((cond or {}).get("subject", {}).get("reference", "?")),
        f"Condition.subject={(cond or {}).get('subject')}",
    )

    # 3. conditional update
    patient = dict(tx["entry"][0]["resource"])
    patient["name"] = [{"family": "Smoke", "given": ["Updated"]}]
    st, hdrs, upd = c.call("PUT", f"/Patient?{query}", patient)
    r.check(
        "conditional update",
        st == 200 and upd.get("meta", {}).get("versionId") == "2",
        f"HTTP {st}, id={upd.get('id')}, "
        f"versionId={upd.get('meta', {}).get('versionId')}, ETag={hdrs.get('ETag')}",
    )

    # 4. _lastUpdated + paging
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1)) + "Z"
    family = f"Paging{run}"
    for i in range(5):
        c.call(
            "POST",
            "/Patient",
            {"resourceType": "Patient", "name": [{"family": family, "given": [str(i)]}]},
        )
    url = "/Patient?" + urllib.parse.urlencode(
        {"_lastUpdated": f"gt{since}", "family": family, "_count": "2"}
    )
    pages, ids = 0, []
    while url and pages < 10:
        st, _, page = c.call("GET", url)
        pages += 1
        ids += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next(
            (link["url"] for link in page.get("link", []) if link["relation"] == "next"), None
        )
    r.check(
        "_lastUpdated + paging (_count=2)",
        pages == 3 and len(set(ids)) == 5,
        f"{pages} pages, {len(set(ids))} distinct ids",
    )

    # 5. profile upload + $validate
    profile_url = f"http://iop-bridge.example.org/fhir/StructureDefinition/smoke-patient-{run}"
    sd = {
        "resourceType": "StructureDefinition",
        "id": f"smoke-patient-{run}",
        "url": profile_url,
        "name": "SmokePatient",
        "status": "draft",
        "fhirVersion": "4.0.1",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": {
            "element": [
                {"id": "Patient", "path": "Patient"},
                {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1},
            ]
        },
    }
    st, _, _ = c.call("PUT", f"/StructureDefinition/smoke-patient-{run}", sd)
    r.check("upload StructureDefinition (differential only)", st in (200, 201), f"HTTP {st}")
    vq = "/Patient/$validate?" + urllib.parse.urlencode({"profile": profile_url})
    st_a, _, oo_a = c.call("POST", vq, {"resourceType": "Patient", "name": [{"family": "NoBirth"}]})
    err_a = [d for s, d in issues(oo_a) if s in ("error", "fatal")]
    r.check(
        "$validate without birthDate -> error",
        st_a == 200 and any("birthDate" in d for d in err_a),
        f"HTTP {st_a}, errors={err_a}",
    )
    st_b, _, oo_b = c.call(
        "POST",
        vq,
        {"resourceType": "Patient", "name": [{"family": "WithBirth"}], "birthDate": "1990-05-05"},
    )
    err_b = [d for s, d in issues(oo_b) if s in ("error", "fatal")]
    r.check(
        "$validate with birthDate -> no error",
        st_b == 200 and not err_b,
        f"HTTP {st_b}, errors={err_b}",
    )

    # 6. rest-hook subscription
    receiver, received = start_receiver()
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    sub = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "smoke test",
        "criteria": f"Task?status=requested&identifier={ID_SYSTEM}|task-{run}",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR_JSON},
    }
    st, _, sub_created = c.call("POST", "/Subscription", sub)
    sub_id = (sub_created or {}).get("id")
    t0, status = time.time(), None
    while time.time() - t0 < 60:
        status = c.call("GET", f"/Subscription/{sub_id}")[2].get("status")
        if status == "active":
            break
        time.sleep(0.5)
    r.check(
        "subscription becomes active",
        status == "active",
        f"POST HTTP {st}, status={status} after {time.time() - t0:.1f}s",
    )
    t0 = time.time()
    st, _, _task = c.call(
        "POST",
        "/Task",
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "identifier": [{"system": ID_SYSTEM, "value": f"task-{run}"}],
        },
    )
    while time.time() - t0 < 60 and not received:
        time.sleep(0.25)
    got = received[0] if received else {}
    r.check(
        "rest-hook delivery",
        bool(received),
        f"{got.get('method')} {got.get('path')} ({got.get('content_type')}) "
        f"after {time.time() - t0:.1f}s",
    )
    c.call("DELETE", f"/Subscription/{sub_id}")
    receiver.shutdown()

    # 7. stale If-Match
    pid = upd.get("id")
    st, _, oo = c.call("PUT", f"/Patient/{pid}", dict(patient, id=pid), {"If-Match": 'W/"1"'})
    r.check(
        "stale If-Match on PUT -> 409 (HAPI) / 412 (spec)",
        st in (409, 412),
        f"HTTP {st}: {[d for _, d in issues(oo)]}",
    )

    # 8. $expunge (destructive, opt-in)
    if args.expunge:
        st, _, out = c.call(
            "POST",
            "/$expunge",
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "expungeEverything", "valueBoolean": True}],
            },
        )
        left = {
            t: c.call("GET", f"/{t}?_summary=count")[2].get("total")
            for t in ("Patient", "Condition", "Task", "Subscription", "StructureDefinition")
        }
        r.check(
            "$expunge expungeEverything",
            st == 200 and not any(left.values()),
            f"HTTP {st}, {out}, remaining={left}",
        )

    print(f"{r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
