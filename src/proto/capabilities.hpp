#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "proto/reply.hpp"

namespace smtplb::proto {

// What a backend announced in its EHLO reply.
struct Capabilities {
    bool pipelining = false;
    bool eightbitmime = false;
    bool smtputf8 = false;
    bool enhanced_codes = false;
    bool starttls = false;
    bool chunking = false;
    bool dsn = false;                         // RFC 3461: takes NOTIFY, ORCPT, RET, ENVID
    bool requiretls = false;                  // RFC 8689
    std::optional<std::uint64_t> size_limit;  // 0 = no fixed limit
    bool xclient = false;
    std::set<std::string> xclient_attributes;  // upper case
    std::set<std::string> auth_mechanisms;     // upper case

    static Capabilities from_ehlo(const Reply& reply);
};

}  // namespace smtplb::proto
