#include "core/dsn.hpp"

#include <ctime>

#include "base/text.hpp"
#include "proto/dot_stuffer.hpp"

namespace smtplb::core {

std::string rfc5322_date(std::int64_t epoch_ms) {
    std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char out[64];
    std::strftime(out, sizeof out, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return out;
}

std::string status_of(int code, const std::string& enhanced) {
    if (!enhanced.empty()) return enhanced;
    return code >= 500 ? "5.0.0" : "4.0.0";
}

std::string header_section(const proto::BodySource& body, std::size_t max) {
    std::string scratch, text;
    const bool stuffed = body.form() == proto::BodyForm::Transmission;
    proto::DotUnstuffer unstuffer;
    // A source may hand out less than asked for at a time (chunked memory).
    for (std::uint64_t offset = 0; text.size() < max;) {
        auto chunk = body.chunk_at(offset, max - text.size(), scratch);
        if (chunk.empty()) break;
        offset += chunk.size();
        if (stuffed) {
            unstuffer.decode(chunk, text);
        } else {
            text.append(chunk);
        }
    }
    auto end = text.find("\r\n\r\n");
    if (end != std::string::npos) return text.substr(0, end + 2);
    auto last = text.rfind("\r\n");
    return last == std::string::npos ? std::string() : text.substr(0, last + 2);
}

std::string whole_message(const proto::BodySource& body, std::size_t max) {
    if (body.size() > max) return {};
    std::string scratch, text;
    const bool stuffed = body.form() == proto::BodyForm::Transmission;
    proto::DotUnstuffer unstuffer;
    for (std::uint64_t offset = 0; offset < body.size();) {
        auto chunk = body.chunk_at(offset, body.size() - offset, scratch);
        if (chunk.empty()) break;
        offset += chunk.size();
        if (stuffed) {
            unstuffer.decode(chunk, text);
        } else {
            text.append(chunk);
        }
    }
    return text;
}

namespace {

struct Wording {
    const char* subject;
    const char* action;
    const char* returned;  // Content-Description of the returned part
};

Wording wording(DsnKind kind) {
    switch (kind) {
        case DsnKind::Delay:
            return {"Delayed Mail (still being retried)", "delayed", "Delayed Message Headers"};
        case DsnKind::Relayed:
            return {"Successful Mail Delivery Report", "relayed", "Message Headers"};
        case DsnKind::Failure:
            break;
    }
    return {"Undelivered Mail Returned to Sender", "failed", "Undelivered Message Headers"};
}

std::string readable_part(const DsnInput& in) {
    const std::string crlf = "\r\n";
    std::string m = "This is the mail system at host " + in.reporting_mta + "." + crlf + crlf;
    switch (in.kind) {
        case DsnKind::Failure:
            m += "Your message (queue ID " + in.queue_id + ") could not be delivered to" + crlf;
            m += "one or more recipients. The reasons are below." + crlf + crlf;
            break;
        case DsnKind::Delay:
            m += "Your message (queue ID " + in.queue_id + ") could not be delivered yet to" +
                 crlf + "the recipients below. It is being retried until" + crlf +
                 rfc5322_date(in.retry_until_ms) + "; you need not send it again." + crlf + crlf;
            break;
        case DsnKind::Relayed:
            m += "Your message (queue ID " + in.queue_id + ") was relayed to the recipients'" +
                 crlf + "mail system, which offers no delivery notifications (DSN): you will" +
                 crlf + "get no further notice of success from it." + crlf + crlf;
            break;
    }
    for (const auto& r : in.failed)
        m += "<" + r.address + ">: " + base::printable(r.diagnostic) + crlf;
    return m + crlf;
}

bool has_8bit(const std::string& text) {
    for (unsigned char c : text)
        if (c >= 0x80) return true;
    return false;
}

}  // namespace

std::string build_dsn(const DsnInput& in) {
    // Unique per report and never found in the parts (they hold no such token).
    const std::string boundary = in.queue_id + "/" + in.reporting_mta + "/dsn";
    const std::string crlf = "\r\n";
    const auto words = wording(in.kind);
    std::string m;
    m += "From: Mail Delivery System <MAILER-DAEMON@" + in.reporting_mta + ">" + crlf;
    m += "To: <" + in.sender + ">" + crlf;
    m += std::string("Subject: ") + words.subject + crlf;
    m += "Date: " + rfc5322_date(in.now_ms) + crlf;
    m += "Message-ID: <" + in.queue_id + "." + words.action + "@" + in.reporting_mta + ">" + crlf;
    m += "Auto-Submitted: auto-replied" + crlf;
    m += "MIME-Version: 1.0" + crlf;
    m += "Content-Type: multipart/report; report-type=delivery-status;" + crlf;
    m += "\tboundary=\"" + boundary + "\"" + crlf;
    m += crlf;
    m += "This is a MIME-encapsulated message." + crlf + crlf;

    m += "--" + boundary + crlf;
    m += "Content-Description: Notification" + crlf;
    m += "Content-Type: text/plain; charset=us-ascii" + crlf + crlf;
    m += readable_part(in);

    m += "--" + boundary + crlf;
    m += "Content-Description: Delivery report" + crlf;
    m += "Content-Type: message/delivery-status" + crlf + crlf;
    // The client's own values (ENVID, ORCPT) are printable one-liners here.
    if (!in.envelope_id.empty())
        m += "Original-Envelope-Id: " + base::printable(in.envelope_id, 200) + crlf;
    m += "Reporting-MTA: dns; " + in.reporting_mta + crlf;
    m += "X-Smtplb-Queue-ID: " + in.queue_id + crlf;
    m += "Arrival-Date: " + rfc5322_date(in.arrival_ms) + crlf;
    for (const auto& r : in.failed) {
        m += crlf;
        m += "Final-Recipient: rfc822; " + r.address + crlf;
        if (!r.original_recipient.empty())
            m += "Original-Recipient: " + base::printable(r.original_recipient, 600) + crlf;
        m += std::string("Action: ") + words.action + crlf;
        m += "Status: " + r.status + crlf;
        m += "Diagnostic-Code: smtp; " + base::printable(r.diagnostic) + crlf;
        if (in.kind == DsnKind::Delay)
            m += "Will-Retry-Until: " + rfc5322_date(in.retry_until_ms) + crlf;
    }
    m += crlf;

    m += "--" + boundary + crlf;
    if (in.kind == DsnKind::Failure && !in.original_message.empty()) {
        m += "Content-Description: Undelivered Message" + crlf;
        m += "Content-Type: message/rfc822" + crlf;
        if (has_8bit(in.original_message)) m += "Content-Transfer-Encoding: 8bit" + crlf;
        m += crlf + in.original_message;
        if (!in.original_message.ends_with(crlf)) m += crlf;
    } else {
        m += std::string("Content-Description: ") + words.returned + crlf;
        m += "Content-Type: text/rfc822-headers" + crlf + crlf;
        m += in.original_headers;
    }
    m += crlf + "--" + boundary + "--" + crlf;
    return m;
}

}  // namespace smtplb::core
