#pragma once
#include <string>

namespace smtplb::testing {

// Runs a core::Transaction through a script and returns its transcript:
// what each client input led to (connections opened, commands sent to the
// backends, their scripted replies, the client's answer), then the tracking
// record's attempts and each backend's counters, health and load.
//
// Script lines (# starts a comment):
//   pool backends=N [max_attempts=N] [spool=yes] [retry_time=SECONDS] [tls=required]  (first)
//        [shape=DOMAIN [messages=N/PERIOD] [burst=N] [concurrent=N]]...  (destination limits)
//   mail <sender> [SMTPUTF8] [REQUIRETLS] [SIZE=N] [RET=..] [ENVID=..]
//   rcpt <address> [NOTIFY=..] [ORCPT=..]  data  end  rset  slow
//   arriving (the body comes fast: Transaction::body_arriving)  stream-failed TEXT
//   advance SECONDS                                    (the clock)
//   bN open ok [pipelining] [smtputf8] [requiretls] [dsn] [size=N] [reused] [tls]
//   bN open connect|no-slot TEXT
//   bN open greeting|helo-refused|unauthorised|identity-refused CODE ENH TEXT
//   bN open identity-broken [reused]
//   bN reply CODE [ENH] TEXT     bN broken TEXT     bN body sent|write-failed|read-failed
//   spool-check ok | spool-check CODE ENH TEXT      spool CODE ENH TEXT
// Backend and spool lines are queued (per backend, in order) and consumed
// as the transaction asks; client lines run in order.
std::string run_transaction_script(const std::string& script);

}  // namespace smtplb::testing
