-- wrk script: GET /v1/views/latest/key-NNNNNN, keys rotating over 1000 (the
-- keys the append runs wrote).
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", string.format("/v1/views/latest/key-%06d", n % 1000))
end
