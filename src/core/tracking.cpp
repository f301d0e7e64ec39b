#include "core/tracking.hpp"

namespace smtplb::core {

namespace {

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629), or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    std::size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k)
        if ((byte(i + k) & 0xc0) != 0x80) return 0;
    unsigned char second = byte(i + 1);
    if (c == 0xe0 && second < 0xa0) return 0;  // overlong
    if (c == 0xed && second > 0x9f) return 0;  // surrogates
    if (c == 0xf0 && second < 0x90) return 0;  // overlong
    if (c == 0xf4 && second > 0x8f) return 0;  // past U+10FFFF
    return n;
}

// JSON string escaping (RFC 8259): quotes, backslash and control characters;
// a byte that is not part of valid UTF-8 (an 8-bit HELO, say) is written as
// the code point of the same number (\u00e9 for 0xE9), so every line stays
// valid UTF-8 JSON. Written out rather than built as a JSON document: this
// runs once per message, and a document costs an allocation per field.
void append_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            if (std::size_t n = utf8_sequence(s, i)) {
                out.append(s.substr(i, n));
                i += n - 1;
            } else {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

void field(std::string& out, const char* name, std::string_view value) {
    out += ",\"";
    out += name;
    out += "\":";
    append_string(out, value);
}

void field(std::string& out, const char* name, std::int64_t value) {
    out += ",\"";
    out += name;
    out += "\":";
    out += std::to_string(value);
}

}  // namespace

std::string TrackingRecord::to_json() const {
    std::string out;
    out.reserve(512);
    out += "{\"time_ms\":" + std::to_string(time_ms);
    field(out, "listener", listener);
    field(out, "client", client_address);
    field(out, "client_port", client_port);
    if (!client_name.empty()) field(out, "client_name", client_name);
    field(out, "helo", helo);
    if (!tls.empty()) field(out, "tls", tls);
    if (!client_cert.empty()) field(out, "client_cert", client_cert);
    if (!client_cert_sha256.empty()) field(out, "client_cert_sha256", client_cert_sha256);
    if (!login.empty()) field(out, "login", login);
    field(out, "sender", sender);
    field(out, "recipients", static_cast<std::int64_t>(recipients));
    out += ",\"recipient_domains\":[";
    for (std::size_t i = 0; i < recipient_domains.size(); ++i) {
        if (i) out += ',';
        append_string(out, recipient_domains[i]);
    }
    out += ']';
    out += ",\"recipient_list\":[";
    for (std::size_t i = 0; i < recipient_list.size(); ++i) {
        out += i ? ",{\"address\":" : "{\"address\":";
        append_string(out, recipient_list[i].address);
        field(out, "reply", recipient_list[i].reply);
        out += '}';
    }
    out += ']';
    if (recipients_omitted) field(out, "recipients_omitted", std::int64_t(recipients_omitted));
    if (!message_id.empty()) field(out, "message_id", message_id);
    field(out, "size", static_cast<std::int64_t>(size));
    field(out, "pool", pool);
    out += ",\"attempts\":[";
    for (std::size_t i = 0; i < attempts.size(); ++i) {
        out += i ? ",{\"backend\":" : "{\"backend\":";
        append_string(out, attempts[i].backend);
        field(out, "stage", attempts[i].stage);
        field(out, "reply", attempts[i].reply);
        if (!attempts[i].tls.empty()) field(out, "tls", attempts[i].tls);
        out += '}';
    }
    out += ']';
    field(out, "queue_id", queue_id);
    if (!spool_id.empty()) field(out, "spool_id", spool_id);
    field(out, "result", result);
    field(out, "reply", reply);
    field(out, "identity", identity);
    field(out, "duration_ms", duration_ms);
    out += '}';
    return out;
}

std::string QueueActionRecord::to_json() const {
    std::string out = "{\"time_ms\":" + std::to_string(time_ms);
    field(out, "result", result);
    field(out, "spool_id", spool_id);
    field(out, "by", by);
    field(out, "pool", pool);
    field(out, "client", client);
    field(out, "size", static_cast<std::int64_t>(size));
    out += '}';
    return out;
}

std::string LimitRecord::to_json() const {
    std::string out = "{\"time_ms\":" + std::to_string(time_ms);
    field(out, "result", std::string_view("limited"));
    field(out, "action", action);
    field(out, "event", event);
    field(out, "limit", limit);
    field(out, "key", key);
    field(out, "listener", listener);
    field(out, "client", client);
    field(out, "client_port", static_cast<std::int64_t>(client_port));
    if (!login.empty()) field(out, "login", login);
    if (has_sender) field(out, "sender", sender);
    if (!recipient.empty()) field(out, "recipient", recipient);
    field(out, "hold_ms", hold_ms);
    if (!reply.empty()) field(out, "reply", reply);
    out += '}';
    return out;
}

std::string queue_id_from(const std::string& text) {
    // Postfix and others: "queued as ID"; take the token after it.
    static const std::string marker = "queued as ";
    auto pos = text.find(marker);
    if (pos == std::string::npos) return {};
    pos += marker.size();
    auto end = text.find_first_of(" ;,)", pos);
    return text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

std::string queue_id_from(const std::vector<std::string>& lines) {
    for (const auto& line : lines)
        if (auto id = queue_id_from(line); !id.empty()) return id;
    return lines.empty() ? std::string() : lines.back();
}

}  // namespace smtplb::core
