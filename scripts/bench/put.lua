-- KV write: PUT a new version of one of 100 keys (<prefix>000 … <prefix>099, prefix
-- ARCAN_BENCH_WRITE_PREFIX, default "w"), value BENCH_VALUE_BYTES long (default 64, the same
-- as bao_put.lua); counts acknowledged (2xx) writes.
local token = os.getenv("ARCAN_BENCH_TOKEN")
local realm = os.getenv("ARCAN_BENCH_REALM") or "bench"
local prefix = os.getenv("ARCAN_BENCH_WRITE_PREFIX") or "w"
local size = tonumber(os.getenv("BENCH_VALUE_BYTES") or "64")
local threads = {}
local n = 0
acked = 0

setup = function(thread)
  table.insert(threads, thread)
end

request = function()
  n = n + 1
  local path = string.format("/api/v1/realms/%s/secrets/bench/%s%03d?env=prod", realm, prefix, n % 100)
  local head = string.format("w%d-", n)
  local value = head .. string.rep("x", size - #head)
  return wrk.format("PUT", path,
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" },
    string.format('{"value":"%s"}', value))
end

response = function(status, headers, body)
  if status >= 200 and status < 300 then
    acked = acked + 1
  end
end

done = function(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("acked")
  end
  io.write(string.format("ACKED %d\n", total))
end
