// The official Microsoft Graph JavaScript client against graphpilot: create, get, list with
// paging, PATCH, delete, and a 404 surfacing as GraphError.
// Usage: GRAPHPILOT_BASE=http://127.0.0.1:PORT GRAPHPILOT_TOKEN=... node crud.mjs
import assert from "node:assert/strict";
import { Client, GraphError } from "@microsoft/microsoft-graph-client";

const base = process.env.GRAPHPILOT_BASE;
const token = process.env.GRAPHPILOT_TOKEN;
assert.ok(base && token, "GRAPHPILOT_BASE and GRAPHPILOT_TOKEN are required");

// The client attaches tokens only to https Graph hosts, and strips an `Authorization` header from
// other requests; until graphpilot serves TLS the token travels in a lower-case `authorization`
// header through the request's headers option (HTTP header names are case-insensitive).
const client = Client.init({
  baseUrl: base,
  defaultVersion: "beta",
  authProvider: (done) => done(null, token),
});
const authorization = { authorization: `Bearer ${token}` };
const api = (path) => client.api(path).headers(authorization);
const events = "/deviceManagement/autopilotEvents";

const created = await api(events).post({
  deviceSerialNumber: "JS-SDK-0001",
  eventDateTime: "2024-03-01T08:30:00.1234567+01:00",
  deploymentState: "inProgress",
  deploymentDuration: "PT12M3.5S",
});
assert.match(created.id, /^[0-9a-f-]{36}$/);
assert.equal(created.eventDateTime, "2024-03-01T07:30:00.1234567Z");
console.log("ok create", created.id);

const fetched = await api(`${events}/${created.id}`).get();
assert.equal(fetched.deviceSerialNumber, "JS-SDK-0001");
assert.equal(fetched.deploymentDuration, "PT12M3.5S");
console.log("ok get");

const patched = await api(`${events}/${created.id}`).patch({ deploymentState: "success" });
assert.equal(patched.deploymentState, "success");
assert.equal(patched.deviceSerialNumber, "JS-SDK-0001");
console.log("ok patch");

for (let n = 0; n < 150; n++) {
  await api(events).post({ deviceSerialNumber: `JS-SDK-BULK-${n}` });
}
// The client resolves absolute next links only for https URLs (its PageIterator too), so over
// plain http the walk hands it the link relative to the service root.
const seen = new Set();
let page = await api(events).top(40).get();
assert.ok(page["@odata.nextLink"], "a first page of 40 out of 151 has a next link");
let pages = 0;
for (;;) {
  pages += 1;
  for (const event of page.value) {
    assert.ok(!seen.has(event.id), `duplicate ${event.id}`);
    seen.add(event.id);
  }
  const next = page["@odata.nextLink"];
  if (!next) break;
  assert.ok(next.startsWith(`${base}/beta/`), next);
  page = await api(next.slice(`${base}/beta`.length)).get();
}
assert.equal(seen.size, 151);
assert.equal(pages, 4);
console.log("ok paged list of", seen.size, "events");

await api(`${events}/${created.id}`).delete();
try {
  await api(`${events}/${created.id}`).get();
  assert.fail("a deleted event must be 404");
} catch (error) {
  assert.ok(error instanceof GraphError, `GraphError expected, got ${error}`);
  assert.equal(error.statusCode, 404);
  assert.equal(error.code, "ResourceNotFound");
  assert.ok(error.requestId, "the request-id reaches the SDK");
}
console.log("ok delete and 404 as GraphError");
