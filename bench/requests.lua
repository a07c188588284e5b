-- Rotates through the requests in the file named by WRK_REQUESTS (bench/harness.py writes
-- it): one request a line, METHOD <tab> PATH <tab> AUTHORIZATION <tab> JSON BODY, the last
-- two possibly empty. Each wrk thread starts at a different point of the list, both
-- WRK_SKIP lines further on (what earlier measurements of the same row sent).
local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local requests = {}
local n = 0

function init(args)
  for line in io.lines(os.getenv("WRK_REQUESTS")) do
    local fields = {}
    for value in (line .. "\t"):gmatch("([^\t]*)\t") do
      fields[#fields + 1] = value
    end
    local headers = {}
    local body = nil
    if fields[3] ~= nil and fields[3] ~= "" then
      headers["Authorization"] = fields[3]
    end
    if fields[4] ~= nil and fields[4] ~= "" then
      headers["Content-Type"] = "application/json"
      body = fields[4]
    end
    requests[#requests + 1] = wrk.format(fields[1], fields[2], headers, body)
  end
  n = (tonumber(os.getenv("WRK_SKIP")) or 0) + (thread_index or 0) * math.floor(#requests / 2 + 1)
end

function request()
  n = n + 1
  return requests[(n % #requests) + 1]
end
