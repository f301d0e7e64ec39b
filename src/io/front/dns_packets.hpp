#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/client_names.hpp"

struct ldns_struct_rdf;  // ldns's ldns_rdf

namespace smtplb::io {

// A domain name as text, without the root's final dot ("" for none).
std::string dname_text(const ldns_struct_rdf* rdf);

// DNS messages for the client name lookups and pool discovery, built and read with ldns (the
// I/O is the caller's): one question, recursion desired, EDNS0 with room
// for 1232 bytes.
inline constexpr std::uint16_t kDnsTypeA = 1;
inline constexpr std::uint16_t kDnsTypePtr = 12;
inline constexpr std::uint16_t kDnsTypeMx = 15;
inline constexpr std::uint16_t kDnsTypeSrv = 33;
inline constexpr std::uint16_t kDnsTypeAaaa = 28;
inline constexpr std::size_t kDnsUdpSize = 1232;

struct DnsQuestion {
    std::string name;  // without the trailing dot
    std::uint16_t type = kDnsTypePtr;
};

// The query for `question` with message id `id`; empty when the name is not
// a domain name.
std::vector<std::uint8_t> dns_query(const DnsQuestion& question, std::uint16_t id);

// What `reply` (untrusted bytes) answers to `question` asked with `id`:
// nothing when it is not the reply to that query (another id, not a
// response, another question, malformed), which the caller ignores and
// keeps waiting for the right one. The records of the type asked for are
// those of the question's name, or at the end of its CNAME chain.
std::optional<core::DnsAnswer> dns_answer(std::span<const std::uint8_t> reply,
                                          const DnsQuestion& question, std::uint16_t id);

}  // namespace smtplb::io
