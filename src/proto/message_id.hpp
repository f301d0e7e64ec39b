#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace smtplb::proto {

// Finds a message's Message-ID (RFC 5322 §3.6.4) in its header section, fed
// in pieces of any size as the message streams by: field names compared
// without case, folded values unfolded, the header section ended by the
// first empty line (or a line that is no header field). Works on content and
// on transmission (dot-stuffed) form alike: no header line starts with a dot.
// Bounded: reads at most kMaxHeaderBytes, keeps at most kMaxLine bytes of a
// line and kMaxValue of the identifier; the first Message-ID counts.
class MessageIdScanner {
  public:
    static constexpr std::size_t kMaxHeaderBytes = 256 * 1024;
    static constexpr std::size_t kMaxLine = 1000;  // RFC 5322 §2.1.1: 998 + CRLF
    static constexpr std::size_t kMaxValue = 998;

    // Feeds the next bytes; false once nothing more is needed.
    bool feed(std::string_view bytes);
    bool done() const { return done_; }
    // "<id@host>" (the part in angle brackets when there is one, else the
    // value without surrounding white space); empty when there is none.
    const std::string& message_id() const { return message_id_; }

  private:
    void end_line();
    void finish_field();

    std::string line_;
    std::string value_;  // the Message-ID field's value, unfolded
    std::string message_id_;
    std::size_t seen_ = 0;
    bool collecting_ = false;  // the current field is Message-ID
    bool done_ = false;
};

}  // namespace smtplb::proto
