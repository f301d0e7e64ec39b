#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace smtplb::proto {

enum class BareLineEndings { Reject, Normalise };

// NUL octets in a message. A backend that drops them before it looks for
// the end of data would read a "<CRLF><NUL>.<CRLF>" line as the end: the
// rest of the message would become commands (SMTP smuggling). Reject refuses
// the message; Strip removes them after framing (the end of data and the
// stuffing dots are found in the bytes as received). Keep passes them on as
// ordinary octets, as Postfix does by default: for the built-in test sink
// only, never a listener's choice.
enum class NulBytes { Reject, Strip, Keep };

// How a stored message is written. Content is the message itself (RFC 5322
// text with CRLF line endings). Transmission is the same dot-stuffed for the
// DATA stream (a '.' doubled at the start of a line), without the final "."
// line: the balancer stores a client's message that way so that sending it on
// is a plain write of the stored bytes, not another pass over every line.
enum class BodyForm { Content, Transmission };

// Receives the decoded message, CRLF line endings, in the form it asks for.
// Implemented in memory or on disk by the caller.
class BodySink {
  public:
    virtual ~BodySink() = default;
    virtual void append(std::string_view bytes) = 0;
    virtual BodyForm form() const { return BodyForm::Content; }
};

// A stored message's content, read back in chunks (to a backend, to the spool).
class BodySource {
  public:
    virtual ~BodySource() = default;
    virtual std::uint64_t size() const = 0;
    // The message's own octets, without stuffing (a BDAT count), when known.
    virtual std::optional<std::uint64_t> content_size() const {
        if (form() == BodyForm::Content) return size();
        return std::nullopt;
    }
    // Up to `max` bytes from `offset`: a view of memory or of `scratch`.
    // Empty at the end or on a read error (check offset against size()).
    virtual std::string_view chunk_at(std::uint64_t offset, std::size_t max,
                                      std::string& scratch) const = 0;
    virtual BodyForm form() const { return BodyForm::Content; }
};

// A message we wrote ourselves (a DSN), or one in a test.
class StringBody final : public BodySource {
  public:
    explicit StringBody(std::string text) : text_(std::move(text)) {}
    std::uint64_t size() const override { return text_.size(); }
    std::string_view chunk_at(std::uint64_t offset, std::size_t max, std::string&) const override {
        if (offset >= text_.size()) return {};
        return std::string_view(text_).substr(static_cast<std::size_t>(offset), max);
    }

  private:
    std::string text_;
};

// Decodes the DATA stream of RFC 5321 §4.1.1.4. End of data is <CRLF>.<CRLF>
// and nothing else: bare CR or LF never ends a message, whatever the mode
// (the SMTP smuggling defence), and neither does a NUL octet. Works byte-wise with no line buffer,
// so memory stays constant whatever the client sends.
class DataDecoder {
  public:
    enum class Outcome { Ok, TooBig, BareLineEnding, LineTooLong, NulByte };
    // DotTerminated: the DATA stream. Chunked: BDAT chunk content (RFC 3030),
    // framed by its octet counts, so a '.' is content and nothing ends the
    // message but finish(); the same line checks and limits apply.
    enum class Framing { DotTerminated, Chunked };
    // max_size and max_line count octets as received: stripped NULs count.
    struct Limits {
        std::uint64_t max_size = 50u << 20;
        std::size_t max_line = 65536;
        BareLineEndings bare = BareLineEndings::Reject;
        NulBytes nul = NulBytes::Reject;
    };

    DataDecoder(Limits limits, BodySink* sink, Framing framing = Framing::DotTerminated)
        : limits_(limits),
          sink_(sink),
          stuffed_(sink && sink->form() == BodyForm::Transmission),
          chunked_(framing == Framing::Chunked) {}

    // Consumes bytes up to the end of data. Returns how many were used; when
    // done() becomes true the rest belongs to the command stream.
    std::size_t feed(std::string_view bytes);
    bool done() const { return state_ == State::Done; }
    // Chunked: the last chunk has been fed. A last line without its CRLF
    // gets one (as Postfix's smtpd does); a CR left at the very end is a bare CR.
    void finish();
    Outcome outcome() const { return outcome_; }
    // The message's size in octets: content, whatever form the sink takes
    // (without stripped NULs).
    std::uint64_t size() const { return size_; }

  private:
    enum class State { LineStart, Dot, DotCr, Body, Cr, Done };
    void emit(std::string_view bytes);
    // Before content bytes are stored: a content line that starts with '.'
    // is doubled for a Transmission sink (not counted: stuffing is framing).
    void store(std::string_view bytes);
    // Whole lines already checked for length: counted and stored in one go.
    void take(std::string_view lines);
    void end_line();  // emits CRLF
    void bare_ending();
    void nul_byte();
    // What max_size is held against: content and stripped NULs.
    std::uint64_t received() const { return size_ + stripped_; }
    void fail(Outcome o) {
        if (outcome_ == Outcome::Ok) outcome_ = o;
    }

    Limits limits_;
    BodySink* sink_;
    bool stuffed_;
    bool chunked_;
    State state_ = State::LineStart;
    Outcome outcome_ = Outcome::Ok;
    std::uint64_t size_ = 0;
    std::uint64_t stripped_ = 0;  // NULs removed (NulBytes::Strip)
    std::size_t line_length_ = 0;
    // Nothing of the current content line stored yet: a '.' there is
    // stuffed for a Transmission sink.
    bool content_line_empty_ = true;
    // Whether the previous line ended in CRLF: a "." line ends the data only
    // then, so "<LF>.<CRLF>" is content, never an end (smuggling defence).
    bool crlf_before_ = true;
};

}  // namespace smtplb::proto
