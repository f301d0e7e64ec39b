#include <array>
#include <optional>
#include <span>
#include <vector>

#include "io/backend/backend_connection.hpp"
#include "io/backend/eight_bit_body.hpp"
#include "proto/dot_stuffer.hpp"

namespace smtplb::io {

namespace {

constexpr std::size_t kChunk = 65536;
// Gathered per write: a few chunks, so a large message goes out in few
// system calls without holding more than the message itself.
constexpr std::size_t kGatherBytes = 4 * kChunk;
constexpr std::string_view kEndOfData = ".\r\n";
constexpr std::string_view kCrLfEndOfData = "\r\n.\r\n";

bool views_into(std::string_view chunk, const std::string& scratch) {
    return !scratch.empty() && chunk.data() >= scratch.data() &&
           chunk.data() < scratch.data() + scratch.size();
}

// The content's size for BDAT: known from the decoder, or counted from the
// stored bytes without their stuffing.
std::optional<std::uint64_t> content_size_of(const proto::BodySource& body, std::string& scratch) {
    if (auto known = body.content_size()) return known;
    proto::DotUnstuffer unstuffer;
    std::string content;
    std::uint64_t size = 0;
    for (std::uint64_t offset = 0; offset < body.size();) {
        auto chunk = body.chunk_at(offset, kChunk, scratch);
        if (chunk.empty()) return std::nullopt;
        offset += chunk.size();
        content.clear();
        unstuffer.decode(chunk, content);
        size += content.size();
    }
    return size;
}

}  // namespace

awaitable<BackendConnection::BodyResult> BackendConnection::send_chunked(
    const proto::BodySource& body) {
    auto body_budget = [this](std::size_t bytes) {
        return config::body_write_budget(pool_.config(), bytes);
    };
    std::string scratch;
    auto declared = content_size_of(body, scratch);
    if (!declared) co_return BodyResult::ReadFailed;
    auto& out = protocol_.output();
    out += "BDAT " + std::to_string(*declared) + " LAST\r\n";
    // Stored stuffed (a client's message): the stuffing dots come off here.
    const bool stuffed = body.form() == proto::BodyForm::Transmission;
    proto::DotUnstuffer unstuffer;
    std::uint64_t sent = 0;
    for (std::uint64_t offset = 0; offset < body.size();) {
        auto chunk = body.chunk_at(offset, kChunk, scratch);
        if (chunk.empty()) co_return BodyResult::ReadFailed;
        offset += chunk.size();
        auto before = out.size();
        if (stuffed)
            unstuffer.decode(chunk, out);
        else
            out.append(chunk);
        sent += out.size() - before;
        // Never more octets than announced: the backend would read the rest
        // as commands. Fewer leaves it waiting: the caller closes.
        if (sent > *declared) break;
        if (out.size() >= kChunk) {
            bool written = co_await write_queued(body_budget(out.size()));
            if (!written) co_return BodyResult::WriteFailed;
        }
    }
    if (sent != *declared) {
        out.clear();
        failure_ = "message size changed while sent";
        co_return BodyResult::ReadFailed;
    }
    bool written = co_await write_queued(body_budget(out.size()));
    co_return written ? BodyResult::Sent : BodyResult::WriteFailed;
}

awaitable<bool> BackendConnection::stream_body(const proto::BodySource& body) {
    if (body.form() != proto::BodyForm::Transmission) {
        failure_ = "a body not stored as sent cannot stream";
        co_return false;
    }
    bool flushed = co_await flush();
    if (!flushed) co_return false;
    auto result = co_await write_stored(body, streamed_, false);
    co_return result == BodyResult::Sent;
}

awaitable<BackendConnection::BodyResult> BackendConnection::send_body(
    const proto::BodySource& body, core::TransactionAction::EightBit eight_bit, bool chunking,
    bool streamed) {
    using EightBit = core::TransactionAction::EightBit;
    if (streamed) {
        // What stream_body() wrote stays written: the rest, then the ".".
        bool flushed = co_await flush();
        if (!flushed) co_return BodyResult::WriteFailed;
        co_return co_await write_stored(body, streamed_, true);
    }
    if (eight_bit != EightBit::Pass) {
        // RFC 6152 §3: never 8-bit octets to a backend without 8BITMIME.
        using Outcome = SevenBitBody::Outcome;
        auto seven_bit = seven_bit_body(body, eight_bit == EightBit::Convert);
        switch (seven_bit.outcome) {
            case Outcome::Unchanged:
                break;
            case Outcome::Converted:
                ++pool_.backend(backend_).counters.converted_8bit;
                co_return co_await send_body(*seven_bit.converted, EightBit::Pass, chunking);
            case Outcome::Refused:
                failure_ = seven_bit.reason;
                co_return BodyResult::EightBitRefused;
            case Outcome::ReadFailed:
                co_return BodyResult::ReadFailed;
        }
    }
    bool flushed = co_await flush();
    if (!flushed) co_return BodyResult::WriteFailed;
    if (chunking) co_return co_await send_chunked(body);
    // Each write's own time, in proportion to its size.
    auto body_budget = [this](std::size_t bytes) {
        return config::body_write_budget(pool_.config(), bytes);
    };
    std::string scratch;
    if (body.form() == proto::BodyForm::Content) {
        // Ours (a bounce) or read back from the spool: stuffed on the way.
        proto::DotStuffer stuffer;
        auto& out = protocol_.output();
        for (std::uint64_t offset = 0; offset < body.size();) {
            auto chunk = body.chunk_at(offset, kChunk, scratch);
            if (chunk.empty()) co_return BodyResult::ReadFailed;
            stuffer.encode(chunk, out);
            offset += chunk.size();
            if (out.size() >= kChunk) {
                bool sent = co_await write_queued(body_budget(out.size()));
                if (!sent) co_return BodyResult::WriteFailed;
            }
        }
        stuffer.finish(out);
        bool sent = co_await write_queued(body_budget(out.size()));
        co_return sent ? BodyResult::Sent : BodyResult::WriteFailed;
    }
    // Already in transmission form: the stored bytes go out as they are.
    co_return co_await write_stored(body, 0, true);
}

// Straight from the buffer's memory in gathered writes.
awaitable<BackendConnection::BodyResult> BackendConnection::write_stored(
    const proto::BodySource& body, std::uint64_t from, bool terminate) {
    auto body_budget = [this](std::size_t bytes) {
        return config::body_write_budget(pool_.config(), bytes);
    };
    std::string scratch;
    std::vector<asio::const_buffer> gather;
    gather.reserve(8);  // a write's chunks and the terminator, in one allocation
    std::size_t gathered = 0;
    // Empty so far, or ending in LF: the terminator needs no CRLF before it.
    bool ends_line = from == 0 || streamed_ends_line_;
    for (std::uint64_t offset = from;;) {
        bool from_scratch = false;
        if (offset < body.size()) {
            auto chunk = body.chunk_at(offset, kChunk, scratch);
            if (chunk.empty()) {
                failure_ = "the message could not be read back";
                co_return BodyResult::ReadFailed;
            }
            gather.emplace_back(chunk.data(), chunk.size());
            gathered += chunk.size();
            offset += chunk.size();
            ends_line = chunk.back() == '\n';
            from_scratch = views_into(chunk, scratch);
        }
        bool last = offset >= body.size();
        if (last && terminate) {
            // The decoder ends every stored message with CRLF; another
            // source might not, and the terminator must stand on its own line.
            auto end = ends_line ? kEndOfData : kCrLfEndOfData;
            gather.emplace_back(end.data(), end.size());
        }
        // A view of scratch is overwritten by the next read: send it now.
        if (!gather.empty() && (last || from_scratch || gathered >= kGatherBytes)) {
            std::size_t bytes = 0;
            for (const auto& b : gather)
                bytes += b.size();
            // A view, not a copy of the list: it lives in this frame.
            DeadlineStep step(*deadline_, body_budget(bytes));
            auto [ec, n] = co_await stream_.write(std::span<const asio::const_buffer>(gather));
            if (ec) {
                failure_ = deadline_->expired() ? "timeout writing the message to backend"
                                                : "write failed: " + ec.message();
                co_return BodyResult::WriteFailed;
            }
            gather.clear();
            gathered = 0;
            if (!terminate) {
                streamed_ = offset;
                streamed_ends_line_ = ends_line;
            }
        }
        if (last) co_return BodyResult::Sent;
    }
}

}  // namespace smtplb::io
