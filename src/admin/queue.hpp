#pragma once
#include <boost/json.hpp>
#include <string>
#include <vector>

#include "admin/api.hpp"
#include "io/spool/spool.hpp"

namespace smtplb::admin {

// The spool's numbers for the status document: depth, bytes, oldest age,
// counters of what happened to spooled mail.
boost::json::object spool_summary(io::Spool& spool);

// The queue routes of the admin API, also used by `smtplb queue` on a
// stopped daemon (with a Spool it opened itself):
//   GET  /api/v1/queue[?limit=N]         the summary and the oldest N messages
//   GET  /api/v1/queue/{id}              one message: envelope, recipients
//   POST /api/v1/queue/flush             every queued message is due now
//   POST /api/v1/queue/{id}/{hold|release|delete}
// `parts` is the path after /api/v1/queue.
ApiResponse handle_queue_request(io::Spool* spool, const std::string& method,
                                 const std::vector<std::string>& parts, const std::string& query);

}  // namespace smtplb::admin
