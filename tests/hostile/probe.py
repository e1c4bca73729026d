#!/usr/bin/env python3
"""A battery of hostile requests against a running graphpilot, over raw sockets (no client library
tidies them up): malformed and oversized bodies, EDM values at and past their limits, broken
framing, odd paths and methods, every query option wrong, forged tokens, odd headers, bad batches.

Each answer must come within a few seconds, never be a 5xx, and be a 4xx in Graph's error shape
(JSON `error` with `code`, `message`, `innerError`, and a `request-id` header) unless the case is
one the HTTP parser itself refuses before any request exists (broken framing: a bare 400/414/431).
A refused write must change nothing: the victim event's ETag is compared around every refused
PATCH, and the event count at the end must equal the creates that were acknowledged.

Usage: probe.py PORT TOKEN   (TOKEN: DeviceManagementManagedDevices.ReadWrite.All in one tenant;
throttling off). Exit status 1 and a list of the problems if any case fails.
"""

import base64
import json
import random
import socket
import sys
import time

PORT, TOKEN = int(sys.argv[1]), sys.argv[2]
EVENTS = "/beta/deviceManagement/autopilotEvents"
problems = []
created = 0
VARIED = random.Random(7)  # incompressible strings, the same every run


def exchange(data, wait=10.0):
    """Sends raw bytes; returns (status or None, headers dict, body bytes) once the answer is whole."""
    sock = socket.create_connection(("127.0.0.1", PORT))
    sock.settimeout(wait)
    answer = b""
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it read everything (413): the answer may still be there
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
            head, sep, body = answer.partition(b"\r\n\r\n")
            if sep:
                lengths = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if lengths and len(body) >= int(lengths[0].split(b":")[1]):
                    break
    except socket.timeout:
        if not answer:
            return "TIMEOUT", {}, b""
    finally:
        sock.close()
    if not answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")):
        return None, {}, answer
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0][9:12]), headers, body


def request(method, path, body=None, headers=None, auth=True, content_type="application/json"):
    all_headers = {"Host": f"127.0.0.1:{PORT}"}
    if auth:
        all_headers["Authorization"] = f"Bearer {TOKEN}"
    if body is not None:
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        if content_type:
            all_headers["Content-Type"] = content_type
        all_headers["Content-Length"] = str(len(body))
    all_headers.update(headers or {})
    path = path.replace(" ", "%20").replace("#", "%23")
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items())
    return exchange((head + "Connection: close\r\n\r\n").encode("latin1", "replace") + (body or b""))


