-- wrk script for the storm benchmark: GETs or purchase POSTs, answers counted by status.
--
-- wrk -s bench/wrk/storm.lua URL -- <method> <path> [tokens file] [run id] [header]
--   method, path   what every request asks
--   tokens file    one JWT a line ("-" for none), optionally followed by a tab and a header of that
--                  shopper's ("Queue-Ticket: ...", or for a GET "Cookie: ..."); each thread walks
--                  the shoppers from its own starting point, so each shopper is asked for rarely
--   run id         prefix of the Idempotency-Keys, unique per phase: every request is a new one
--   header         "Name: value" sent with every purchase, if given (a Purchase-Pass)
-- done() prints one line: BENCH {"requests":..,"seconds":..,"p50_us":..,"statuses":{..}}

local threads = {}
local counter = 1

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

local method, path, tokens, run, sent = "GET", "/", {}, "run", 0
local extra_name, extra_value = nil, nil
statuses = {} -- a global: done() reads each thread's table through thread:get

function init(args)
    method, path = args[1] or "GET", args[2] or "/"
    if args[3] and args[3] ~= "-" then
        for line in io.lines(args[3]) do
            local token, name, value = line:match("^([^\t]+)\t([^:]+):%s*(.*)$")
            tokens[#tokens + 1] = token and {token, name, value} or {line}
        end
    end
    run = args[4] or "run"
    if args[5] and args[5] ~= "" then
        extra_name, extra_value = args[5]:match("^([^:]+):%s*(.*)$")
    end
    statuses = {}
end

local function shopper()
    return tokens[((id - 1) * 104729 + sent) % #tokens + 1]
end

function request()
    sent = sent + 1
    if method == "GET" then
        local headers, one = {}, #tokens > 0 and shopper()
        if one and one[2] then
            headers[one[2]] = one[3]
        end
        return wrk.format("GET", path, headers)
    end
    local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = run .. "-" .. id .. "-" .. sent}
    if extra_name then
        headers[extra_name] = extra_value
    end
    if #tokens > 0 then
        local one = shopper()
        headers["Authorization"] = "Bearer " .. one[1]
        if one[2] then
            headers[one[2]] = one[3]
        end
    end
    return wrk.format(method, path, headers, '{"quantity": 1}')
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local totals = {}
    for _, thread in ipairs(threads) do
        local counted = thread:get("statuses")
        for status, n in pairs(counted) do
            totals[tostring(status)] = (totals[tostring(status)] or 0) + n
        end
    end
    local parts = {}
    for status, n in pairs(totals) do
        parts[#parts + 1] = string.format('"%s":%d', status, n)
    end
    io.write(string.format(
        'BENCH {"requests":%d,"seconds":%.3f,"errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"statuses":{%s}}\n',
        summary.requests, summary.duration / 1e6,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, table.concat(parts, ",")))
end
