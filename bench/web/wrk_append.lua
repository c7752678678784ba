-- wrk script: one ~100-byte event per request, POST /v1/events, keys rotating
-- over 1000 (as web_bench http --mode append sends them).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"type":"bench.put","key":"key-%06d","data":{"n":%d,"text":"%s"}}',
    n % 1000, n, string.rep("x", 34))
  return wrk.format(nil, "/v1/events", nil, body)
end
