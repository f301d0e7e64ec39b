#include "proto/identity.hpp"

#include <cstring>
#include <string_view>

#include "proto/xtext.hpp"

namespace smtplb::proto {
namespace {

std::string xclient_address(const base::IpAddress& addr) {
    auto a = addr.unmapped();
    return a.v6 ? "IPV6:" + a.to_string() : a.to_string();
}

}  // namespace

XclientCommand xclient_command(const ClientIdentity& id, const std::set<std::string>& supported,
                               std::size_t max_line) {
    struct Attribute {
        const char* name;
        std::string value;  // xtext-encoded
        bool present = true;
    };
    auto name_or_unavailable = [](const std::string& name) {
        return name.empty() ? std::string("[UNAVAILABLE]") : xtext_encode(name);
    };
    std::vector<Attribute> attrs;
    auto add = [&](const char* name, std::string value) {
        if (supported.count(name)) attrs.push_back({name, std::move(value)});
    };
    add("NAME", name_or_unavailable(id.name));
    add("REVERSE_NAME", name_or_unavailable(id.reverse_name));
    add("ADDR", xclient_address(id.address));
    add("PORT", std::to_string(id.port));
    add("PROTO", id.esmtp ? "ESMTP" : "SMTP");
    add("HELO", id.helo.empty() ? "[UNAVAILABLE]" : xtext_encode(id.helo));
    add("LOGIN", id.login.empty() ? "[UNAVAILABLE]" : xtext_encode(id.login));
    add("DESTADDR", xclient_address(id.local_address));
    add("DESTPORT", std::to_string(id.local_port));

    XclientCommand out;
    if (attrs.empty()) return out;
    auto find = [&](std::string_view name) -> Attribute* {
        for (auto& a : attrs)
            if (name == a.name) return &a;
        return nullptr;
    };
    auto omit = [&](Attribute* a) {
        if (!a || !a->present) return;
        a->present = false;
        out.omitted.emplace_back(a->name);
    };
    // Postfix refuses an attribute whose value, as sent (xtext), is longer
    // than 255 octets ("501 5.5.4 Error: attribute value too long").
    constexpr std::size_t kMaxValue = 255;
    for (auto& a : attrs)
        if (a.value.size() > kMaxValue) omit(&a);
    auto length = [&] {
        std::size_t n = std::string_view("XCLIENT").size() + 2;  // and CRLF
        for (const auto& a : attrs)
            if (a.present) n += 1 + std::string_view(a.name).size() + 1 + a.value.size();
        return n;
    };
    for (const char* name : {"HELO", "LOGIN", "REVERSE_NAME", "NAME"}) {
        if (length() <= max_line) break;
        omit(find(name));
    }
    // The fixed attributes (an address, ports, a protocol name) always fit
    // in RFC 5321's 512 octets, the smallest limit a backend may have.
    out.line = "XCLIENT";
    for (const auto& a : attrs)
        if (a.present) out.line.append(" ").append(a.name).append("=").append(a.value);
    out.line += "\r\n";
    return out;
}

std::string helo_for_backend(const std::string& helo, const std::string& fallback,
                             std::size_t max_line) {
    if (helo.empty()) return fallback;
    std::string name = helo;
    for (char& c : name) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f) c = '?';
    }
    const std::size_t room = max_line > 7 ? max_line - 7 : 0;  // "EHLO " and CRLF
    if (name.size() > room) name.resize(room);
    return name;
}

std::string identity_key(const ClientIdentity& id) {
    // Each field prefixed with its length: no two identities share a key.
    std::string key;
    auto add = [&](const std::string& field) {
        key += std::to_string(field.size());
        key += ':';
        key += field;
    };
    add(id.address.unmapped().to_string());
    add(id.local_address.unmapped().to_string());
    add(std::to_string(id.local_port));
    add(id.name);
    add(id.reverse_name);
    add(id.helo);
    add(id.esmtp ? "E" : "S");
    add(id.login);
    return key;
}

std::string helo_key(const std::string& name, bool esmtp) {
    return (esmtp ? "helo E " : "helo S ") + name;
}

bool is_helo_key(const std::string& key) {
    return key.rfind("helo ", 0) == 0;
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

namespace {
constexpr unsigned char kProxyV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
}  // namespace

std::string proxy_v2_local_header() {
    std::string out(reinterpret_cast<const char*>(kProxyV2Signature), 12);
    out += static_cast<char>(0x20);  // version 2, LOCAL command
    out.append(3, '\0');             // AF_UNSPEC, no address block
    return out;
}

std::string proxy_v2_header(const ClientIdentity& id) {
    std::string out(reinterpret_cast<const char*>(kProxyV2Signature), 12);
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
