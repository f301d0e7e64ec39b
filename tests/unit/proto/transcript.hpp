#pragma once
#include <cstddef>
#include <functional>
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

// Leading "#nul_bytes=strip|keep" and "#bare_line_endings=normalise" lines
// of a golden input: removed from `text` and applied to `settings`.
void apply_golden_options(std::string& text, proto::ServerSettings& settings);

// Runs every DIR/*.in through `render` (given the file's text and a chunk
// size), checks that whole and one-byte-at-a-time input agree (unless the
// name contains ".unchunked"), and compares with DIR/*.ref; with
// SMTPLB_UPDATE_GOLDEN set it rewrites the refs instead. Returns the count.
int check_golden_dir(const std::string& dir,
                     const std::function<std::string(const std::string&, std::size_t)>& render);

}  // namespace smtplb::testing
