-- wrk script for bench/console.sh: POST /api/v1/models, one new model per request.
--
--   wrk -t2 -c16 -d10s --latency -s bench/create.lua URL/api/v1/models -- TOKEN RUN
--
-- Names are "z-r<RUN>-t<thread>-<counter>": unique across threads and across
-- repeated runs (RUN differs), and they sort after the seeded "m-NNNN" models,
-- so the first page of GET /api/v1/models is unchanged by this benchmark.
-- At the end it prints how many responses had each status, summed over the
-- threads, on one line the bench script reads: "statuses: 201=N 409=N other=N".

local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   local token = args[1] or error("usage: -- TOKEN RUN")
   run = args[2] or "1"
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer " .. token
   counter = 0
   created, conflict, other = 0, 0, 0
end

function request()
   counter = counter + 1
   local body = string.format('{"name":"z-r%s-t%d-%d","labels":{"team":"nlp"}}', run, tid, counter)
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status == 201 then
      created = created + 1
   elseif status == 409 then
      conflict = conflict + 1
   else
      other = other + 1
      if other <= 3 then
         io.stderr:write("create.lua: status " .. status .. ": " .. body .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local c, k, o = 0, 0, 0
   for _, t in ipairs(threads) do
      c = c + t:get("created")
      k = k + t:get("conflict")
      o = o + t:get("other")
   end
   io.write(string.format("statuses: 201=%d 409=%d other=%d\n", c, k, o))
end
