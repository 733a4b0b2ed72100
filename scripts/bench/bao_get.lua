-- OpenBao KV v1 read: GET one of 100 keys (kv1/bench/k000 … k099), token from the environment.
local token = os.getenv("BAO_TOKEN")
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", string.format("/v1/kv1/bench/k%03d", n % 100), { ["X-Vault-Token"] = token })
end
