#include "config/limits.hpp"

#include <algorithm>
#include <sstream>

#include "base/units.hpp"
#include "config/toml_text.hpp"

namespace smtplb::config {

bool Limit::keyed_by(LimitKeyPart part) const {
    return std::find(key.begin(), key.end(), part) != key.end();
}

namespace {

using toml_text::list;
using toml_text::quoted;

}  // namespace

std::string describe_limits(const std::vector<Limit>& limits) {
    std::ostringstream o;
    for (const auto& l : limits) {
        std::vector<std::string> key;
        for (auto part : l.key)
            key.push_back(to_string(part));
        o << "\n[[limit]]\n"
          << "name = " << quoted(l.name) << "\n"
          << "key = " << list(key) << "\n";
        if (l.is_rate()) {
            std::string quantity = l.counts == LimitCounts::Bytes ? base::format_size(l.quantity)
                                                                  : std::to_string(l.quantity);
            o << to_string(l.counts) << " = "
              << quoted(quantity + "/" + base::format_duration(l.period)) << "\n"
              << "burst = " << l.burst << "\n";
        } else {
            o << to_string(l.counts) << " = " << l.concurrency << "\n";
        }
        if (l.keyed_by(LimitKeyPart::ClientNetwork))
            o << "ipv4_prefix = " << l.ipv4_prefix << "\n"
              << "ipv6_prefix = " << l.ipv6_prefix << "\n";
        o << "action = " << quoted(to_string(l.action)) << "\n";
        if (l.action == LimitAction::Delay)
            o << "delay = " << quoted(base::format_duration(l.delay)) << "\n";
        if (l.reply) o << "reply = " << quoted(l.reply->summary()) << "\n";
        o << "listeners = " << list(l.listeners) << "\n"
          << "exempt_networks = " << list(l.exempt_networks_text) << "\n"
          << "exempt_auth_users = " << list(l.exempt_auth_users) << "\n"
          << "max_keys = " << l.max_keys << "\n";
        if (!l.shared) o << "shared = false\n";
    }
    return o.str();
}

const char* to_string(LimitKeyPart v) {
    switch (v) {
        case LimitKeyPart::ClientIp:
            return "client_ip";
        case LimitKeyPart::ClientNetwork:
            return "client_network";
        case LimitKeyPart::Sender:
            return "sender";
        case LimitKeyPart::SenderDomain:
            return "sender_domain";
        case LimitKeyPart::AuthUser:
            return "auth_user";
        case LimitKeyPart::RecipientDomain:
            return "recipient_domain";
        case LimitKeyPart::Listener:
            return "listener";
    }
    return "?";
}

const char* to_string(LimitCounts v) {
    switch (v) {
        case LimitCounts::Connections:
            return "connections";
        case LimitCounts::Messages:
            return "messages";
        case LimitCounts::Recipients:
            return "recipients";
        case LimitCounts::Bytes:
            return "bytes";
        case LimitCounts::ConcurrentConnections:
            return "concurrent_connections";
        case LimitCounts::ConcurrentTransactions:
            return "concurrent_transactions";
    }
    return "?";
}

const char* to_string(LimitAction v) {
    switch (v) {
        case LimitAction::Tempfail:
            return "tempfail";
        case LimitAction::Delay:
            return "delay";
    }
    return "?";
}

}  // namespace smtplb::config
