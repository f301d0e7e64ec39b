#include "proto/data_decoder.hpp"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace smtplb::proto {

namespace {

// The first CR, LF or `stop` in [p, end), or end. One pass for all three
// (two memchr calls per line cost more than the line itself); 16 bytes at a
// time where SSE2 is there, which it always is on x86-64. `stop` is NUL, or
// CR again when NUL bytes are ordinary octets.
const char* find_break(const char* p, const char* end, char stop) {
#if defined(__SSE2__)
    const __m128i cr = _mm_set1_epi8('\r');
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i other = _mm_set1_epi8(stop);
    while (end - p >= 16) {
        __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(bytes, cr), _mm_cmpeq_epi8(bytes, lf));
        int hits = _mm_movemask_epi8(_mm_or_si128(hit, _mm_cmpeq_epi8(bytes, other)));
        if (hits != 0) return p + __builtin_ctz(static_cast<unsigned>(hits));
        p += 16;
    }
#endif
    while (p < end && *p != '\r' && *p != '\n' && *p != stop)
        ++p;
    return p;
}

}  // namespace

void DataDecoder::emit(std::string_view bytes) {
    line_length_ += bytes.size();
    if (line_length_ > limits_.max_line) fail(Outcome::LineTooLong);
    size_ += bytes.size();
    if (received() > limits_.max_size) fail(Outcome::TooBig);
    store(bytes);
}

void DataDecoder::store(std::string_view bytes) {
    if (bytes.empty()) return;
    // Once the message is doomed, stop storing it: memory stays bounded.
    if (outcome_ == Outcome::Ok && sink_) {
        if (stuffed_ && content_line_empty_ && bytes.front() == '.') sink_->append(".");
        sink_->append(bytes);
    }
    content_line_empty_ = false;
}

void DataDecoder::take(std::string_view lines) {
    size_ += lines.size();
    if (received() > limits_.max_size) fail(Outcome::TooBig);
    // Only the first of these lines can start with '.' (see feed).
    store(lines);
    content_line_empty_ = true;
}

void DataDecoder::end_line() {
    emit("\r\n");
    content_line_empty_ = true;
    line_length_ = 0;
    state_ = State::LineStart;
    crlf_before_ = true;
}

void DataDecoder::bare_ending() {
    if (limits_.bare == BareLineEndings::Reject) fail(Outcome::BareLineEnding);
    end_line();
    crlf_before_ = false;
}

void DataDecoder::nul_byte() {
    if (limits_.nul == NulBytes::Strip) {
        // Gone from the content, but received: it counts against the limits.
        if (++line_length_ > limits_.max_line) fail(Outcome::LineTooLong);
        ++stripped_;
        if (received() > limits_.max_size) fail(Outcome::TooBig);
        return;
    }
    fail(Outcome::NulByte);
    emit(std::string_view("\0", 1));
}

void DataDecoder::finish() {
    if (state_ == State::Cr) {
        bare_ending();
    } else if (state_ == State::Body && (line_length_ > 0 || !content_line_empty_)) {
        end_line();
    }
    state_ = State::Done;
}

std::size_t DataDecoder::feed(std::string_view in) {
    // NUL octets are only looked at in State::Body: every other state sends
    // a NUL there as content (never as a dot or a line ending).
    const char stop = limits_.nul == NulBytes::Keep ? '\r' : '\0';
    std::size_t i = 0;
    while (i < in.size() && state_ != State::Done) {
        char c = in[i];
        switch (state_) {
            case State::LineStart:
                if (c == '.' && !chunked_) {
                    state_ = State::Dot;
                    ++i;
                } else {
                    state_ = State::Body;
                }
                break;
            case State::Dot:
                if (c == '\r') {
                    state_ = State::DotCr;
                    ++i;
                } else if (c == '\n') {
                    // ".<LF>": not an end of data; a line holding one dot.
                    emit(".");
                    bare_ending();
                    ++i;
                } else {
                    state_ = State::Body;  // the leading dot was stuffing
                }
                break;
            case State::DotCr:
                if (c == '\n' && crlf_before_) {
                    state_ = State::Done;
                    ++i;
                } else if (c == '\n') {
                    emit(".");  // "<LF>.<CRLF>": a content line holding one dot
                    end_line();
                    ++i;
                } else {
                    emit(".");
                    bare_ending();  // ".<CR>x": bare CR; x starts the next line
                }
                break;
            case State::Body: {
                // Fastest path: whole CRLF lines that do not start with a dot
                // go to the sink in one append (a message body is mostly
                // these); only their lengths are checked one by one. A NUL
                // octet (unless kept) takes the slow path too, so the lines
                // taken here can start with '.' only where they begin.
                const char* first = in.data() + i;
                const char* end = in.data() + in.size();
                const char* p = first;
                while (p < end) {
                    const char* cr = find_break(p, end, stop);
                    // A bare LF or CR, a NUL, or a line not complete yet: the slow path.
                    if (cr == end || *cr != '\r' || cr + 1 == end || cr[1] != '\n') break;
                    // A line over a limit is left to the slow path, which
                    // fails the message exactly where the byte-wise one would.
                    if (line_length_ + static_cast<std::size_t>(cr - p) + 2 > limits_.max_line ||
                        received() + static_cast<std::size_t>(cr + 2 - first) > limits_.max_size)
                        break;
                    line_length_ = 0;
                    crlf_before_ = true;
                    p = cr + 2;
                    if (p < end && *p == '.') break;
                }
                if (p > first) {
                    take(std::string_view(first, p - first));
                    i += p - first;
                    state_ = State::LineStart;
                    break;
                }
                // Otherwise copy the run up to the next CR, LF or NUL in one go.
                const char* start = in.data() + i;
                const char* brk = find_break(start, end, stop);
                if (brk > start) emit(std::string_view(start, brk - start));
                i += brk - start;
                if (i < in.size()) {
                    if (in[i] == '\r') {
                        state_ = State::Cr;
                    } else if (in[i] == '\n') {
                        bare_ending();
                    } else {
                        nul_byte();  // still in the line
                    }
                    ++i;
                }
                break;
            }
            case State::Cr:
                if (c == '\n') {
                    end_line();
                    ++i;
                } else {
                    bare_ending();  // do not consume c: it starts the next line
                }
                break;
            case State::Done:
                break;
        }
    }
    return i;
}

}  // namespace smtplb::proto
