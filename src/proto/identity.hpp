#pragma once
#include <cstddef>
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
    std::string helo;  // as the client sent it; empty before HELO/EHLO
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

// One Postfix-style XCLIENT command (XCLIENT_README) for the attributes the
// backend announced, values xtext-encoded. Always one command: Postfix judges
// a second XCLIENT against the client the first one named and refuses it, so
// an identity split over two lines would take only half. The line stays
// within max_line octets with CRLF (Postfix reads up to line_length_limit,
// 2048 by default); what does not fit is left out, in this order: HELO (the
// EHLO that follows XCLIENT carries the client's name anyway), LOGIN,
// REVERSE_NAME, NAME. So is any value longer than 255 octets as sent
// (xtext-encoded): Postfix refuses the whole command for it.
struct XclientCommand {
    std::string line;                  // "XCLIENT ...\r\n"; empty: no attribute announced
    std::vector<std::string> omitted;  // attributes the backend takes that were left out
};
XclientCommand xclient_command(const ClientIdentity& id, const std::set<std::string>& supported,
                               std::size_t max_line = 2048);

// The name smtplb gives in the EHLO (or HELO) it sends after XCLIENT, which
// Postfix records and judges as the client's HELO: the client's own argument,
// byte for byte, so the backend judges exactly what the client sent (a
// Postfix talked to directly joins "foo  bar" into "foo bar" just the same).
// The only changes: a control character, which cannot be relayed safely,
// becomes '?' (a name HELO checks reject as they reject the original), and a
// name too long for the backend's line is cut to max_line. No HELO yet: the
// balancer's own name (`fallback`).
std::string helo_for_backend(const std::string& helo, const std::string& fallback,
                             std::size_t max_line = 2048);

// What a backend connection that presented this identity may be reused for:
// messages from the same client address, names, HELO, protocol, login and
// listener address. The client's port is left out: the same client's next
// connection has another port, and the backend keeps the one it was given.
std::string identity_key(const ClientIdentity& id);

// What a backend connection greeted with a client's own HELO name (sent
// as `name`, with EHLO or HELO as the client used) may be reused for,
// where no XCLIENT re-presents the client: clients that said the same.
// Never equal to an identity_key(), which starts with a digit.
std::string helo_key(const std::string& name, bool esmtp);
bool is_helo_key(const std::string& key);

// PROXY protocol headers (haproxy's proxy-protocol.txt), v1 text and v2 binary.
std::string proxy_v1_header(const ClientIdentity& id);
std::string proxy_v2_header(const ClientIdentity& id);
// The header a proxy sends on its own connections (health checks): v2
// LOCAL; the receiver uses the connection's addresses (Postfix takes it; it
// refuses v1's "PROXY UNKNOWN").
std::string proxy_v2_local_header();

}  // namespace smtplb::proto
