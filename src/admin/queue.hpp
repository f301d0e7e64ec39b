#pragma once
#include <boost/json.hpp>
#include <functional>
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
// `on_action` hears of every hold, release and delete done (for the
// tracking log), with the message as it was before.
using QueueActionHook =
    std::function<void(const core::SpoolQueue::Entry& message, const std::string& done)>;
ApiResponse handle_queue_request(io::Spool* spool, const std::string& method,
                                 const std::vector<std::string>& parts, const std::string& query,
                                 const QueueActionHook& on_action = {});
// The tracking-log line of a queue action: done is hold | release | delete,
// by is api | cli.
std::string queue_action_line(const core::SpoolQueue::Entry& message, const std::string& done,
                              const std::string& by);

}  // namespace smtplb::admin
