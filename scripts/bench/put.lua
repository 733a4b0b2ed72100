-- KV write: PUT a new version of one of 100 keys; counts acknowledged (2xx) writes.
local token = os.getenv("ARCAN_BENCH_TOKEN")
local realm = os.getenv("ARCAN_BENCH_REALM") or "bench"
local threads = {}
local n = 0
acked = 0

setup = function(thread)
  table.insert(threads, thread)
end

request = function()
  n = n + 1
  local path = string.format("/api/v1/realms/%s/secrets/bench/w%03d?env=prod", realm, n % 100)
  return wrk.format("PUT", path,
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" },
    string.format('{"value":"value-%d"}', n))
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
