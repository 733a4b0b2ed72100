-- KV read: GET one of 100 keys (bench/k000 … k099, seeded by run), bearer token from the environment.
local token = os.getenv("ARCAN_BENCH_TOKEN")
local realm = os.getenv("ARCAN_BENCH_REALM") or "bench"
local n = 0
request = function()
  n = n + 1
  local path = string.format("/api/v1/realms/%s/secrets/bench/k%03d?env=prod", realm, n % 100)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
