#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace smtplb::proto {

// A mailbox from a MAIL or RCPT path, parsed per RFC 5321 §4.1.2. The facts a
// relay policy needs about hostile forms are kept, not normalised away.
struct Mailbox {
    std::string local;   // as written; quoted forms keep their quotes
    std::string domain;  // empty only for the bare "postmaster" recipient
    bool quoted_local = false;
    bool address_literal = false;   // domain is "[...]"
    bool had_source_route = false;  // "<@relay:user@domain>"
    bool non_ascii = false;         // UTF-8 outside ASCII (needs SMTPUTF8)

    std::string address() const { return domain.empty() ? local : local + "@" + domain; }
    // Characters that route mail onwards at a receiving host: % ! @ in the local part.
    bool has_routing_characters() const;
};

struct Path {
    bool null = false;  // "<>"
    Mailbox mailbox;
};

struct PathParse {
    std::optional<Path> path;
    std::size_t consumed = 0;  // bytes of input used, up to and including '>'
    std::string error;         // set when path is empty
};

// Parses "<...>" at the start of `text`. `allow_null` for MAIL FROM.
PathParse parse_path(std::string_view text, bool allow_null);

}  // namespace smtplb::proto
