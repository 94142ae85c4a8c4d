-- tests/bench/nginx.lua - wrk script for tests/bench/nginx.sh: cycles the
-- request paths of a file (one a line), GET each in turn.  Every setup of
-- the bench uses it, the one-path ones too, so that wrk does the same work
-- per request everywhere.
--
--   wrk ... -s tests/bench/nginx.lua URL -- PATHFILE
local reqs = {}
local n, i = 0, 0

function init(args)
    for line in io.lines(args[1]) do
        n = n + 1
        reqs[n] = wrk.format("GET", line)
    end
    if n == 0 then
        error("no paths in " .. args[1])
    end
end

function request()
    i = i % n + 1
    return reqs[i]
end
