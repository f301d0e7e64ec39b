#include "proto/capabilities.hpp"

#include <charconv>

#include "base/text.hpp"

namespace smtplb::proto {

Capabilities Capabilities::from_ehlo(const Reply& reply) {
    Capabilities caps;
    // The first line is the server's name; keywords follow, one a line.
    for (std::size_t i = 1; i < reply.lines.size(); ++i) {
        auto words = base::split_words(reply.lines[i]);
        if (words.empty()) continue;
        auto key = base::to_lower(words[0]);
        if (key == "pipelining")
            caps.pipelining = true;
        else if (key == "8bitmime")
            caps.eightbitmime = true;
        else if (key == "smtputf8")
            caps.smtputf8 = true;
        else if (key == "enhancedstatuscodes")
            caps.enhanced_codes = true;
        else if (key == "starttls")
            caps.starttls = true;
        else if (key == "chunking")
            caps.chunking = true;
        else if (key == "dsn")
            caps.dsn = true;
        else if (key == "requiretls")
            caps.requiretls = true;
        else if (key == "size") {
            std::uint64_t n = 0;
            if (words.size() > 1) {
                std::from_chars(words[1].data(), words[1].data() + words[1].size(), n);
            }
            caps.size_limit = n;
        } else if (key == "auth") {
            for (std::size_t w = 1; w < words.size(); ++w) {
                std::string mechanism(words[w]);
                for (char& c : mechanism)
                    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                caps.auth_mechanisms.insert(mechanism);
            }
        } else if (key == "xclient") {
            caps.xclient = true;
            for (std::size_t w = 1; w < words.size(); ++w) {
                std::string attr(words[w]);
                for (char& c : attr)
                    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                caps.xclient_attributes.insert(attr);
            }
        }
    }
    return caps;
}

}  // namespace smtplb::proto