def check(name, answer, allowed=None, framing=False):
    """Judges one answer; returns its status."""
    global created
    status, headers, body = answer
    problem = None
    if status == "TIMEOUT":
        problem = "no answer within 10 s"
    elif status is None:
        if not framing:
            problem = f"connection closed without an answer ({body[:60]!r})"
    elif status >= 500:
        problem = f"{status} {body[:200]!r}"
    elif allowed and status not in allowed:
        problem = f"{status}, expected one of {allowed}: {body[:200]!r}"
    elif status >= 400 and not (framing and not body):
        try:
            error = json.loads(body)["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
            assert "request-id" in error["innerError"] and "request-id" in headers
            assert headers.get("content-type", "").startswith("application/json")
        except Exception:
            if name.startswith("HEAD "):
                pass
            else:
                problem = f"{status} without Graph's error body: {body[:120]!r}"
    if status == 201:
        created += 1
    print(f"{'!!' if problem else 'ok'} {name[:90]:90} {status}{'  ' + problem if problem else ''}")
    if problem:
        problems.append(f"{name[:90]}: {problem}")
    return status


def victim_etag():
    status, headers, body = request("GET", VICTIM)
    assert status == 200, status
    return json.loads(body)["@odata.etag"]


# The victim: refused PATCHes must leave it as it is.
status, _, body = request("POST", EVENTS, json.dumps({"deviceSerialNumber": "VICTIM"}))
assert status == 201, (status, body)
created += 1
VICTIM = f"{EVENTS}/{json.loads(body)['id']}"

# ---- bodies: refused on create and on update
BODIES = {
    "lone high surrogate": '{"deviceSerialNumber": "\\ud800"}',
    "lone low surrogate": '{"deviceSerialNumber": "\\udc00x"}',
    "escaped NUL": '{"deviceSerialNumber": "a\\u0000b"}',
    "raw NUL": b'{"deviceSerialNumber": "a\x00b"}',
    "raw control character": '{"deviceSerialNumber": "a\x01b"}',
    "byte order mark": "\ufeff{}",
    "invalid UTF-8": b'{"deviceSerialNumber": "\xff\xfe"}',
    "overlong UTF-8": b'{"deviceSerialNumber": "\xc0\xaf"}',
    "UTF-8 encoded surrogate": b'{"deviceSerialNumber": "\xed\xa0\x80"}',
    "8 fractional digits": '{"eventDateTime": "2020-01-01T00:00:00.12345678Z"}',
    "instant after 9999": '{"eventDateTime": "9999-12-31T23:59:59.9999999-01:00"}',
    "instant before 0001": '{"eventDateTime": "0001-01-01T00:00:00+01:00"}',
    "offset of 25 hours": '{"eventDateTime": "2020-01-01T00:00:00+25:00"}',
    "February 30": '{"eventDateTime": "2021-02-30T00:00:00Z"}',
    "leap second": '{"eventDateTime": "2016-12-31T23:59:60Z"}',
    "date without time": '{"eventDateTime": "2020-01-01"}',
    "time without seconds": '{"eventDateTime": "2020-01-01T00:00Z"}',
    "year 0": '{"eventDateTime": "0000-01-01T00:00:00Z"}',
    "five-digit year": '{"eventDateTime": "10000-01-01T00:00:00Z"}',
    "duration past the tick range": '{"deploymentDuration": "P10675199DT2H48M5.4775808S"}',
    "duration of 10^23 days": '{"deploymentDuration": "P99999999999999999999999D"}',
    "duration of 10^20 seconds": '{"deploymentDuration": "PT99999999999999999999S"}',
    "duration of i64::MAX hours": '{"deploymentDuration": "PT9223372036854775807H"}',
    "duration P": '{"deploymentDuration": "P"}',
    "duration PT": '{"deploymentDuration": "PT"}',
    "duration with years": '{"deploymentDuration": "P1Y"}',
    "huge Python timedelta": '{"deploymentDuration": "99999999999999999999 days, 0:00:00"}',
    "Int32 2^31": '{"targetedAppCount": 2147483648}',
    "Int32 -2^31-1": '{"targetedAppCount": -2147483649}',
    "Int32 1e2": '{"targetedAppCount": 1e2}',
    "Int32 as string": '{"targetedAppCount": "1"}',
    "Int32 of 30 digits": '{"targetedAppCount": 123456789012345678901234567890}',
    "Int32 1e400": '{"targetedAppCount": 1e400}',
    "enum as number": '{"enrollmentType": 1}',
    "enum as flags": '{"enrollmentType": "unknown,offlineDomainJoined"}',
    "enum in the wrong case": '{"enrollmentType": "Unknown"}',
    "null for a non-nullable": '{"enrollmentType": null}',
    "details as a string": '{"policyStatusDetails": "x"}',
    "details of numbers": '{"policyStatusDetails": [1]}',
    "details null": '{"policyStatusDetails": null}',
    "details with a navigation": '{"policyStatusDetails": [{"policyStatusDetails": []}]}',
    "detail with a bad enum": '{"policyStatusDetails": [{"policyType": "nope"}]}',
    "odata.bind": '{"policyStatusDetails@odata.bind": ["x"]}',
    "another entity type": '{"@odata.type": "#microsoft.graph.user"}',
    "odata.type as number": '{"@odata.type": 5}',
    "unknown property": '{"nope": 1}',
    "10,000-deep array in a value": '{"deviceSerialNumber": ' + "[" * 10000 + "]" * 10000 + "}",
    "10,000-deep object": '{"a":' * 10000 + "1" + "}" * 10000,
    "duplicate keys": '{"deviceSerialNumber": "a", "deviceSerialNumber": "b"}',
    "trailing value": "{} {}",
    "trailing comma": '{"deviceSerialNumber": "a",}',
    "comment": "{/*x*/}",
    "single quotes": "{'a': 1}",
    "NaN": '{"targetedAppCount": NaN}',
    "empty": "",
    "whitespace": "   ",
    "null": "null",
    "array": "[]",
    "string": '"x"',
    "number": "1",
    "1 MB key": '{"' + "k" * 1_000_000 + '": 1}',
    "200,000 keys": "{" + ",".join(f'"k{i}": 1' for i in range(200_000)) + "}",
    "20,000 inline details": json.dumps({"policyStatusDetails": [{"displayName": "d"} for _ in range(20_000)]}),
    "body over 4 MiB": json.dumps({"deviceSerialNumber": "x" * (4 * 1024 * 1024)}),
}
for name, body in BODIES.items():
    check(f"POST {name}", request("POST", EVENTS, body), allowed=[400, 413])
    before = victim_etag()
    check(f"PATCH {name}", request("PATCH", VICTIM, body), allowed=[400, 413])
    if victim_etag() != before:
        problems.append(f"PATCH {name}: refused, yet the event changed")

# Bodies that are fine, at the edges.
for name, body in {
    "the longest duration": '{"deploymentDuration": "P10675199DT2H48M5.4775807S"}',
    "a 3 MB string": json.dumps({"deviceSerialNumber": "x" * 3_000_000}),
    "a 100,000-character string": json.dumps({"managedDeviceName": "é" * 100_000}),
    "the last tick of 9999": '{"eventDateTime": "9999-12-31T23:59:59.9999999Z"}',
    "an offset of 14 hours": '{"eventDateTime": "2020-01-01T00:00:00+14:00"}',
    "3,000 varied characters in every indexed string": json.dumps(
        {name: "".join(chr(VARIED.randrange(33, 127)) for _ in range(3000))
         for name in ["deviceSerialNumber", "userPrincipalName", "deviceId"]}),
}.items():
    check(f"POST {name}", request("POST", EVENTS, body), allowed=[201])

for content_type in ["text/json", "application/json-patch+json", "application/xml", "", "multipart/form-data; boundary=x",
                     "application/x-www-form-urlencoded", "application", "/", ";;;", "application/json/x"]:
    check(f"POST with Content-Type {content_type!r}", request("POST", EVENTS, "{}", content_type=content_type), allowed=[400, 415])
check("POST without Content-Type", request("POST", EVENTS, "{}", content_type=None), allowed=[400, 415])

AUTH = f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
FRAMING = {
    "Content-Length of 5 MB, no body sent": f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 5000000\r\n\r\n",
    "Expect: 100-continue with 5 MB": f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\n{AUTH}Expect: 100-continue\r\nContent-Length: 5000000\r\n\r\n",
    "Content-Length of 23 digits": f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 99999999999999999999999\r\n\r\n{{}}",
    "negative Content-Length": f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: -1\r\n\r\n{{}}",
    "two Content-Lengths": f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{{}} ",
    "bad chunk size": f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\n{AUTH}Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n",
    "space in the request target": f"GET {EVENTS}?$filter=a b HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n",
    "control bytes in a header": f"GET {EVENTS} HTTP/1.1\r\nHost: x\r\n{AUTH}Accept: \x01\x02\r\n\r\n",
    "header without a colon": f"GET {EVENTS} HTTP/1.1\r\nHost: x\r\n{AUTH}Nonsense\r\n\r\n",
    "HTTP/9.9": f"GET {EVENTS} HTTP/9.9\r\nHost: x\r\n{AUTH}\r\n",
    "garbage request line": "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    "request line of 70 KB": f"GET {EVENTS}?$orderby={'x' * 70000} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n",
}
for name, data in FRAMING.items():
    check(name, exchange(data.encode("latin1")), allowed=[400, 408, 413, 414, 431, 505], framing=True)

# ---- paths and methods
for path in [EVENTS + "/%00", EVENTS + "('abc''def')", EVENTS + "('", EVENTS + "(abc)", EVENTS + "('" + "a" * 20000 + "')",
             EVENTS + "/" + "a" * 20000, EVENTS + "/%E2%82%AC", EVENTS + "/%ff", EVENTS + "/a%2Fb", "//deviceManagement/autopilotEvents",
             "/beta//deviceManagement//autopilotEvents", VICTIM + "/x/y/z", VICTIM + "/policyStatusDetails/x/y",
             VICTIM + "/policyStatusDetails/$count/x", EVENTS + "/$count/x", EVENTS + "/$batch", "/beta/$metadata/x",
             "/beta/..%2F..%2Fetc/passwd", EVENTS + "/../autopilotEvents", "/beta/%2e%2e/graphpilot/faults", "/beta/deviceManagement",
             EVENTS + ";x=y", EVENTS + "/$value", VICTIM + "/$value", VICTIM + "/deviceSerialNumber", VICTIM + "/$ref",
             EVENTS + "/microsoft.graph.deviceManagementAutopilotEvent", EVENTS + "(id='x')", EVENTS + "(" + ")" * 1000,
             "/v1.0/deviceManagement/autopilotEvents", "/BETA/DEVICEMANAGEMENT/AUTOPILOTEVENTS/%20"]:
    check(f"GET {path[:70]}", request("GET", path), allowed=[400, 404, 405])
    check(f"DELETE {path[:70]}", request("DELETE", path), allowed=[400, 404, 405])
for method in ["PUT", "TRACE", "CONNECT", "FOO", "get", "PROPFIND"]:
    check(f"{method} an event", request(method, VICTIM, "{}"), allowed=[400, 405])
check("absolute-form target", exchange(f"GET http://elsewhere.example{EVENTS}?$top=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode()), allowed=[200, 400])
check("HTTP/1.0 without Host", exchange(f"GET {EVENTS}?$top=1 HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()), allowed=[200, 400])
status, _, body = request("GET", EVENTS + "?$top=1", headers={"Host": 'evil"><x>:1'})
check("a hostile Host in next links", (status, {"request-id": "-", "content-type": "application/json"}, body), allowed=[200, 400])
if status == 200:
    json.loads(body)  # still valid JSON whatever the Host said

# ---- query options
QUERIES = ["$top=1000000000000000000000", "$top=0", "$top=-1", "$top= 5", "$top=5.0", "$top=+5", "$top=0x10", "$top=", "$top=1&$top=2",
           "$top=1001", "$skip=99999999999999999999", "$skip=-1", "$skip=1e3", "$filter=", "$filter=" + "(" * 1000 + "true" + ")" * 1000,
           "$filter=" + "not " * 3000 + "true", "$filter=" + "-" * 5000 + "1 eq 1", "$filter=targetedAppCount eq " + "-" * 3000 + "1",
           "$filter=deviceSerialNumber eq '", "$filter=deviceSerialNumber in (" + ",".join(f"'{i}'" for i in range(3000)) + ")",
           "$filter=" + " or ".join(f"targetedAppCount eq {i}" for i in range(1200)),
           "$filter=deviceSerialNumber in ()", "$filter=deviceSerialNumber in ('a',)", "$filter=contains(deviceSerialNumber)",
           "$filter=contains()", "$filter=nosuchfunction(x)", "$filter=deviceSerialNumber eq null eq null",
           "$filter=targetedAppCount eq 99999999999999999999", "$filter=targetedAppCount add 1 eq 2",
           "$filter=eventDateTime gt 9999-12-31T23:59:59.99999999Z", "$filter=eventDateTime gt 2020-13-01T00:00:00Z",
           "$filter=deploymentDuration gt duration'P99999999999999999D'", "$filter=deploymentState eq microsoft.graph.user'x'",
           "$filter=microsoft.graph.x/eventDateTime eq null", "$filter=policyStatusDetails/any(d:d/errorCode eq 1)",
           "$filter=%zz", "$filter=%", "$filter=%E0%A4", "$filter=%00", "$filter=deviceSerialNumber eq '%00'", "$filter=1", "$filter='a'", "$filter=null", "$filter=$it eq 1",
           "$filter=deviceSerialNumber eq 1", "$filter=eventDateTime eq 'yesterday'", "$filter=deploymentState eq 'nope'",
           "$orderby=eventDateTime sideways", "$orderby=", "$orderby=policyStatusDetails", "$orderby=eventDateTime desc desc",
           "$orderby=" + ",".join(["eventDateTime"] * 2000), "$select=" + ",".join(["id"] * 5000), "$select=", "$select=nope",
           "$select=id,,id", "$expand=policyStatusDetails($expand=policyStatusDetails)", "$expand=policyStatusDetails($select=nope)",
           "$expand=policyStatusDetails(" + "(" * 500, "$expand=nope", "$expand=", "$count=maybe", "$search=x",
           "$apply=groupby((x))", "$compute=x", "$levels=2", "$index=1", "$skiptoken=", "$skiptoken=" + "A" * 30000,
           "$skiptoken=%FF%FE", "$=1", "filter=true&$filter=true", "$deltatoken=x", "$id=x", "$value=1", "$top=1%23frag",
           "$filter=" + "x" * 33000]
for query in QUERIES:
    check(f"GET ?{query[:80]}", request("GET", EVENTS + "?" + query), allowed=[400, 414])
    check(f"GET $count ?{query[:70]}", request("GET", EVENTS + "/$count?" + query), allowed=[200, 400, 414])

# ---- tokens and headers
header_b64, payload_b64, signature = TOKEN.split(".")


def b64(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def unb64(text):
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


HEADER, PAYLOAD = unb64(header_b64), unb64(payload_b64)
tokens = {"empty": "", "two segments": "a.b", "50 KB of garbage": "x" * 50000, "not JSON header": "eHg." + payload_b64 + "." + signature}
for alg in ["none", "None", "NONE", "HS256", "RS256", "ES384", "EdDSA", ""]:
    tokens[f"alg {alg!r} unsigned"] = b64({**HEADER, "alg": alg}) + "." + payload_b64 + "."
    tokens[f"alg {alg!r} with the real signature"] = b64({**HEADER, "alg": alg}) + "." + payload_b64 + "." + signature
for change in [{"exp": "9999999999"}, {"exp": 1e30}, {"exp": int(time.time()) - 3600}, {"nbf": int(time.time()) + 3600},
               {"tid": None}, {"tid": 5}, {"tid": "x" * 10000}, {"roles": None}, {"aud": ["x"]}, {"iss": None}, {"appid": {}}]:
    tokens[f"claims changed: {str(change)[:40]}"] = header_b64 + "." + b64({**PAYLOAD, **change}) + "." + signature
tokens["unknown kid"] = b64({**HEADER, "kid": "nope"}) + "." + payload_b64 + "." + signature
tokens["embedded jwk"] = b64({**HEADER, "jwk": {"kty": "EC"}}) + "." + payload_b64 + "." + signature
tokens["signature of another token"] = header_b64 + "." + b64({**PAYLOAD, "tid": "other"}) + "." + signature
for name, token in tokens.items():
    check(f"token: {name}", request("GET", EVENTS, auth=False, headers={"Authorization": "Bearer " + token}), allowed=[401])
    check(f"token on a write: {name}", request("POST", EVENTS, "{}", auth=False, headers={"Authorization": "Bearer " + token}), allowed=[401])
for value in ["Basic YTpi", "Bearer", "Negotiate x", TOKEN]:
    check(f"Authorization: {value[:20]}", request("GET", EVENTS, auth=False, headers={"Authorization": value}), allowed=[401])
check("two Authorization headers", exchange(f"GET {EVENTS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode()), allowed=[401])
check("a 20 KB client-request-id", request("GET", VICTIM, headers={"client-request-id": "c" * 20000}), allowed=[200])
check("a non-ASCII client-request-id", request("GET", VICTIM, headers={"client-request-id": "\xe9\xff"}), allowed=[200])
for value in ["garbage", '"a", "b"', 'W/"' + "a" * 20000 + '"', "", "W/", "**"]:
    before = victim_etag()
    check(f"If-Match {value[:30]!r}", request("PATCH", VICTIM, '{"osVersion": "x"}', headers={"If-Match": value}), allowed=[400, 412])
    if victim_etag() != before:
        problems.append(f"If-Match {value[:30]!r}: refused, yet the event changed")
check("Accept: application/xml", request("GET", VICTIM, headers={"Accept": "application/xml"}), allowed=[200])
check("Prefer: odata.maxpagesize=0", request("GET", EVENTS, headers={"Prefer": "odata.maxpagesize=0"}), allowed=[200, 400])
check("1,000 headers", request("GET", VICTIM, headers={f"x-h{i}": "v" for i in range(1000)}), allowed=[200])
check("1,000 headers of 70 KB", request("GET", VICTIM, headers={f"x-h{i}": "v" * 70 for i in range(1000)}), allowed=[431])
check("3,000 headers", exchange((f"GET {VICTIM} HTTP/1.1\r\nHost: x\r\n" + "x: v\r\n" * 3000 + "\r\n").encode()), allowed=[431], framing=True)
check("70 KB of headers", request("GET", VICTIM, headers={"x-a": "a" * 35000, "x-b": "b" * 35000}), allowed=[431])


# ---- batches
def step(n, **fields):
    return {"id": str(n), "method": "GET", "url": "/deviceManagement/autopilotEvents?$top=1", **fields}


def post(**fields):
    return {"id": "1", "method": "POST", "url": "/deviceManagement/autopilotEvents", **fields}


BATCHES = {
    "21 steps": {"requests": [step(n) for n in range(21)]},
    "no steps": {"requests": []},
    "no requests": {},
    "requests as an object": {"requests": {}},
    "a step that is a number": {"requests": [1]},
    "a numeric id": {"requests": [{**step(0), "id": 1}]},
    "no id": {"requests": [{"method": "GET", "url": "/x"}]},
    "no method": {"requests": [{"id": "1", "url": "/x"}]},
    "method CONNECT": {"requests": [step(0, method="CONNECT")]},
    "no url": {"requests": [{"id": "1", "method": "GET"}]},
    "empty url": {"requests": [step(0, url="")]},
    "headers as an array": {"requests": [step(0, headers=[])]},
    "a numeric header": {"requests": [step(0, headers={"x": 1})]},
    "CRLF in a header": {"requests": [step(0, headers={"x": "a\r\nb: c"})]},
    "a bad header name": {"requests": [step(0, headers={"a b": "c"})]},
    "a body without Content-Type": {"requests": [post(body={})]},
    "dependsOn itself": {"requests": [step(0, dependsOn=["0"])]},
    "a dependsOn cycle": {"requests": [step(0, dependsOn=["1"]), step(1, dependsOn=["0"])]},
    "dependsOn unknown": {"requests": [step(0, dependsOn=["9"])]},
    "dependsOn as a string": {"requests": [step(0, dependsOn="1")]},
    "duplicate ids (case)": {"requests": [step("a"), step("A")]},
    "a 10,000-deep value": '{"requests":' + "[" * 10000 + "]" * 10000 + "}",
    "not JSON": "{",
    "an array": "[]",
    "over 4 MiB": {"requests": [post(body={"deviceSerialNumber": "x" * 250_000}, headers={"Content-Type": "application/json"}) | {"id": str(n)} for n in range(20)]},
}
for name, batch in BATCHES.items():
    body = batch if isinstance(batch, str) else json.dumps(batch)
    check(f"batch: {name}", request("POST", "/beta/$batch", body), allowed=[400, 413])

# Steps that must fail on their own inside a 200, touching nothing outside the service root.
STEPS = {
    "a path that climbs out": step(0, url="../graphpilot/faults"),
    "a path that climbs out later": step(0, url="/deviceManagement/../../graphpilot/faults"),
    "an encoded climb": step(0, url="%2e%2e/graphpilot/faults"),
    "the health check": step(0, url="/../healthz"),
    "a nested batch": post(url="/$batch", body={"requests": []}, headers={"Content-Type": "application/json"}),
    "a nested absolute batch": post(url="https://graph.microsoft.com/beta/$batch", body={"requests": []}, headers={"Content-Type": "application/json"}),
    "a v1.0 url": step(0, url="https://graph.microsoft.com/v1.0/deviceManagement/autopilotEvents"),
    "a forged Authorization": step(0, headers={"Authorization": "Bearer x"}),
    "a JSON string body": post(body="{}", headers={"Content-Type": "application/json"}),
    "an array body": post(body=[], headers={"Content-Type": "application/json"}),
    "a bad query": step(0, url="/deviceManagement/autopilotEvents?$filter=%zz"),
    "a long query": step(0, url="/deviceManagement/autopilotEvents?$filter=" + "x" * 40000),
    "a NUL key": step(0, url="/deviceManagement/autopilotEvents/\u0000"),
}
for name, one in STEPS.items():
    status, headers, body = request("POST", "/beta/$batch", json.dumps({"requests": [one]}))
    check(f"batch step: {name}", (status, headers, body), allowed=[200, 400])
    if status == 200:
        answer = json.loads(body)["responses"][0]
        inner = answer["status"]
        if not 400 <= inner < 500 or "error" not in answer.get("body", {}):
            problems.append(f"batch step: {name}: answered {inner} {str(answer.get('body'))[:120]}")
            print(f"!! batch step {name}: {inner}")

# ---- afterwards: alive, the victim intact, nothing created but the acknowledged creates
status, _, body = request("GET", VICTIM)
if status != 200 or json.loads(body)["deviceSerialNumber"] != "VICTIM":
    problems.append(f"the victim changed: {status} {body[:200]!r}")
status, _, body = request("GET", EVENTS + "/$count")
if status != 200 or int(body) != created:
    problems.append(f"{body!r} events stored, {created} creates acknowledged")
print()
if problems:
    print(f"{len(problems)} problems:")
    for problem in problems:
        print("  " + problem)
    sys.exit(1)
print(f"every hostile request got a clear answer; {created} acknowledged creates, {created} events")
