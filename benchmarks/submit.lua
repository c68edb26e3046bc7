-- wrk script for caller-driven submissions: one result per request, each wrk thread
-- cycling through its own share of the item ids in the file named by ITEM_IDS (one per
-- line), so no two requests name the same item until every id has been sent once.
-- Used by benchmarks/workloads.py.
local started = 0
function setup(thread)
  thread:set("tid", started)
  started = started + 1
  thread:set("nthreads", 2)
end

local ids = {}
for line in io.lines(os.getenv("ITEM_IDS")) do ids[#ids + 1] = line end
local counter = -1
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local id = ids[((counter * nthreads + tid) % #ids) + 1]
  local body = '{"results":[{"itemId":"' .. id .. '","output":{"answer":"x"},"scores":[{"scorerId":"exact","score":1.0}]}]}'
  return wrk.format(nil, nil, nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format("WRK %d %d %d %d %.3f %.3f\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000))
end
