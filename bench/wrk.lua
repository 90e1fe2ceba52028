-- wrk script for bench/run. Configured by environment variables:
--   BENCH_EXPECT_STATUS    status every response must have (e.g. 200, 303)
--   BENCH_EXPECT_LOCATION  exact Location header every response must have
--   BENCH_EXPECT_COOKIE    cookie name every response must set (Set-Cookie)
--   BENCH_ALSO_ALLOW       statuses (comma-separated) counted but not checked
--   BENCH_EXPECT_HEADER    "Name: value": a header every response must have
--   BENCH_SIGNIN_USERS     "FIRST:LAST": POST /login as user<i>@bench.test,
--                          i drawn at random, with
--   BENCH_PASSWORD, BENCH_CSRF_TOKEN, BENCH_CSRF_COOKIE (the usher_csrf cookie)
--   BENCH_SIGNUP           set: POST /register for a new address each time,
--                          s<ms>-<thread>-<n>@bench.test, where <ms> is the
--                          Unix time in milliseconds the request was made
--                          (with the same password and CSRF variables)
--   BENCH_OUT              file to write the result to (one JSON object)
-- Every response is checked; the counts of each status, of responses that
-- failed a check, and a sample of the first failure go into the result.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
   table.insert(threads, thread)
end

local function urlencode(s)
   return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local expect_status = tonumber(os.getenv("BENCH_EXPECT_STATUS") or "")
local expect_location = os.getenv("BENCH_EXPECT_LOCATION")
local expect_cookie = os.getenv("BENCH_EXPECT_COOKIE")
local signin_users = os.getenv("BENCH_SIGNIN_USERS")
local expect_header_name, expect_header_value = (os.getenv("BENCH_EXPECT_HEADER") or ""):match("^([^:]+):%s*(.*)$")
local signup = os.getenv("BENCH_SIGNUP")
local also_allow = {}
for status in (os.getenv("BENCH_ALSO_ALLOW") or ""):gmatch("%d+") do
   also_allow[tonumber(status)] = true
end
local first_user, last_user
local body_tail

function init(args)
   statuses = {}
   bad = 0
   bad_sample = ""
   last_cookie = ""
   math.randomseed(os.time() * 1000 + (thread_id or 0))
   if signin_users or signup then
      if signin_users then
         first_user, last_user = signin_users:match("^(%d+):(%d+)$")
         first_user, last_user = tonumber(first_user), tonumber(last_user)
      end
      body_tail = "&password=" .. urlencode(os.getenv("BENCH_PASSWORD"))
         .. "&csrf_token=" .. urlencode(os.getenv("BENCH_CSRF_TOKEN"))
      if signup then
         body_tail = body_tail .. "&password_confirm=" .. urlencode(os.getenv("BENCH_PASSWORD"))
      end
      wrk.method = "POST"
      wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
      wrk.headers["Cookie"] = "usher_csrf=" .. os.getenv("BENCH_CSRF_COOKIE")
   end
end

if signin_users then
   function request()
      local i = math.random(first_user, last_user)
      -- Users seed_users.py made unable to sign in (waiting, unconfirmed, disabled).
      while i % 100 == 7 or i % 100 == 13 or i % 100 == 29 do
         i = math.random(first_user, last_user)
      end
      local body = "email=" .. urlencode("user" .. i .. "@bench.test") .. body_tail
      return wrk.format(nil, nil, nil, body)
   end
end

if signup then
   -- The wall clock in milliseconds (LuaJIT's FFI: os.time has whole seconds).
   local ffi = require("ffi")
   ffi.cdef[[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
      int clock_gettime(int clock, bench_timespec *now);
   ]]
   local clock_realtime = 0
   local now = ffi.new("bench_timespec")
   local sent = 0
   function request()
      ffi.C.clock_gettime(clock_realtime, now)
      local ms = tonumber(now.tv_sec) * 1000 + math.floor(tonumber(now.tv_nsec) / 1e6)
      sent = sent + 1
      local address = string.format("s%d-%d-%d@bench.test", ms, thread_id or 0, sent)
      return wrk.format(nil, nil, nil, "email=" .. urlencode(address) .. body_tail)
   end
end

local function header(headers, name)
   -- wrk keeps the header names as sent; actix sends them in lower case.
   return headers[name] or headers[name:lower()]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   local problem = nil
   if also_allow[status] then
      return
   elseif expect_status and status ~= expect_status then
      problem = "status " .. status
   elseif expect_location and header(headers, "Location") ~= expect_location then
      problem = "location " .. tostring(header(headers, "Location"))
   elseif expect_header_name and header(headers, expect_header_name) ~= expect_header_value then
      problem = expect_header_name .. " " .. tostring(header(headers, expect_header_name))
   elseif expect_cookie then
      -- wrk keeps one value per header name (the last): the check needs
      -- the session cookie to be the last Set-Cookie, or the only one.
      local cookie = header(headers, "Set-Cookie") or ""
      local value = cookie:match("^" .. expect_cookie .. "=([^;]+)")
      if not value then
         problem = "set-cookie " .. cookie
      elseif value == last_cookie then
         problem = "the same session cookie twice"
      else
         last_cookie = value
      end
   end
   if problem then
      bad = bad + 1
      if bad_sample == "" then
         bad_sample = problem .. " | " .. string.sub(body or "", 1, 200)
      end
   end
end

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
   local all, total_bad, sample = {}, 0, ""
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         all[status] = (all[status] or 0) + n
      end
      total_bad = total_bad + thread:get("bad")
      local s = thread:get("bad_sample")
      if sample == "" and s ~= "" then sample = s end
   end
   local parts = {}
   for status, n in pairs(all) do
      table.insert(parts, string.format('"%d": %d', status, n))
   end
   local e = summary.errors
   local seconds = summary.duration / 1e6
   local out = string.format(
      '{"requests": %d, "seconds": %.3f, "rps": %.2f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, '
      .. '"max_ms": %.3f, "mean_ms": %.3f, "status_4xx_5xx": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "timeouts": %d, "statuses": {%s}, "failed_checks": %d, "failure_sample": %s}',
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, latency.mean / 1000, e.status, e.connect, e.read, e.write, e.timeout,
      table.concat(parts, ", "), total_bad, json_string(sample))
   local path = os.getenv("BENCH_OUT")
   if path then
      local f = assert(io.open(path, "w"))
      f:write(out, "\n")
      f:close()
   end
   io.write(out, "\n")
end
