#include "config/limits.hpp"

#include <algorithm>

namespace smtplb::config {

bool Limit::keyed_by(LimitKeyPart part) const {
    return std::find(key.begin(), key.end(), part) != key.end();
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
