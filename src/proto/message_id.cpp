#include "proto/message_id.hpp"

#include <algorithm>
#include <cstring>

namespace smtplb::proto {

namespace {

bool is_wsp(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (is_wsp(s.back()) || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

bool is_message_id_name(std::string_view name) {
    static constexpr std::string_view wanted = "message-id";
    if (name.size() != wanted.size()) return false;
    for (std::size_t i = 0; i < name.size(); ++i)
        if (static_cast<char>(std::tolower(static_cast<unsigned char>(name[i]))) != wanted[i])
            return false;
    return true;
}

}  // namespace

bool MessageIdScanner::feed(std::string_view bytes) {
    while (!done_ && !bytes.empty()) {
        std::size_t room = kMaxHeaderBytes - seen_;
        if (room == 0) {  // a header section this long: give up on it
            finish_field();
            done_ = true;
            break;
        }
        auto piece = bytes.substr(0, room);
        const void* newline = std::memchr(piece.data(), '\n', piece.size());
        std::size_t take =
            newline ? static_cast<const char*>(newline) - piece.data() + 1 : piece.size();
        auto part = piece.substr(0, newline ? take - 1 : take);
        line_.append(part.substr(0, kMaxLine - std::min(kMaxLine, line_.size())));
        seen_ += take;
        bytes.remove_prefix(take);
        if (newline) end_line();
    }
    return !done_;
}

void MessageIdScanner::end_line() {
    std::string_view line = line_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {  // the end of the header section
        finish_field();
        done_ = true;
    } else if (is_wsp(line.front())) {  // a folded continuation: unfold
        if (collecting_)
            value_.append(line.substr(0, kMaxLine - std::min(kMaxLine, value_.size())));
    } else {
        finish_field();
        auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            done_ = true;  // not a header field: the body has begun
        } else {
            auto name = line.substr(0, colon);
            while (!name.empty() && is_wsp(name.back()))
                name.remove_suffix(1);
            if (is_message_id_name(name)) {
                collecting_ = true;
                value_.assign(line.substr(colon + 1));
            }
        }
    }
    line_.clear();
}

void MessageIdScanner::finish_field() {
    if (!collecting_) return;
    collecting_ = false;
    std::string_view value = trim(value_);
    auto open = value.find('<');
    auto close = open == std::string_view::npos ? open : value.find('>', open);
    if (close != std::string_view::npos) value = value.substr(open, close - open + 1);
    message_id_.assign(value.substr(0, kMaxValue));
    value_.clear();
    if (!message_id_.empty()) done_ = true;  // the first one counts
}

}  // namespace smtplb::proto
