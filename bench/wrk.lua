-- wrk script for bench/run.py: POST a body from a file, check every answer, print one
-- JSON line. Arguments after `--`: BODY_FILE, then any of `expect=TEXT` (a right answer
-- contains TEXT) and `header=Name: value`.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  expects = {}
  for i = 2, #args do
    local arg = args[i]
    if arg:sub(1, 7) == "expect=" then
      table.insert(expects, arg:sub(8))
    elseif arg:sub(1, 7) == "header=" then
      local name, value = arg:sub(8):match("^([^:]+):%s*(.*)$")
      wrk.headers[name] = value
    end
  end
  ok, bad = 0, 0
  request_bytes = wrk.format()
end

function request()
  return request_bytes
end

function response(status, headers, body)
  local right = status == 200
  for _, text in ipairs(expects) do
    right = right and string.find(body, text, 1, true) ~= nil
  end
  if right then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local ok_total, bad_total = 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    bad_total = bad_total + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"ok":%d,"bad":%d,"errors":%d,'
      .. '"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, ok_total, bad_total,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
