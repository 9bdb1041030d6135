-- wrk script for `make bench-load`: post.lua's body and summary, stopped after $REQUESTS answers.
-- wrk's main thread sleeps for the whole -d duration whatever its threads do, so on the last
-- answer this thread stops and touches $DONE_FILE; load.py then interrupts wrk (SIGINT), which
-- ends the run and prints the summary.
dofile("post.lua")
local limit = tonumber(os.getenv("REQUESTS"))
local answered = 0

response = function(status, headers, body)
  answered = answered + 1
  if answered == limit then
    io.open(os.getenv("DONE_FILE"), "w"):close()
    wrk.thread:stop()
  end
end
