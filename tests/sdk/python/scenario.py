"""The official Microsoft Graph beta Python SDK (msgraph-beta-sdk) with azure-identity against
graphpilot over HTTPS, unmodified: ClientSecretCredential pointed at graphpilot's authority gets
the token from its token endpoint; the SDK's request adapter gets graphpilot's base URL and host.
(The SDK writes a timedelta as Python's str(), e.g. '0:12:03.5', which Graph and graphpilot refuse
as an Edm.Duration, so durations are not sent from here; see docs/sdks.md.)
Scenario: create, get, list with a filter, PageIterator over 150+ events, PATCH, a $batch, a report
export job downloaded without a token and read back with zipfile and csv,
delete, and a 404 surfacing as an ODataError.

Usage: GRAPHPILOT_BASE=https://localhost:PORT GRAPHPILOT_TENANT=contoso GRAPHPILOT_CLIENT_ID=...
       GRAPHPILOT_CLIENT_SECRET=... SSL_CERT_FILE=ca.pem REQUESTS_CA_BUNDLE=ca.pem python scenario.py
"""

import asyncio
import csv
import datetime
import io
import os
import urllib.parse
import urllib.request
import zipfile

from azure.identity.aio import ClientSecretCredential
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph_beta import GraphRequestAdapter, GraphServiceClient
from msgraph_beta.generated.device_management.autopilot_events.autopilot_events_request_builder import (
    AutopilotEventsRequestBuilder,
)
from msgraph_beta.generated.models.device_management_autopilot_event import (
    DeviceManagementAutopilotEvent,
)
from msgraph_beta.generated.models.device_management_export_job import DeviceManagementExportJob
from msgraph_beta.generated.models.device_management_export_job_localization_type import (
    DeviceManagementExportJobLocalizationType,
)
from msgraph_beta.generated.models.device_management_report_file_format import DeviceManagementReportFileFormat
from msgraph_beta.generated.models.device_management_report_status import DeviceManagementReportStatus
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_beta.generated.models.windows_autopilot_deployment_state import (
    WindowsAutopilotDeploymentState,
)
from msgraph_core import PageIterator
from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem
from kiota_abstractions.request_information import RequestInformation
from kiota_abstractions.method import Method
from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter


def check(condition, message):
    if not condition:
        raise AssertionError(message)


