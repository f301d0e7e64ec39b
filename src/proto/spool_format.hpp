#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/address.hpp"
#include "proto/command.hpp"
#include "proto/identity.hpp"

namespace smtplb::proto {

// One spooled message is one file (docs/spool-format.md): a magic line, then
// typed records <type: 1 byte><length: 4 bytes, big-endian><payload>. The
// last record is END, written only after the whole body; a file without it
// was never acknowledged and is never delivered.
enum class SpoolRecord : char {
    Arrival = 'A',    // wall-clock milliseconds since the epoch, decimal
    Listener = 'L',   // the listener the message came in on
    Pool = 'P',       // the pool that delivers it
    Sender = 'S',     // envelope sender; empty payload = null sender "<>"
    Params = 'M',     // MAIL parameters: "SIZE=n BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x"
    Identity = 'I',   // the client's identity, passed on again at delivery
    Recipient = 'R',  // still to deliver
    Delivered = 'D',  // a Recipient rewritten in place once a backend took it
    Failed = 'X',     // a Recipient rewritten in place once it was bounced
    Warned = 'W',     // a Recipient rewritten in place once told of a delay: still to deliver
    RcptDsn = 'N',    // DSN parameters of the recipient record before it: "NOTIFY=.. ORCPT=.."
    Body = 'B',       // a chunk of the message content (CRLF lines, unstuffed)
    End = 'E',        // the body size in bytes, decimal: the commit mark
};

inline constexpr std::string_view kSpoolMagic = "SMTPLB-SPOOL 1\n";
inline constexpr std::size_t kSpoolRecordHeader = 5;
// Bounds the reader enforces, so a damaged file cannot make it allocate.
inline constexpr std::uint32_t kSpoolMaxMetaRecord = 4096;
inline constexpr std::uint32_t kSpoolMaxBodyChunk = 1u << 20;
inline constexpr std::size_t kSpoolMaxRecipients = 100000;

struct SpoolEnvelope {
    std::int64_t arrival_ms = 0;
    std::string listener;
    std::string pool;
    Path sender;
    MailParameters params;
    ClientIdentity identity;
    // Written: each recipient's DSN parameters, parallel to the recipients
    // (may be empty: none). Read back into SpoolRecipient::params instead.
    std::vector<RcptParameters> recipient_params;
};

std::string spool_record(SpoolRecord type, std::string_view payload);
// The magic line and every record before the body.
std::string spool_head(const SpoolEnvelope& envelope, const std::vector<Mailbox>& recipients);
std::string spool_end(std::uint64_t body_size);

struct SpoolRecipient {
    Mailbox mailbox;
    std::uint64_t offset = 0;  // of the record's type byte, to rewrite it in place
    SpoolRecord state = SpoolRecord::Recipient;
    RcptParameters params;
    // Still to deliver (Recipient, or Warned: a delay notice went out).
    bool pending() const { return state == SpoolRecord::Recipient || state == SpoolRecord::Warned; }
};

struct SpoolChunk {
    std::uint64_t offset = 0;  // of the payload
    std::uint32_t length = 0;
};

struct SpoolLayout {
    SpoolEnvelope envelope;
    std::vector<SpoolRecipient> recipients;
    std::vector<SpoolChunk> body;
    std::uint64_t body_size = 0;
};

// Reads `n` bytes at `offset` into `out`; false on a read error.
using SpoolReadAt = std::function<bool(std::uint64_t offset, std::size_t n, std::string& out)>;

// Reads a spool file of `file_size` bytes. Body payloads are not read, only
// located. A missing END, a bad record or a bound exceeded gives nullopt and
// the reason in `error`.
std::optional<SpoolLayout> parse_spool(const SpoolReadAt& read, std::uint64_t file_size,
                                       std::string& error);

}  // namespace smtplb::proto
