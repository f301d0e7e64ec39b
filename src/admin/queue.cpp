#include "admin/queue.hpp"

#include "core/tracking.hpp"

#include <chrono>

namespace smtplb::admin {
namespace json = boost::json;

namespace {

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

ApiResponse error_json(int status, const std::string& message) {
    json::object o;
    o["error"] = message;
    return {status, "application/json", json::serialize(o) + "\n"};
}

const char* state_name(core::SpoolQueue::State s) {
    switch (s) {
        case core::SpoolQueue::State::Ready:
            return "queued";
        case core::SpoolQueue::State::Busy:
            return "delivering";
        case core::SpoolQueue::State::Held:
            return "held";
    }
    return "queued";
}

json::object entry_json(const core::SpoolQueue::Entry& e, std::int64_t now) {
    json::object o;
    o["id"] = e.id;
    o["state"] = state_name(e.state);
    o["arrival_ms"] = e.arrival_ms;
    o["age_s"] = (now - e.arrival_ms) / 1000;
    o["size"] = e.size;
    o["attempts"] = e.attempts;
    if (!e.pool.empty()) o["pool"] = e.pool;
    if (!e.last_error.empty()) o["last_error"] = e.last_error;
    auto wait = std::chrono::duration_cast<std::chrono::seconds>(e.next_attempt -
                                                                 std::chrono::steady_clock::now());
    if (e.state == core::SpoolQueue::State::Ready)
        o["next_attempt_in_s"] = std::max<std::int64_t>(0, wait.count());
    return o;
}

const char* record_state(proto::SpoolRecord r) {
    switch (r) {
        case proto::SpoolRecord::Delivered:
            return "delivered";
        case proto::SpoolRecord::Failed:
            return "bounced";
        default:
            return "pending";
    }
}

ApiResponse show(io::Spool& spool, const std::string& id) {
    const auto* entry = spool.queue().find(id);
    if (!entry) return error_json(404, "no queued message " + id);
    std::string error;
    auto message = spool.store().load(spool.area_of(*entry), id, error);
    if (!message) return error_json(500, "cannot read " + id + ": " + error);
    auto o = entry_json(*entry, now_ms());
    const auto& env = message->layout().envelope;
    o["listener"] = env.listener;
    o["pool"] = env.pool;
    o["sender"] = env.sender.null ? "" : env.sender.mailbox.address();
    o["client"] = env.identity.address.to_string();
    o["helo"] = env.identity.helo;
    o["body_size"] = message->size();
    if (env.params.ret != proto::DsnReturn::Unset)
        o["ret"] = env.params.ret == proto::DsnReturn::Full ? "FULL" : "HDRS";
    if (!env.params.envid.empty()) o["envid"] = env.params.envid;
    json::array rcpts;
    for (const auto& r : message->layout().recipients) {
        json::object ro;
        ro["address"] = r.mailbox.address();
        ro["state"] = record_state(r.state);
        // What the sender asked to be told (RFC 3461), when it asked.
        if (r.params.notify) ro["notify"] = r.params.notify_keywords();
        if (!r.params.orcpt.empty()) ro["orcpt"] = r.params.orcpt;
        if (r.state == proto::SpoolRecord::Warned) ro["delay_notice_sent"] = true;
        rcpts.push_back(std::move(ro));
    }
    o["recipients"] = std::move(rcpts);
    return {200, "application/json", json::serialize(o) + "\n"};
}

std::size_t limit_from(const std::string& query) {
    auto at = query.find("limit=");
    if (at == std::string::npos) return 1000;
    try {
        return static_cast<std::size_t>(std::stoul(query.substr(at + 6)));
    } catch (...) {
        return 1000;
    }
}

}  // namespace

json::object spool_summary(io::Spool& spool) {
    auto& q = spool.queue();
    auto& c = spool.counters();
    json::object o;
    o["messages"] = q.size();
    o["held"] = q.held();
    o["delivering"] = q.busy();
    o["bytes"] = q.bytes();
    if (auto oldest = q.oldest_arrival_ms()) o["oldest_age_s"] = (now_ms() - *oldest) / 1000;
    o["scanning"] = spool.scanning();
    o["max_messages"] = spool.settings().max_messages;
    o["max_size"] = spool.settings().max_size;
    json::object counters;
    counters["spooled"] = c.spooled;
    counters["commit_failed"] = c.commit_failed;
    counters["refused_full"] = c.refused_full;
    counters["delivered_recipients"] = c.delivered;
    counters["deferred"] = c.deferred;
    counters["bounced_recipients"] = c.bounced;
    counters["expired"] = c.expired;
    counters["corrupt"] = c.corrupt;
    counters["dead"] = c.dead;
    counters["drains"] = c.drains;
    counters["drained"] = c.drained;
    o["counters"] = std::move(counters);
    return o;
}

std::string queue_action_line(const core::SpoolQueue::Entry& message, const std::string& done,
                              const std::string& by) {
    core::QueueActionRecord r;
    r.time_ms = now_ms();
    r.result = done == "hold" ? "held" : done == "release" ? "released" : "deleted";
    r.spool_id = message.id;
    r.by = by;
    r.pool = message.pool;
    r.client = message.client.substr(0, message.client.find(' '));  // its address
    r.size = message.size;
    return r.to_json();
}

ApiResponse handle_queue_request(io::Spool* spool, const std::string& method,
                                 const std::vector<std::string>& parts, const std::string& query,
                                 const QueueActionHook& on_action) {
    if (!spool)
        return error_json(404, "this daemon has no spool (no pool has on_unavailable = \"spool\")");
    if (parts.empty()) {
        if (method != "GET") return error_json(405, "use GET");
        auto o = spool_summary(*spool);
        json::array list;
        auto now = now_ms();
        auto limit = limit_from(query);
        for (const auto* e : spool->queue().list()) {
            if (list.size() >= limit) break;
            list.push_back(entry_json(*e, now));
        }
        o["queue"] = std::move(list);
        return {200, "application/json", json::serialize(o) + "\n"};
    }
    if (parts.size() == 1 && parts[0] == "flush") {
        if (method != "POST") return error_json(405, "use POST");
        spool->flush();
        json::object o;
        o["flushed"] = spool->queue().size();
        return {200, "application/json", json::serialize(o) + "\n"};
    }
    const auto& id = parts[0];
    if (!core::valid_spool_id(id)) return error_json(400, "not a queue ID: " + id);
    if (parts.size() == 1) {
        if (method != "GET") return error_json(405, "use GET");
        return show(*spool, id);
    }
    if (parts.size() != 2) return error_json(404, "no such endpoint");
    if (method != "POST") return error_json(405, "use POST");
    std::string error;
    bool ok = false;
    core::SpoolQueue::Entry before;  // a deleted message is gone afterwards
    before.id = id;
    if (const auto* entry = spool->queue().find(id)) before = *entry;
    if (parts[1] == "hold")
        ok = spool->hold(id, error);
    else if (parts[1] == "release")
        ok = spool->release(id, error);
    else if (parts[1] == "delete")
        ok = spool->remove(id, error);
    else
        return error_json(400, "the action must be hold, release or delete");
    if (!ok)
        return error_json(error.find("being delivered") != std::string::npos ? 409 : 404, error);
    if (on_action) on_action(before, parts[1]);
    json::object o;
    o["id"] = id;
    o["done"] = parts[1];
    return {200, "application/json", json::serialize(o) + "\n"};
}

}  // namespace smtplb::admin
