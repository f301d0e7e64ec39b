#include "proto/identity.hpp"

#include <cstring>

#include "proto/xtext.hpp"

namespace smtplb::proto {
namespace {

std::string xclient_address(const base::IpAddress& addr) {
    auto a = addr.unmapped();
    return a.v6 ? "IPV6:" + a.to_string() : a.to_string();
}

}  // namespace

std::vector<std::string> xclient_commands(const ClientIdentity& id,
                                          const std::set<std::string>& supported,
                                          std::size_t max_line) {
    std::vector<std::pair<std::string, std::string>> attrs;
    auto add = [&](const char* name, const std::string& value) {
        if (supported.count(name)) attrs.emplace_back(name, value);
    };
    // No reverse lookup is done here; Postfix logs "unknown" for it.
    add("NAME", "[UNAVAILABLE]");
    add("ADDR", xclient_address(id.address));
    add("PORT", std::to_string(id.port));
    add("PROTO", id.esmtp ? "ESMTP" : "SMTP");
    add("HELO", id.helo.empty() ? "[UNAVAILABLE]" : xtext_encode(id.helo));
    add("LOGIN", id.login.empty() ? "[UNAVAILABLE]" : xtext_encode(id.login));
    add("DESTADDR", xclient_address(id.local_address));
    add("DESTPORT", std::to_string(id.local_port));

    std::vector<std::string> lines;
    std::string line;
    const std::size_t budget = max_line - 2;  // CRLF
    for (auto& [name, value] : attrs) {
        std::string item = name;
        item.append("=").append(value);
        if (item.size() + 8 > budget) continue;  // cannot fit even alone: leave it out
        if (!line.empty() && line.size() + 1 + item.size() > budget) {
            lines.push_back(line + "\r\n");
            line.clear();
        }
        line += line.empty() ? "XCLIENT " + item : " " + item;
    }
    if (!line.empty()) lines.push_back(line + "\r\n");
    return lines;
}

std::string safe_helo(const std::string& helo, const std::string& fallback) {
    if (helo.empty() || helo.size() > 255) return fallback;
    for (unsigned char c : helo)
        if (c <= 32 || c >= 127) return fallback;
    return helo;
}

std::string proxy_v1_header(const ClientIdentity& id) {
    auto src = id.address.unmapped(), dst = id.local_address.unmapped();
    if (src.v6 != dst.v6) {
        src = id.address;
        dst = id.local_address;
    }
    if (src.v6 != dst.v6) return "PROXY UNKNOWN\r\n";
    return std::string("PROXY ") + (src.v6 ? "TCP6 " : "TCP4 ") + src.to_string() + " " +
           dst.to_string() + " " + std::to_string(id.port) + " " + std::to_string(id.local_port) +
           "\r\n";
}

namespace {

void append_tlv(std::string& out, std::uint8_t type, std::string_view value) {
    out += static_cast<char>(type);
    out += static_cast<char>(value.size() >> 8);
    out += static_cast<char>(value.size() & 0xff);
    out.append(value);
}

// PP2_TYPE_SSL (0x20): client flags, a verify result (non-zero: no
// certificate was verified, as smtplb verifies none), then the version
// (PP2_SUBTYPE_SSL_VERSION, 0x21) and cipher (PP2_SUBTYPE_SSL_CIPHER, 0x23).
std::string ssl_tlv(const ClientIdentity& id) {
    if (id.tls_version.empty()) return {};
    std::string value;
    std::uint8_t client = 0x01;                        // PP2_CLIENT_SSL
    if (id.client_certificate) client |= 0x02 | 0x04;  // PP2_CLIENT_CERT_CONN | _SESS
    value += static_cast<char>(client);
    value.append({'\0', '\0', '\0', '\1'});
    append_tlv(value, 0x21, id.tls_version);
    if (!id.tls_cipher.empty()) append_tlv(value, 0x23, id.tls_cipher);
    std::string tlv;
    append_tlv(tlv, 0x20, value);
    return tlv;
}

}  // namespace

std::string proxy_v2_header(const ClientIdentity& id) {
    static constexpr unsigned char kSignature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    std::string out(reinterpret_cast<const char*>(kSignature), 12);
    out += static_cast<char>(0x21);  // version 2, PROXY command
    auto tlvs = ssl_tlv(id);
    auto src = id.address.unmapped(), dst = id.local_address.unmapped();
    if (src.v6 != dst.v6) {
        src = id.address;
        dst = id.local_address;
    }
    if (src.v6 != dst.v6) {
        out += static_cast<char>(0x00);  // UNSPEC: receiver uses the real connection
        out += static_cast<char>(tlvs.size() >> 8);
        out += static_cast<char>(tlvs.size() & 0xff);
        return out + tlvs;
    }
    const std::size_t alen = src.v6 ? 16 : 4;
    out += static_cast<char>(src.v6 ? 0x21 : 0x11);  // AF_INET6/AF_INET over STREAM
    const std::size_t len = alen * 2 + 4 + tlvs.size();
    out += static_cast<char>(len >> 8);
    out += static_cast<char>(len & 0xff);
    out.append(reinterpret_cast<const char*>(src.bytes.data()), alen);
    out.append(reinterpret_cast<const char*>(dst.bytes.data()), alen);
    out += static_cast<char>(id.port >> 8);
    out += static_cast<char>(id.port & 0xff);
    out += static_cast<char>(id.local_port >> 8);
    out += static_cast<char>(id.local_port & 0xff);
    return out + tlvs;
}

}  // namespace smtplb::proto
