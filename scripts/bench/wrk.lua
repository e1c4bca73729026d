-- wrk script for graphpilot's load benchmark. Environment:
--   BENCH_MODE   get | patch | post | list | fresh | health | path | path-fresh
--   BENCH_PATH   request path and query (path)
--   BENCH_TOKEN  bearer token
--   BENCH_IDS    file with one event id per line (get, patch)
--   BENCH_LIST   the query of the list request (list)
-- Prints one line "RESULT <requests/s> <p50 µs> <p99 µs> <non-2xx> <socket errors>".
local mode = os.getenv("BENCH_MODE")
local token = os.getenv("BENCH_TOKEN") or ""
local ids = {}
local ids_file = os.getenv("BENCH_IDS")
if ids_file then
  for line in io.lines(ids_file) do ids[#ids + 1] = line end
end
local counter = 0
local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
local events = "/beta/deviceManagement/autopilotEvents"
local states = { "success", "failure", "inProgress", "successWithTimeout" }

-- The request's headers under a Host of its own (see the fresh modes).
local function fresh_headers()
  return { ["Authorization"] = headers["Authorization"], ["Content-Type"] = headers["Content-Type"],
           ["Host"] = "fresh-" .. counter .. ".bench" }
end

request = function()
  counter = counter + 1
  if mode == "health" then
    return wrk.format("GET", "/healthz")
  elseif mode == "get" then
    return wrk.format("GET", events .. "/" .. ids[(counter % #ids) + 1], headers)
  elseif mode == "patch" then
    local body = '{"deploymentState":"' .. states[(counter % #states) + 1] .. '","osVersion":"10.0.' .. counter .. '"}'
    return wrk.format("PATCH", events .. "/" .. ids[(counter % #ids) + 1], headers, body)
  elseif mode == "post" then
    local body = '{"deviceSerialNumber":"BENCH-' .. counter .. '","deploymentState":"success","eventDateTime":"2026-01-01T00:00:00Z"}'
    return wrk.format("POST", events, headers, body)
  elseif mode == "path" then
    return wrk.format("GET", os.getenv("BENCH_PATH"), headers)
  elseif mode == "path-fresh" then
    return wrk.format("GET", os.getenv("BENCH_PATH"), fresh_headers())
  elseif mode == "fresh" then
    -- The list's very request, but under another Host each time: the same SQL and the same
    -- rendering, never a page the server kept (its links carry the host, so its key does).
    return wrk.format("GET", events .. (os.getenv("BENCH_LIST") or ""), fresh_headers())
  elseif mode == "list" then
    return wrk.format("GET", events .. (os.getenv("BENCH_LIST") or "?$filter=deploymentState%20eq%20'failure'&$top=50"), headers)
  end
  error("unknown BENCH_MODE " .. tostring(mode))
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local non2xx = summary.errors.status
  local socket = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.0f %d %d %d %d\n", summary.requests / seconds,
    latency:percentile(50), latency:percentile(99), non2xx, socket))
end
