-- wrk script: POST /api/v1/kick/token (or the stub's /oauth/token) with a distinct authorization
-- code per request, so the proxy's single-flight never coalesces two requests and each one reaches
-- the upstream. Prints one line "WRKJSON {...}" with the summary (latencies in microseconds).
--
-- Paced mode: `wrk ... -s token.lua URL -- MEAN_MS` waits a random time before each request on each
-- connection (exponential, mean MEAN_MS, whole milliseconds), so C connections send about
-- C * 1000 / MEAN_MS requests a second, independently of the answers (bench/store.py). Latency is
-- still measured from the send, so a stall delays only the next request of that connection and is
-- not added to the requests queued behind it (unlike oha's --latency-correction).

-- Split mode: with WRK_SPLIT_PORTS="P1,P2,..." in the environment, thread i sends to 127.0.0.1 at
-- the i-th port (round robin) instead of the URL's, so each of several proxy processes gets its own
-- wrk thread (bench/per_core.py).

local thread_count = 0
local split = nil

function setup(thread)
  local ports = os.getenv("WRK_SPLIT_PORTS")
  if ports and not split then
    split = {}
    for port in string.gmatch(ports, "%d+") do
      split[#split + 1] = wrk.lookup("127.0.0.1", port)[1]
    end
  end
  if split and #split > 0 then
    thread.addr = split[thread_count % #split + 1]
  end
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

function init(args)
  counter = 0
  if args[1] then
    local mean_ms = tonumber(args[1])
    math.randomseed(os.time() * 1000 + (tid or 0))
    function delay()
      return math.floor(-math.log(1 - math.random()) * mean_ms + 0.5)
    end
  end
  -- Distinct across threads and across runs (replay on would otherwise hit on repeated codes).
  prefix = string.format("B%d-%d-%d-", os.time(), math.random(1, 1000000000), tid or 0)
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
end

function request()
  counter = counter + 1
  local body = '{"code":"' .. prefix .. counter ..
    '","code_verifier":"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"' ..
    ',"redirect_uri":"http://localhost:1420/auth/callback"}'
  return wrk.format("POST", nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
