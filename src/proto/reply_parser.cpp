#include "proto/reply_parser.hpp"

#include "base/text.hpp"

namespace smtplb::proto {
namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// "x.y.z" with x in 2,4,5 and 1-3 digit parts (RFC 3463).
std::size_t enhanced_length(std::string_view text, char klass) {
    if (text.size() < 5 || text[0] != klass || text[1] != '.') return 0;
    std::size_t i = 2, digits = 0;
    while (i < text.size() && is_digit(text[i]) && digits < 3)
        ++i, ++digits;
    if (digits == 0 || i >= text.size() || text[i] != '.') return 0;
    ++i;
    digits = 0;
    while (i < text.size() && is_digit(text[i]) && digits < 3)
        ++i, ++digits;
    if (digits == 0) return 0;
    if (i < text.size() && text[i] != ' ') return 0;
    return i;
}

}  // namespace

std::optional<Reply> ReplyParser::next() {
    while (error_.empty()) {
        std::string_view rest(buffer_.data() + consumed_, buffer_.size() - consumed_);
        auto lf = rest.find('\n');
        if (lf == std::string_view::npos) {
            if (rest.size() > limits_.max_line) error_ = "reply line too long";
            // Compact so the buffer never grows past one line plus a read.
            if (consumed_ > 0) {
                buffer_.erase(0, consumed_);
                consumed_ = 0;
            }
            return std::nullopt;
        }
        if (lf + 1 > limits_.max_line) {
            error_ = "reply line too long";
            return std::nullopt;
        }
        std::string_view line = rest.substr(0, lf);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        consumed_ += lf + 1;
        if (!parse_line(line)) return std::nullopt;
        bool last = line.size() == 3 || line[3] == ' ';
        if (last) {
            Reply done = std::move(*partial_);
            partial_.reset();
            return done;
        }
    }
    return std::nullopt;
}

bool ReplyParser::parse_line(std::string_view line) {
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
        line[0] < '2' || line[0] > '5' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
        error_ = "malformed reply: " + base::printable(line, 80);
        return false;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
    if (!partial_) {
        partial_.emplace();
        partial_->code = code;
        if (auto n = enhanced_length(text, line[0])) {
            partial_->enhanced = std::string(text.substr(0, n));
        }
    } else if (partial_->code != code) {
        error_ = "reply code changed inside a multi-line reply";
        return false;
    }
    if (partial_->lines.size() >= limits_.max_lines) {
        error_ = "reply has too many lines";
        return false;
    }
    if (!partial_->enhanced.empty() &&
        text.substr(0, partial_->enhanced.size()) == partial_->enhanced) {
        text.remove_prefix(partial_->enhanced.size());
        if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    }
    partial_->lines.emplace_back(text);
    return true;
}

}  // namespace smtplb::proto
