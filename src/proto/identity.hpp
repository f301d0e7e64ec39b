#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "base/network.hpp"

namespace smtplb::proto {

// Who the real client is, as passed on to backends.
struct ClientIdentity {
    base::IpAddress address;
    std::uint16_t port = 0;
    base::IpAddress local_address;  // the listener address the client reached
    std::uint16_t local_port = 0;
    std::string helo;   // as the client sent it; empty before HELO/EHLO
    // The client's host name as Postfix's smtpd finds it (XCLIENT_README):
    // `name` is verified (the reverse lookup's name resolves back to the
    // address), `reverse_name` is the reverse lookup's alone. Either may be
    // "[UNAVAILABLE]" (no name, or a permanent failure) or "[TEMPUNAVAIL]"
    // (a temporary failure). Empty: not looked up (sent as [UNAVAILABLE]).
    std::string name;
    std::string reverse_name;
    bool esmtp = true;  // EHLO (ESMTP) or HELO (SMTP)
    std::string login;  // SASL login, empty when not authenticated
    // The client's TLS with smtplb, when it used TLS: passed on in PROXY v2's
    // SSL TLV (XCLIENT has no attribute for it).
    std::string tls_version;  // "TLSv1.3"
    std::string tls_cipher;
    bool client_certificate = false;  // it presented one (never verified)
};

// Postfix-style XCLIENT commands (XCLIENT_README) for the attributes the
// backend announced. Values are xtext-encoded; lines stay within max_line
// (RFC 5321's 512 by default), so long values go in several commands, each of
// which the backend answers with 220.
std::vector<std::string> xclient_commands(const ClientIdentity& id,
                                          const std::set<std::string>& supported,
                                          std::size_t max_line = 512);

// The client's HELO name if it is one printable word, else `fallback`: it
// goes into an EHLO we send, so it must not carry anything but a name.
std::string safe_helo(const std::string& helo, const std::string& fallback);

// PROXY protocol headers (haproxy's proxy-protocol.txt), v1 text and v2 binary.
std::string proxy_v1_header(const ClientIdentity& id);
std::string proxy_v2_header(const ClientIdentity& id);

}  // namespace smtplb::proto
