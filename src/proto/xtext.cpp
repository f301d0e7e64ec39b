#include "proto/xtext.hpp"

namespace smtplb::proto {
namespace {
constexpr char kHex[] = "0123456789ABCDEF";

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;  // RFC 3461 hexchar is upper case only
}

int any_case_hex_value(char c) {
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return hex_value(c);
}
}  // namespace

std::string xtext_encode(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (unsigned char c : raw) {
        if (c >= 33 && c <= 126 && c != '+' && c != '=') {
            out += static_cast<char>(c);
        } else {
            out += '+';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

std::optional<std::string> xtext_decode(std::string_view in) {
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i) {
        unsigned char c = in[i];
        if (c == '+') {
            if (i + 2 >= in.size()) return std::nullopt;
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (c < 33 || c > 126 || c == '=') {
            return std::nullopt;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string xtext_decode_lenient(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '+' && i + 2 < in.size()) {
            int hi = any_case_hex_value(in[i + 1]), lo = any_case_hex_value(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += in[i];
    }
    return out;
}

}  // namespace smtplb::proto
