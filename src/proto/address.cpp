#include "proto/address.hpp"

#include "base/text.hpp"

namespace smtplb::proto {
namespace {

constexpr std::size_t kMaxPath = 256;  // RFC 5321 §4.5.3.1.3

bool is_atext(unsigned char c) {
    if (c >= 0x80) return true;  // UTF-8; flagged as non_ascii
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '/':
        case '=':
        case '?':
        case '^':
        case '_':
        case '`':
        case '{':
        case '|':
        case '}':
        case '~':
            return true;
        default:
            return false;
    }
}

bool is_let_dig(unsigned char c) {
    return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool valid_domain(std::string_view d) {
    if (d.empty() || d.size() > 255) return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i < d.size(); ++i) {
        unsigned char c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        if (!is_let_dig(c) && !(c == '-' && label > 0)) return false;
        if (++label > 63) return false;
    }
    return label > 0 && d.back() != '-';
}

bool valid_literal(std::string_view d) {
    // "[...]" with printable content and no nested brackets or backslashes.
    if (d.size() < 3 || d.front() != '[' || d.back() != ']') return false;
    for (std::size_t i = 1; i + 1 < d.size(); ++i) {
        unsigned char c = d[i];
        if (c < 33 || c > 126 || c == '[' || c == ']' || c == '\\') return false;
    }
    return true;
}

PathParse fail(std::string message) {
    PathParse p;
    p.error = std::move(message);
    return p;
}

}  // namespace

bool Mailbox::has_routing_characters() const {
    return local.find_first_of("%!@") != std::string::npos;
}

PathParse parse_path(std::string_view text, bool allow_null) {
    if (text.empty() || text.front() != '<') return fail("Address must be enclosed in <>");
    auto close = std::string_view::npos;
    // Find the closing '>' outside a quoted string.
    bool in_quote = false;
    for (std::size_t i = 1; i < text.size() && i <= kMaxPath + 2; ++i) {
        char c = text[i];
        if (in_quote && c == '\\') {
            ++i;
            continue;
        }
        if (c == '"') in_quote = !in_quote;
        if (!in_quote && c == '>') {
            close = i;
            break;
        }
    }
    if (close == std::string_view::npos) return fail("Address too long or missing '>'");
    std::string_view inner = text.substr(1, close - 1);
    PathParse out;
    out.consumed = close + 1;
    Path path;
    if (inner.empty()) {
        if (!allow_null) return fail("Null address not allowed here");
        path.null = true;
        out.path = path;
        return out;
    }
    Mailbox& mb = path.mailbox;
    // Optional source route "@a,@b:" (RFC 5321 A-d-l): kept as a fact only.
    if (inner.front() == '@') {
        auto colon = inner.find(':');
        if (colon == std::string_view::npos) return fail("Malformed source route");
        mb.had_source_route = true;
        inner.remove_prefix(colon + 1);
    }
    std::size_t at = std::string_view::npos;
    if (!inner.empty() && inner.front() == '"') {
        mb.quoted_local = true;
        std::size_t i = 1;
        for (; i < inner.size(); ++i) {
            unsigned char c = inner[i];
            if (c == '\\') {
                if (++i >= inner.size() || static_cast<unsigned char>(inner[i]) < 32)
                    return fail("Malformed quoted local part");
                continue;
            }
            if (c == '"') break;
            if (c < 32 || c == 127) return fail("Control character in address");
        }
        if (i >= inner.size()) return fail("Unterminated quoted local part");
        at = i + 1;
        if (at < inner.size() && inner[at] != '@') return fail("Malformed address");
    } else {
        at = inner.rfind('@');
        std::string_view local = inner.substr(0, at);
        if (local.empty() || local.front() == '.' || local.back() == '.' ||
            local.find("..") != std::string_view::npos)
            return fail("Malformed local part");
        for (unsigned char c : local)
            if (!is_atext(c) && c != '.') return fail("Invalid character in local part");
    }
    mb.local = std::string(inner.substr(0, at));
    if (at == std::string_view::npos || at >= inner.size()) {
        // Only "Postmaster" may go without a domain (RFC 5321 §4.1.1.3).
        if (!base::iequals(mb.local, "postmaster") || allow_null)
            return fail("Address needs a domain");
        mb.local = "postmaster";
    } else {
        std::string_view domain = inner.substr(at + 1);
        if (!domain.empty() && domain.front() == '[') {
            if (!valid_literal(domain)) return fail("Malformed address literal");
            mb.address_literal = true;
        } else if (!valid_domain(domain)) {
            return fail("Malformed domain");
        }
        mb.domain = base::to_lower(domain);
    }
    for (unsigned char c : mb.local)
        mb.non_ascii |= c >= 0x80;
    for (unsigned char c : mb.domain)
        mb.non_ascii |= c >= 0x80;
    out.path = std::move(path);
    return out;
}

}  // namespace smtplb::proto
