-- wrk: POSTs BODY_FILE to URL_PATH, each request with its own Idempotency-Key.
-- Environment: URL_PATH, BODY_FILE, AUTH (bearer token), KEY_PREFIX, and PORTFOLIOS: with
-- N > 0, the body's @PORTFOLIO@ becomes one of N portfolio ids (P0 .. P<N-1>), spread
-- evenly; with 0 it stays as written. done() prints one RESULT line of JSON.
local path = os.getenv("URL_PATH")
local file = assert(io.open(os.getenv("BODY_FILE"), "r"))
local template = file:read("*a"):gsub("%s+$", "")
file:close()
local auth = os.getenv("AUTH")
local prefix = os.getenv("KEY_PREFIX")
local portfolios = tonumber(os.getenv("PORTFOLIOS") or "0")
local threads = {}
local sent = 0

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

function request()
  sent = sent + 1
  local body = template
  if portfolios > 0 then
    body = template:gsub("@PORTFOLIO@", "P" .. ((sent + thread_no) % portfolios))
  end
  local headers = {
    ["Authorization"] = "Bearer " .. auth,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. thread_no .. "-" .. sent,
  }
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.2f,"p50_ms":%.2f,"p99_ms":%.2f,"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
