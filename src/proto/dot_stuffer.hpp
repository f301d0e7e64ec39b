#pragma once
#include <string>
#include <string_view>

namespace smtplb::proto {

// Encodes decoded content (CRLF lines) for the wire: a '.' at the start of a
// line is doubled; finish() appends the terminating "." line. Messages the
// balancer writes or reads back from the spool go out through this; a
// client's message is stored already stuffed by the DataDecoder, which
// re-frames it line by line, so no raw client bytes are ever forwarded.
class DotStuffer {
  public:
    void encode(std::string_view content, std::string& out);
    // Appends "<CRLF>." if needed so that the message ends in CRLF.CRLF.
    void finish(std::string& out);

  private:
    bool at_line_start_ = true;
    char last_ = '\n';
};

// The reverse, for a message stored in transmission form that must become
// content again (the spool, a bounce's copy of the headers): the first '.'
// of a line that starts with one is dropped.
class DotUnstuffer {
  public:
    void decode(std::string_view stuffed, std::string& out);

  private:
    bool at_line_start_ = true;
};

}  // namespace smtplb::proto
