-- wrk script for bench/ingest.py: Alertmanager version-4 bodies of the seed's
-- CredlinkServiceDown alert, BATCH alerts per request.
--
--   wrk ... -s ingest.lua URL -- new SEVERITY TAG BATCH
--       every request carries BATCH alerts never seen before (fresh fingerprints:
--       thread id and a per-thread counter), as a storm of new alerts does;
--   wrk ... -s ingest.lua URL -- file PATH
--       requests cycle through the bodies in PATH (one JSON body per line): repeats.
--
-- done() prints one machine-readable line the bench parses:
--   RESULT requests non2xx socket_errors duration_us

local counter = 0
local threads = {}
local mode, severity, tag, batch, bodies, next_body

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local function alert(i)
  local instance = string.format("api-%s-%d-%d.credlink.internal:8080", tag, id, i)
  local fingerprint = string.format("%s%04x%010x", tag, id, i)
  return string.format(
    '{"status":"firing","labels":{"alertname":"CredlinkServiceDown","instance":"%s",' ..
    '"job":"credlink-api","service":"credlink-api","severity":"%s"},' ..
    '"annotations":{"summary":"CredLink API is down on %s",' ..
    '"description":"%s has not answered a scrape for over a minute.",' ..
    '"impact":"CredLink API is completely unavailable; all user requests are failing",' ..
    '"runbook_url":"https://runbooks.credlink.example/production#service-down"},' ..
    '"startsAt":"2026-03-02T18:59:47.123456789Z","endsAt":"0001-01-01T00:00:00Z",' ..
    '"generatorURL":"http://prometheus.credlink.internal:9090/graph?g0.expr=up%%7Bjob%%3D' ..
    '%%22credlink-api%%22%%7D+%%3D%%3D+0","fingerprint":"%s"}',
    instance, severity, instance, instance, fingerprint)
end

local function body(alerts)
  return '{"receiver":"escalator","status":"firing","alerts":[' .. table.concat(alerts, ",") ..
    '],"groupLabels":{"alertname":"CredlinkServiceDown"},"commonLabels":{"alertname":' ..
    '"CredlinkServiceDown","job":"credlink-api","service":"credlink-api","severity":"' ..
    severity .. '"},"commonAnnotations":{},"externalURL":' ..
    '"http://alertmanager.credlink.internal:9093","version":"4","groupKey":' ..
    '"{}:{alertname=\\"CredlinkServiceDown\\"}","truncatedAlerts":0}'
end

function init(args)
  mode = args[1]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if mode == "file" then
    bodies = {}
    for line in io.lines(args[2]) do
      table.insert(bodies, line)
    end
    next_body = id % #bodies
  else
    severity, tag, batch = args[2], args[3], tonumber(args[4])
  end
end

function request()
  if mode == "file" then
    next_body = next_body % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[next_body])
  end
  local alerts = {}
  for _ = 1, batch do
    counter = counter + 1
    alerts[#alerts + 1] = alert(counter)
  end
  return wrk.format(nil, nil, nil, body(alerts))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout, summary.duration))
end
