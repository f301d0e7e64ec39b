#include "proto/dot_stuffer.hpp"

namespace smtplb::proto {

void DotStuffer::encode(std::string_view content, std::string& out) {
    std::size_t start = 0;
    for (std::size_t i = 0; i < content.size(); ++i) {
        char c = content[i];
        if (at_line_start_ && c == '.') {
            out.append(content.substr(start, i - start));
            out += '.';
            start = i;
        }
        at_line_start_ = (c == '\n');
    }
    out.append(content.substr(start));
    if (!content.empty()) last_ = content.back();
}

void DotStuffer::finish(std::string& out) {
    // Content from the decoder always ends in CRLF or is empty; anything
    // else (a caller's content) is completed so the terminator stands alone.
    if (!at_line_start_ || last_ != '\n') out += "\r\n";
    out += ".\r\n";
    at_line_start_ = true;
    last_ = '\n';
}

}  // namespace smtplb::proto
