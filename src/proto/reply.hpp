#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace smtplb::proto {

// One SMTP reply, possibly multi-line. `enhanced` is the RFC 3463 code of the
// first line ("2.1.5"), empty when there is none; `lines` hold the texts
// without code and enhanced code.
struct Reply {
    int code = 0;
    std::string enhanced;
    std::vector<std::string> lines;

    static Reply make(int code, std::string_view enhanced, std::string_view text);
    int klass() const { return code / 100; }
    bool positive() const { return code >= 200 && code < 400; }
    bool transient() const { return klass() == 4; }
    bool permanent() const { return klass() == 5; }
    // First line's text, for logs.
    std::string summary() const;
    // The bytes on the wire, CRLF-terminated lines.
    std::string wire() const;
    void append_wire(std::string& out) const;
};

}  // namespace smtplb::proto
