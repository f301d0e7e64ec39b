#include "core/received.hpp"

#include <ctime>

namespace smtplb::core {
namespace {

constexpr std::size_t kMaxClientText = 255;

// Client-supplied text in a header: no control characters or spaces,
// printable ASCII unless `utf8` (an address of an SMTPUTF8 message), bounded.
std::string printable(const std::string& text, bool utf8 = false) {
    std::string out;
    for (char c : text.substr(0, kMaxClientText)) {
        auto u = static_cast<unsigned char>(c);
        out += (u > 0x20 && u < 0x7f) || (utf8 && u >= 0x80) ? c : '?';
    }
    return out;
}

std::string client_name(const std::string& name) {
    if (name.empty() || name.front() == '[') return "unknown";  // [UNAVAILABLE], [TEMPUNAVAIL]
    return printable(name);
}

// "Thu,  3 Dec 2026 18:00:43 +0000 (UTC)", as Postfix dates its headers.
std::string rfc5322_date(std::int64_t epoch_ms) {
    auto seconds = static_cast<std::time_t>(epoch_ms / 1000);
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    char out[64];
    std::strftime(out, sizeof out, "%a, %e %b %Y %H:%M:%S +0000 (UTC)", &utc);
    return out;
}

}  // namespace

std::string received_header(const proto::ClientIdentity& client, const std::string& by_host,
                            const std::string& id, const std::vector<proto::Mailbox>& recipients,
                            std::int64_t epoch_ms) {
    auto address = client.address.unmapped();
    std::string name = client_name(client.name);
    std::string helo = client.helo.empty() ? name : printable(client.helo);
    std::string out = "Received: from " + helo + " (" + name + " [" + (address.v6 ? "IPv6:" : "") +
                      address.to_string() + "])\r\n";
    if (!client.tls_version.empty())
        out += "\t(using " + printable(client.tls_version) + " with cipher " +
               printable(client.tls_cipher) + ")\r\n";
    std::string protocol = client.esmtp ? "ESMTP" : "SMTP";
    if (!client.tls_version.empty()) protocol += 'S';
    if (!client.login.empty()) protocol += 'A';
    out += "\tby " + by_host + " (smtplb) with " + protocol + " id " + id;
    if (recipients.size() == 1)
        out += "\r\n\tfor <" + printable(recipients.front().address(), true) + ">";
    out += "; " + rfc5322_date(epoch_ms) + "\r\n";
    return out;
}

std::string_view PrefixedBody::chunk_at(std::uint64_t offset, std::size_t max,
                                        std::string& scratch) const {
    if (offset < prefix_.size())
        return std::string_view(prefix_).substr(static_cast<std::size_t>(offset), max);
    return body_.chunk_at(offset - prefix_.size(), max, scratch);
}

}  // namespace smtplb::core
