#pragma once
#include <string>

#include "proto/server_session.hpp"

namespace smtplb::testing {

// Drives a ServerSession with a scripted decider and renders what happened:
// replies as "S: ..." lines, events as "# ..." lines. Recipients whose local
// part starts with "bad" are refused, "busy" deferred; everything else accepted.
std::string run_transcript(const proto::ServerSettings& settings, const std::string& input,
                           std::size_t chunk_size);

// Golden-file input: each line ends in CRLF unless it ends in a backslash;
// \r \n \0 \\ and \xHH are escapes.
std::string decode_golden_input(const std::string& text);

proto::ServerSettings golden_settings();

}  // namespace smtplb::testing
