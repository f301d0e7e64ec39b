#include "io/front/transaction_log.hpp"

#include "proto/message_id.hpp"

namespace smtplb::io {

void TransactionLog::note_recipient(const proto::Mailbox& rcpt, const proto::Reply& reply) {
    if (reply.positive()) {
        ++rcpts_accepted;
        domains.insert(rcpt.domain);
    } else {
        last_refusal = reply;
    }
    if (record.recipient_list.size() >= core::TrackingRecord::kMaxRecipientRecords) {
        ++record.recipients_omitted;
        return;
    }
    record.recipient_list.push_back({rcpt.address(), reply.summary()});
}

// After the message is in: only its header section is read again, from the
// buffer in memory (or its first chunks on disk), at most the scanner's bound.
void TransactionLog::find_message_id(const proto::BodySource& body) {
    proto::MessageIdScanner scanner;
    std::string scratch;
    for (std::uint64_t offset = 0; offset < body.size();) {
        auto chunk = body.chunk_at(offset, 16384, scratch);
        if (chunk.empty() || !scanner.feed(chunk)) break;
        offset += chunk.size();
    }
    record.message_id = scanner.message_id();
}

}  // namespace smtplb::io
