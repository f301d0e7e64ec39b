#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "proto/address.hpp"
#include "proto/data_decoder.hpp"
#include "proto/identity.hpp"

namespace smtplb::core {

// The Received: trace header (RFC 5321 §4.4) smtplb prepends to a message
// it takes responsibility for in its spool, in the form Postfix writes:
//
//   Received: from HELO (NAME [ADDR])
//           (using TLSv1.3 with cipher CIPHER)
//           by HOSTNAME (smtplb) with ESMTPSA id SPOOL-ID
//           for <rcpt@example.net>; Thu,  3 Dec 2026 18:00:43 +0000 (UTC)
//
// NAME is the client's verified name or "unknown"; the protocol is SMTP
// for a HELO client, ESMTP for EHLO, plus S with TLS and A after AUTH (RFC
// 3848); "for" only with one recipient; the date in UTC. What the client
// said (its HELO) is made printable ASCII and cut to 255 octets, so no
// client can break the header. Lines end in CRLF.
std::string received_header(const proto::ClientIdentity& client, const std::string& by_host,
                            const std::string& id, const std::vector<proto::Mailbox>& recipients,
                            std::int64_t epoch_ms);

// A stored message with a header in front of it (what the spool writes).
class PrefixedBody final : public proto::BodySource {
  public:
    PrefixedBody(std::string prefix, const proto::BodySource& body)
        : prefix_(std::move(prefix)), body_(body) {}
    std::uint64_t size() const override { return prefix_.size() + body_.size(); }
    std::string_view chunk_at(std::uint64_t offset, std::size_t max,
                              std::string& scratch) const override;
    // A header line never starts with '.': the same bytes in either form.
    proto::BodyForm form() const override { return body_.form(); }

  private:
    std::string prefix_;
    const proto::BodySource& body_;
};

}  // namespace smtplb::core
