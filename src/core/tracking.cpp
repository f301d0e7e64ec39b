#include "core/tracking.hpp"

#include <boost/json.hpp>

namespace smtplb::core {

std::string TrackingRecord::to_json() const {
    boost::json::object o;
    o["time_ms"] = time_ms;
    o["listener"] = listener;
    o["client"] = client_address;
    o["client_port"] = client_port;
    o["helo"] = helo;
    o["sender"] = sender;
    o["recipients"] = recipients;
    boost::json::array domains;
    for (const auto& d : recipient_domains)
        domains.emplace_back(d);
    o["recipient_domains"] = std::move(domains);
    o["size"] = size;
    o["pool"] = pool;
    boost::json::array tries;
    for (const auto& a : attempts)
        tries.emplace_back(
            boost::json::object{{"backend", a.backend}, {"stage", a.stage}, {"reply", a.reply}});
    o["attempts"] = std::move(tries);
    o["queue_id"] = queue_id;
    o["result"] = result;
    o["reply"] = reply;
    o["identity"] = identity;
    o["duration_ms"] = duration_ms;
    return boost::json::serialize(o);
}

std::string queue_id_from(const std::string& text) {
    // Postfix and others: "queued as ID"; take the token after it.
    static const std::string marker = "queued as ";
    auto pos = text.find(marker);
    if (pos == std::string::npos) return {};
    pos += marker.size();
    auto end = text.find_first_of(" ;,)", pos);
    return text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

}  // namespace smtplb::core
