#pragma once
#include <string>
#include <string_view>

namespace smtplb::proto {

// Encodes decoded content (CRLF lines) for the wire: a '.' at the start of a
// line is doubled; finish() appends the terminating "." line. The balancer
// always re-frames with this, never forwarding the client's raw bytes.
class DotStuffer {
  public:
    void encode(std::string_view content, std::string& out);
    // Appends "<CRLF>." if needed so that the message ends in CRLF.CRLF.
    void finish(std::string& out);

  private:
    bool at_line_start_ = true;
    char last_ = '\n';
};

}  // namespace smtplb::proto
