// ServerSession: BDAT (RFC 3030, CHUNKING). A chunk is framed by its octet
// count alone: once the count is read, exactly that many octets are taken
// as content or discarded, whatever the command's fate, so no octet of a
// chunk is ever run as a command. Only a BDAT whose count cannot be read
// ends the session (521, as Postfix does): nothing tells commands from
// content after it.
#include <algorithm>
#include <charconv>

#include "base/text.hpp"
#include "proto/server_session.hpp"

namespace smtplb::proto {

using Kind = ServerEvent::Kind;

namespace {

// "<count> [LAST]" (RFC 3030 §2: chunk-size = 1*DIGIT), the count in 64 bits.
bool parse_bdat(std::string_view argument, std::uint64_t& count, bool& last) {
    auto words = base::split_words(argument);
    if (words.empty() || words.size() > 2) return false;
    auto digits = words[0];
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
    if (ec != std::errc{} || ptr != digits.data() + digits.size()) return false;
    last = words.size() == 2;
    return !last || base::iequals(words[1], "LAST");
}

}  // namespace

std::optional<ServerEvent> ServerSession::bdat(std::string_view argument) {
    std::uint64_t count = 0;
    bool last = false;
    if (!parse_bdat(argument, count, last)) {
        reply(521, "5.5.4", "Syntax: BDAT count [LAST]");
        mode_ = Mode::Closed;
        return ServerEvent{Kind::Close};
    }
    chunk_left_ = count;
    chunk_last_ = last;
    if (!offer_.chunking) return refuse_chunk(502, "5.5.1", "Error: command not implemented", true);
    if (bdat_error_)
        return refuse_chunk(551, "5.0.0",
                            "Discarded " + std::to_string(count) + " bytes after earlier error",
                            false);
    if (!mail_accepted_) return refuse_chunk(503, "5.5.1", "Error: need RCPT command", true);
    if (accepted_recipients_ == 0) {
        bdat_error_ = true;
        return refuse_chunk(554, "5.5.1", "Error: no valid recipients", false);
    }
    if (count == 0 && !last) {
        // Postfix's answer; the message, if begun, is abandoned.
        bool had_message = bdat_active_;
        if (had_message) reset_transaction();
        bdat_error_ = true;
        reply(551, "5.7.1", "Null BDAT request");
        if (had_message) return ServerEvent{Kind::Reset};
        return std::nullopt;
    }
    chunk_discarded_ = false;
    if (bdat_active_) {
        mode_ = Mode::Chunk;
        return std::nullopt;
    }
    // The message's first chunk: the caller makes room for it first.
    chunk_starting_ = true;
    pending_ = Kind::Data;
    ServerEvent ev{Kind::Data};
    ev.chunking = true;
    return ev;
}

std::optional<ServerEvent> ServerSession::refuse_chunk(int code, std::string_view enhanced,
                                                       std::string_view text, bool count_error) {
    mode_ = Mode::Chunk;
    chunk_discarded_ = true;
    // Too many errors closes the session: its octets then no longer matter.
    if (count_error) return error(code, enhanced, text);
    reply(code, enhanced, text);
    return std::nullopt;
}

void ServerSession::start_chunked_message(const Reply& answer) {
    mode_ = Mode::Chunk;
    if (answer.code != 354) {
        answer.append_wire(out());
        chunk_discarded_ = true;
        bdat_error_ = true;
        return;
    }
    DataDecoder::Limits limits{settings_.max_message_size, settings_.max_data_line_length,
                               settings_.bare_line_endings, settings_.nul_bytes};
    decoder_.emplace(limits, body_sink_, DataDecoder::Framing::Chunked);
    bdat_active_ = true;
    bdat_received_ = 0;
}

std::optional<ServerEvent> ServerSession::chunk_input(std::string_view rest) {
    auto take = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, rest.size()));
    if (!chunk_discarded_) {
        decoder_->feed(rest.substr(0, take));
        bdat_received_ += take;
    }
    consumed_ += take;
    chunk_left_ -= take;
    if (chunk_left_ > 0) return std::nullopt;
    mode_ = Mode::Command;
    if (chunk_discarded_) {
        chunk_discarded_ = false;
        return std::nullopt;
    }
    bool failed = decoder_->outcome() != DataDecoder::Outcome::Ok;
    if (!chunk_last_ && !failed) {
        reply(250, "2.0.0", "Ok: " + std::to_string(bdat_received_) + " bytes");
        return std::nullopt;
    }
    // The end of the message, or of its hopes: answered like DATA's end
    // (a failed chunk's reply says why, before LAST as at it).
    decoder_->finish();
    ServerEvent ev{Kind::MessageEnd};
    ev.data_outcome = decoder_->outcome();
    ev.message_size = decoder_->size();
    decoder_.reset();
    bdat_active_ = false;
    chunk_failed_ = !chunk_last_;
    pending_ = Kind::MessageEnd;
    return ev;
}

}  // namespace smtplb::proto
