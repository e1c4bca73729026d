// The official Microsoft Graph JavaScript client against graphpilot over HTTPS, unmodified: the
// only changes an application makes are the base URL, `customHosts`, and trusting graphpilot's CA
// (NODE_EXTRA_CA_CERTS). The token comes from graphpilot's token endpoint (client credentials).
// Scenario: create, get, list with a filter, PageIterator over 150+ events, PATCH, a $batch
// through BatchRequestContent, a report export job, delete, and a 404 surfacing as GraphError.
// Usage: GRAPHPILOT_BASE=https://localhost:PORT GRAPHPILOT_TENANT=contoso GRAPHPILOT_CLIENT_ID=…
//        GRAPHPILOT_CLIENT_SECRET=… NODE_EXTRA_CA_CERTS=ca.pem node crud.mjs
import assert from "node:assert/strict";
import {
  BatchRequestContent,
  BatchResponseContent,
  Client,
  GraphError,
  PageIterator,
} from "@microsoft/microsoft-graph-client";

const { GRAPHPILOT_BASE: base, GRAPHPILOT_TENANT: tenant } = process.env;
const { GRAPHPILOT_CLIENT_ID: clientId, GRAPHPILOT_CLIENT_SECRET: clientSecret } = process.env;
assert.ok(base && tenant && clientId && clientSecret, "GRAPHPILOT_BASE, _TENANT, _CLIENT_ID and _CLIENT_SECRET are required");

// Client credentials against the Entra-shaped token endpoint, as an app would do with its own
// HTTP client or MSAL.
const tokenResponse = await fetch(`${base}/${tenant}/oauth2/v2.0/token`, {
  method: "POST",
  headers: { "Content-Type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams({
    grant_type: "client_credentials",
    client_id: clientId,
    client_secret: clientSecret,
    scope: "https://graph.microsoft.com/.default",
  }),
});
assert.equal(tokenResponse.status, 200, await tokenResponse.clone().text());
const { access_token: token } = await tokenResponse.json();
console.log("ok token from the token endpoint");

const client = Client.init({
  baseUrl: base,
  defaultVersion: "beta",
  customHosts: new Set([new URL(base).hostname]),
  authProvider: (done) => done(null, token),
});
const events = "/deviceManagement/autopilotEvents";

const created = await client.api(events).post({
  deviceSerialNumber: "JS-SDK-0001",
  eventDateTime: "2024-03-01T08:30:00.1234567+01:00",
  deploymentState: "inProgress",
  deploymentDuration: "PT12M3.5S",
});
assert.match(created.id, /^[0-9a-f-]{36}$/);
assert.equal(created.eventDateTime, "2024-03-01T07:30:00.1234567Z");
console.log("ok create", created.id);

const fetched = await client.api(`${events}/${created.id}`).get();
assert.equal(fetched.deviceSerialNumber, "JS-SDK-0001");
assert.equal(fetched.deploymentDuration, "PT12M3.5S");
console.log("ok get");

const patched = await client.api(`${events}/${created.id}`).patch({ deploymentState: "success" });
assert.equal(patched.deploymentState, "success");
assert.equal(patched.deviceSerialNumber, "JS-SDK-0001");
console.log("ok patch");

for (let n = 0; n < 150; n++) {
  await client.api(events).post({ deviceSerialNumber: `JS-SDK-BULK-${n}`, deploymentState: n % 10 === 0 ? "failure" : "success" });
}

const failures = await client.api(events).filter("deploymentState eq 'failure'").select("id,deploymentState").get();
assert.equal(failures.value.length, 15);
assert.ok(failures.value.every((event) => event.deploymentState === "failure"));
console.log("ok list with a filter");

// The SDK's own PageIterator follows the absolute https next links.
const seen = new Set();
const first = await client.api(events).top(40).get();
assert.ok(first["@odata.nextLink"].startsWith(`${base}/beta/`), first["@odata.nextLink"]);
const iterator = new PageIterator(client, first, (event) => {
  assert.ok(!seen.has(event.id), `duplicate ${event.id}`);
  seen.add(event.id);
  return true;
});
await iterator.iterate();
assert.equal(seen.size, 151);
console.log("ok PageIterator over", seen.size, "events");

// A $batch built by the SDK (its builder accepts serial chains): a POST, a GET of the count that
// waits for it, then a 404.
const batch = new BatchRequestContent([
  {
    id: "create",
    request: new Request(`${base}/beta${events}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ deviceSerialNumber: "JS-SDK-BATCH" }),
    }),
  },
  {
    id: "count",
    request: new Request(`${base}/beta${events}/$count`, { method: "GET" }),
    dependsOn: ["create"],
  },
  {
    id: "missing",
    request: new Request(`${base}/beta${events}/no-such-event`, { method: "GET" }),
    dependsOn: ["count"],
  },
]);
const batchResponse = new BatchResponseContent(await client.api("/$batch").post(await batch.getContent()));
assert.equal(batchResponse.getResponseById("create").status, 201);
assert.equal((await batchResponse.getResponseById("create").json()).deviceSerialNumber, "JS-SDK-BATCH");
assert.equal(batchResponse.getResponseById("count").status, 200);
// Bodies that are not JSON come base64-encoded, as from Graph.
const countText = Buffer.from(await batchResponse.getResponseById("count").text(), "base64").toString();
assert.equal(countText, "152");
assert.equal(batchResponse.getResponseById("missing").status, 404);
console.log("ok $batch through BatchRequestContent");

// A report export job: create, poll until its url is there, download it without a token.
const jobs = "/deviceManagement/reports/exportJobs";
let job = await client.api(jobs).post({ reportName: "AutopilotV1DeploymentStatus", format: "json" });
assert.equal(job.status, "notStarted");
assert.equal(job.url, null);
for (let attempt = 0; attempt < 600 && !(job.status === "completed" && job.url) && job.status !== "failed"; attempt++) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  job = await client.api(`${jobs}('${job.id}')`).get();
}
assert.equal(job.status, "completed");
const file = await fetch(job.url);
assert.equal(file.status, 200);
assert.equal(file.headers.get("content-type"), "application/zip");
const bytes = Buffer.from(await file.arrayBuffer());
assert.equal(bytes.subarray(0, 4).toString("hex"), "504b0304", "a zip file");
const listed = await client.api(jobs).get();
assert.ok(listed.value.some((each) => each.id === job.id));
await client.api(`${jobs}/${job.id}`).delete();
console.log("ok export job created, polled, downloaded without a token and deleted");

await client.api(`${events}/${created.id}`).delete();
try {
  await client.api(`${events}/${created.id}`).get();
  assert.fail("a deleted event must be 404");
} catch (error) {
  assert.ok(error instanceof GraphError, `GraphError expected, got ${error}`);
  assert.equal(error.statusCode, 404);
  assert.equal(error.code, "ResourceNotFound");
  assert.ok(error.requestId, "the request-id reaches the SDK");
}
console.log("ok delete and 404 as GraphError");
