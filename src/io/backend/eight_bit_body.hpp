#pragma once
#include <memory>
#include <string>

#include "proto/data_decoder.hpp"

namespace smtplb::io {

// A message on its way to a backend without 8BITMIME (RFC 6152 §3).
struct SevenBitBody {
    enum class Outcome {
        Unchanged,   // no 8-bit octet: it goes as it is, byte for byte
        Converted,   // `converted` holds the 7-bit MIME message (content form)
        Refused,     // 8-bit, and not converted (`reason`: off, or why it failed)
        ReadFailed,  // the stored message could not be read back
    };
    Outcome outcome = Outcome::Unchanged;
    std::unique_ptr<proto::StringBody> converted;
    std::string reason;
};

// Looks for 8-bit octets in `body` and, with `convert`, converts it
// (mime::downgrade_to_7bit). Only messages to such a backend pay for this.
SevenBitBody seven_bit_body(const proto::BodySource& body, bool convert);

}  // namespace smtplb::io