async def main():
    base = os.environ["GRAPHPILOT_BASE"]
    host = urllib.parse.urlparse(base).hostname
    credential = ClientSecretCredential(
        os.environ["GRAPHPILOT_TENANT"],
        os.environ["GRAPHPILOT_CLIENT_ID"],
        os.environ["GRAPHPILOT_CLIENT_SECRET"],
        authority=base,
        # MSAL would ask login.microsoftonline.com about an authority it does not know.
        disable_instance_discovery=True,
    )
    auth = AzureIdentityAuthenticationProvider(
        credential,
        scopes=["https://graph.microsoft.com/.default"],
        allowed_hosts=[host],
    )
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = f"{base}/beta"
    client = GraphServiceClient(request_adapter=adapter)
    events = client.device_management.autopilot_events

    created = await events.post(
        DeviceManagementAutopilotEvent(
            device_serial_number="PY-SDK-0001",
            deployment_state=WindowsAutopilotDeploymentState.InProgress,
            event_date_time=datetime.datetime(2024, 3, 1, 7, 30, tzinfo=datetime.timezone.utc),
        )
    )
    check(created.id and len(created.id) == 36, f"created id {created.id}")
    print("ok create", created.id, flush=True)

    fetched = await events.by_device_management_autopilot_event_id(created.id).get()
    check(fetched.device_serial_number == "PY-SDK-0001", fetched)
    check(fetched.event_date_time == datetime.datetime(2024, 3, 1, 7, 30, tzinfo=datetime.timezone.utc), fetched.event_date_time)
    print("ok get", flush=True)

    patched = await events.by_device_management_autopilot_event_id(created.id).patch(
        DeviceManagementAutopilotEvent(deployment_state=WindowsAutopilotDeploymentState.Success)
    )
    check(patched.deployment_state == WindowsAutopilotDeploymentState.Success, patched)
    check(patched.device_serial_number == "PY-SDK-0001", patched)
    print("ok patch", flush=True)

    for n in range(150):
        state = WindowsAutopilotDeploymentState.Failure if n % 10 == 0 else WindowsAutopilotDeploymentState.Success
        await events.post(DeviceManagementAutopilotEvent(device_serial_number=f"PY-SDK-BULK-{n}", deployment_state=state))

    query = AutopilotEventsRequestBuilder.AutopilotEventsRequestBuilderGetQueryParameters(
        filter="deploymentState eq 'failure'", select=["id", "deploymentState"]
    )
    config = AutopilotEventsRequestBuilder.AutopilotEventsRequestBuilderGetRequestConfiguration(query_parameters=query)
    failures = await events.get(request_configuration=config)
    check(len(failures.value) == 15, f"{len(failures.value)} failures")
    check(all(e.deployment_state == WindowsAutopilotDeploymentState.Failure for e in failures.value), failures)
    print("ok list with a filter", flush=True)

    query = AutopilotEventsRequestBuilder.AutopilotEventsRequestBuilderGetQueryParameters(top=40)
    config = AutopilotEventsRequestBuilder.AutopilotEventsRequestBuilderGetRequestConfiguration(query_parameters=query)
    first = await events.get(request_configuration=config)
    check(first.odata_next_link and first.odata_next_link.startswith(f"{base}/beta/"), first.odata_next_link)
    seen = []

    def collect(event):
        seen.append(event.id)
        return True

    iterator = PageIterator(first, adapter)
    await iterator.iterate(collect)
    check(len(seen) == 151 and len(set(seen)) == 151, f"{len(seen)} seen, {len(set(seen))} distinct")
    print("ok PageIterator over", len(seen), "events", flush=True)

    # A page as the SDK itself writes it, for graphpilot import to read back.
    page_file = os.environ.get("GRAPHPILOT_PAGE_FILE")
    if page_file:
        writer = JsonSerializationWriter()
        writer.write_object_value(None, first)
        with open(page_file, "wb") as out:
            out.write(writer.get_serialized_content())
        print("ok page written by the SDK", flush=True)

    # A $batch through the core library's BatchRequestContent: a count and a 404.
    count_request = RequestInformation(Method.GET, f"{base}/beta/deviceManagement/autopilotEvents/$count")
    missing_request = RequestInformation(Method.GET, f"{base}/beta/deviceManagement/autopilotEvents/no-such-event")
    count_item = BatchRequestItem(request_information=count_request, id="count")
    missing_item = BatchRequestItem(request_information=missing_request, id="missing")
    batch = BatchRequestContent({"count": count_item, "missing": missing_item})
    batch_response = await BatchRequestBuilder(adapter).post(batch_request_content=batch)
    count = batch_response.get_response_by_id("count")
    check(count.status == 200, f"count status {count.status}")
    check(count.body == b"151", f"count body {count.body!r}")
    check(batch_response.get_response_by_id("missing").status == 404, "missing status")
    print("ok $batch through BatchRequestContent", flush=True)

    # A report export job as Intune's docs describe it: create, poll, download without a token,
    # read the zip and the CSV back with Python's own readers.
    jobs = client.device_management.reports.export_jobs
    job = await jobs.post(
        DeviceManagementExportJob(
            report_name="AutopilotV1DeploymentStatus",
            format=DeviceManagementReportFileFormat.Csv,
            localization_type=DeviceManagementExportJobLocalizationType.ReplaceLocalizableValues,
            select=["DeviceSerialNumber", "DeploymentState", "OS"],
        )
    )
    check(job.status == DeviceManagementReportStatus.NotStarted and job.url is None, f"new job {job.status}")
    for _ in range(600):
        job = await jobs.by_device_management_export_job_id(job.id).get()
        if job.status in (DeviceManagementReportStatus.Completed, DeviceManagementReportStatus.Failed) and (
            job.url or job.status == DeviceManagementReportStatus.Failed
        ):
            break
        await asyncio.sleep(0.1)
    check(job.status == DeviceManagementReportStatus.Completed, f"job {job.status}")
    context = __import__("ssl").create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    with urllib.request.urlopen(job.url, context=context) as response:
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    check(archive.namelist() == [f"{job.id}.csv"], archive.namelist())
    text = archive.read(f"{job.id}.csv").decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    check(rows[0] == ["DeviceSerialNumber", "DeploymentState", "OS"], rows[0])
    check(len(rows) == 1 + 151, f"{len(rows) - 1} rows")
    mine = [row for row in rows if row[0] == "PY-SDK-0001"]
    check(mine and mine[0][1] == "Success" and mine[0][2] == "Windows", mine)
    print("ok export job downloaded and read back with zipfile and csv", flush=True)

    await events.by_device_management_autopilot_event_id(created.id).delete()
    try:
        await events.by_device_management_autopilot_event_id(created.id).get()
        raise AssertionError("a deleted event must be 404")
    except ODataError as error:
        check(error.response_status_code == 404, error.response_status_code)
        check(error.error.code == "ResourceNotFound", error.error.code)
    print("ok delete and 404 as ODataError", flush=True)
    await credential.close()


asyncio.run(main())
