#include "proto/dot_stuffer.hpp"

namespace smtplb::proto {

void DotStuffer::encode(std::string_view content, std::string& out) {
    if (content.empty()) return;
    out.reserve(out.size() + content.size() + 16);
    std::size_t start = 0;
    // Only a '.' right after a line feed (or at the very start) needs a second dot.
    if (at_line_start_ && content.front() == '.') out += '.';
    for (std::size_t lf = content.find('\n'); lf != std::string_view::npos;
         lf = content.find('\n', lf + 1)) {
        if (lf + 1 < content.size() && content[lf + 1] == '.') {
            out.append(content.substr(start, lf + 1 - start));
            out += '.';
            start = lf + 1;
        }
    }
    out.append(content.substr(start));
    at_line_start_ = content.back() == '\n';
    last_ = content.back();
}

void DotStuffer::finish(std::string& out) {
    // Content from the decoder always ends in CRLF or is empty; anything
    // else (a caller's content) is completed so the terminator stands alone.
    if (!at_line_start_ || last_ != '\n') out += "\r\n";
    out += ".\r\n";
    at_line_start_ = true;
    last_ = '\n';
}

void DotUnstuffer::decode(std::string_view stuffed, std::string& out) {
    if (stuffed.empty()) return;
    out.reserve(out.size() + stuffed.size());
    std::size_t start = at_line_start_ && stuffed.front() == '.' ? 1 : 0;
    for (std::size_t lf = stuffed.find('\n'); lf != std::string_view::npos;
         lf = stuffed.find('\n', lf + 1)) {
        if (lf + 1 < stuffed.size() && stuffed[lf + 1] == '.') {
            out.append(stuffed.substr(start, lf + 1 - start));
            start = lf + 2;
        }
    }
    if (start < stuffed.size()) out.append(stuffed.substr(start));
    at_line_start_ = stuffed.back() == '\n';
}

}  // namespace smtplb::proto
