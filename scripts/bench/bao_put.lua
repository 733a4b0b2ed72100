-- OpenBao KV v1 write: PUT a new value (BENCH_VALUE_BYTES long, as for Arcan) to one of 100
-- keys (kv1/bench/w000 … w099); counts acknowledged (2xx) writes. KV v1 keeps no versions.
local token = os.getenv("BAO_TOKEN")
local size = tonumber(os.getenv("BENCH_VALUE_BYTES") or "64")
local threads = {}
local n = 0
acked = 0

setup = function(thread)
  table.insert(threads, thread)
end

request = function()
  n = n + 1
  local prefix = string.format("w%d-", n)
  local value = prefix .. string.rep("x", size - #prefix)
  return wrk.format("PUT", string.format("/v1/kv1/bench/w%03d", n % 100),
    { ["X-Vault-Token"] = token, ["Content-Type"] = "application/json" },
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
