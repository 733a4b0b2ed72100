-- Credential issuance: POST …/engines/<mount>/creds/<role> (a new lease per request).
local token = os.getenv("ARCAN_BENCH_TOKEN")
local realm = os.getenv("ARCAN_BENCH_REALM") or "bench"
local mount = os.getenv("ARCAN_BENCH_MOUNT") or "noop"
local role = os.getenv("ARCAN_BENCH_ROLE") or "noop"
local path = string.format("/api/v1/realms/%s/engines/%s/creds/%s", realm, mount, role)
local threads = {}
ok = 0

setup = function(thread)
  table.insert(threads, thread)
end

request = function()
  return wrk.format("POST", path, { ["Authorization"] = "Bearer " .. token }, "")
end

response = function(status, headers, body)
  if status == 200 then
    ok = ok + 1
  end
end

done = function(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("ok")
  end
  io.write(string.format("ISSUED %d\n", total))
end
