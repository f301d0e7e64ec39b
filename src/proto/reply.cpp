#include "proto/reply.hpp"

namespace smtplb::proto {

Reply Reply::make(int code, std::string_view enhanced, std::string_view text) {
    Reply r;
    r.code = code;
    r.enhanced = std::string(enhanced);
    r.lines.emplace_back(text);
    return r;
}

std::string Reply::summary() const {
    std::string out = std::to_string(code);
    if (!enhanced.empty()) out += " " + enhanced;
    if (!lines.empty() && !lines.front().empty()) out += " " + lines.front();
    return out;
}

void Reply::append_wire(std::string& out) const {
    char code_text[4] = {static_cast<char>('0' + code / 100 % 10),
                         static_cast<char>('0' + code / 10 % 10),
                         static_cast<char>('0' + code % 10), 0};
    std::size_t count = lines.empty() ? 1 : lines.size();
    for (std::size_t i = 0; i < count; ++i) {
        out.append(code_text, 3);
        out += (i + 1 == count) ? ' ' : '-';
        if (!enhanced.empty()) {
            out += enhanced;
            out += ' ';
        }
        if (!lines.empty()) out += lines[i];
        out += "\r\n";
    }
}

std::string Reply::wire() const {
    std::string out;
    append_wire(out);
    return out;
}

}  // namespace smtplb::proto
