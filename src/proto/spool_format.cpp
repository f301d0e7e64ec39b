#include "proto/spool_format.hpp"

#include <charconv>

#include "proto/xtext.hpp"

namespace smtplb::proto {
namespace {

template <typename T>
bool parse_number(std::string_view text, T& out) {
    if (text.empty()) return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
}

std::string identity_payload(const ClientIdentity& id) {
    std::string out = "addr=" + id.address.to_string() + " port=" + std::to_string(id.port) +
                      " laddr=" + id.local_address.to_string() +
                      " lport=" + std::to_string(id.local_port) +
                      " esmtp=" + (id.esmtp ? "1" : "0");
    if (!id.helo.empty()) out += " helo=" + xtext_encode(id.helo);
    if (!id.login.empty()) out += " login=" + xtext_encode(id.login);
    if (!id.name.empty()) out += " name=" + xtext_encode(id.name);
    if (!id.reverse_name.empty()) out += " rname=" + xtext_encode(id.reverse_name);
    return out;
}

bool parse_identity(std::string_view text, ClientIdentity& id) {
    while (!text.empty()) {
        auto space = text.find(' ');
        auto word = text.substr(0, space);
        text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
        auto eq = word.find('=');
        if (eq == std::string_view::npos) return false;
        auto key = word.substr(0, eq);
        auto value = word.substr(eq + 1);
        if (key == "addr" || key == "laddr") {
            auto address = base::IpAddress::parse(std::string(value));
            if (!address) return false;
            (key == "addr" ? id.address : id.local_address) = *address;
        } else if (key == "port" || key == "lport") {
            if (!parse_number(value, key == "port" ? id.port : id.local_port)) return false;
        } else if (key == "esmtp") {
            id.esmtp = value == "1";
        } else if (key == "helo" || key == "login" || key == "name" || key == "rname") {
            auto decoded = xtext_decode(value);
            if (!decoded) return false;
            (key == "helo"    ? id.helo
             : key == "login" ? id.login
             : key == "name"  ? id.name
                              : id.reverse_name) = *decoded;
        }  // unknown keys: written by a newer version, ignored
    }
    return true;
}

std::string params_payload(const MailParameters& p) {
    std::string out;
    if (p.size) out += "SIZE=" + std::to_string(*p.size);
    if (p.body_8bitmime) out += std::string(out.empty() ? "" : " ") + "BODY=8BITMIME";
    if (p.smtputf8) out += std::string(out.empty() ? "" : " ") + "SMTPUTF8";
    if (p.auth) out += std::string(out.empty() ? "" : " ") + "AUTH=" + *p.auth;
    if (p.requiretls) out += std::string(out.empty() ? "" : " ") + "REQUIRETLS";
    if (p.ret != DsnReturn::Unset)
        out += std::string(out.empty() ? "" : " ") +
               (p.ret == DsnReturn::Full ? "RET=FULL" : "RET=HDRS");
    if (!p.envid.empty()) out += std::string(out.empty() ? "" : " ") + "ENVID=" + p.envid;
    return out;
}

// "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+40example.net": both as on the wire.
std::string rcpt_params_payload(const RcptParameters& p) {
    std::string out;
    if (p.notify) out += "NOTIFY=" + p.notify_keywords();
    if (!p.orcpt.empty()) out += std::string(out.empty() ? "" : " ") + "ORCPT=" + p.orcpt;
    return out;
}

// Read back through the parser the session used, so nothing new is accepted.
bool parse_rcpt_params(std::string_view text, RcptParameters& p) {
    RcptArgument arg;
    if (parse_rcpt_argument("TO:<x@example.invalid> " + std::string(text), arg)) return false;
    p = std::move(arg.params);
    return true;
}

bool parse_params(std::string_view text, MailParameters& p) {
    while (!text.empty()) {
        auto space = text.find(' ');
        auto word = text.substr(0, space);
        text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
        if (word.starts_with("SIZE=")) {
            std::uint64_t size = 0;
            if (!parse_number(word.substr(5), size)) return false;
            p.size = size;
        } else if (word == "BODY=8BITMIME") {
            p.body_8bitmime = true;
        } else if (word == "SMTPUTF8") {
            p.smtputf8 = true;
        } else if (word.starts_with("AUTH=") && valid_auth_parameter(word.substr(5))) {
            p.auth = std::string(word.substr(5));
        } else if (word == "REQUIRETLS") {
            p.requiretls = true;
        } else if (word == "RET=FULL" || word == "RET=HDRS") {
            p.ret = word == "RET=FULL" ? DsnReturn::Full : DsnReturn::Headers;
        } else if (word.starts_with("ENVID=") && word.size() > 6) {
            p.envid = word.substr(6);
        } else if (!word.empty()) {
            return false;
        }
    }
    return true;
}

// The address as written in a spool file, back to a mailbox (the same
// parser the session used on the wire, so nothing new is accepted here).
std::optional<Path> parse_address(std::string_view address, bool allow_null) {
    std::string bracketed = "<" + std::string(address) + ">";
    auto parsed = parse_path(bracketed, allow_null);
    if (!parsed.path || parsed.consumed != bracketed.size()) return std::nullopt;
    return parsed.path;
}

}  // namespace

std::string spool_record(SpoolRecord type, std::string_view payload) {
    std::string out;
    out.reserve(kSpoolRecordHeader + payload.size());
    out += static_cast<char>(type);
    auto n = static_cast<std::uint32_t>(payload.size());
    for (int shift = 24; shift >= 0; shift -= 8)
        out += static_cast<char>((n >> shift) & 0xff);
    out += payload;
    return out;
}

std::string spool_head(const SpoolEnvelope& e, const std::vector<Mailbox>& recipients) {
    std::string out(kSpoolMagic);
    out += spool_record(SpoolRecord::Arrival, std::to_string(e.arrival_ms));
    out += spool_record(SpoolRecord::Listener, e.listener);
    out += spool_record(SpoolRecord::Pool, e.pool);
    out += spool_record(SpoolRecord::Sender, e.sender.null ? "" : e.sender.mailbox.address());
    out += spool_record(SpoolRecord::Params, params_payload(e.params));
    out += spool_record(SpoolRecord::Identity, identity_payload(e.identity));
    for (std::size_t i = 0; i < recipients.size(); ++i) {
        out += spool_record(SpoolRecord::Recipient, recipients[i].address());
        if (i < e.recipient_params.size() && !e.recipient_params[i].empty())
            out += spool_record(SpoolRecord::RcptDsn, rcpt_params_payload(e.recipient_params[i]));
    }
    return out;
}

std::string spool_end(std::uint64_t body_size) {
    return spool_record(SpoolRecord::End, std::to_string(body_size));
}

std::optional<SpoolLayout> parse_spool(const SpoolReadAt& read, std::uint64_t file_size,
                                       std::string& error) {
    SpoolLayout layout;
    std::string buffer;
    if (file_size < kSpoolMagic.size() || !read(0, kSpoolMagic.size(), buffer) ||
        buffer != kSpoolMagic) {
        error = "not a spool file (bad magic line)";
        return std::nullopt;
    }
    std::uint64_t offset = kSpoolMagic.size();
    bool have_arrival = false, have_pool = false, have_sender = false, ended = false;
    while (offset < file_size) {
        if (file_size - offset < kSpoolRecordHeader || !read(offset, kSpoolRecordHeader, buffer) ||
            buffer.size() != kSpoolRecordHeader) {
            error = "truncated record header at offset " + std::to_string(offset);
            return std::nullopt;
        }
        auto type = static_cast<SpoolRecord>(buffer[0]);
        std::uint32_t length = 0;
        for (int i = 1; i <= 4; ++i)
            length = (length << 8) | static_cast<unsigned char>(buffer[i]);
        std::uint64_t payload_at = offset + kSpoolRecordHeader;
        if (length > file_size - payload_at) {
            error = "record overruns the file at offset " + std::to_string(offset);
            return std::nullopt;
        }
        if (type == SpoolRecord::Body) {
            if (length > kSpoolMaxBodyChunk) {
                error = "body chunk over its bound at offset " + std::to_string(offset);
                return std::nullopt;
            }
            layout.body.push_back({payload_at, length});
            layout.body_size += length;
            offset = payload_at + length;
            continue;
        }
        if (length > kSpoolMaxMetaRecord) {
            error = "record over its bound at offset " + std::to_string(offset);
            return std::nullopt;
        }
        buffer.clear();
        if (length > 0 && (!read(payload_at, length, buffer) || buffer.size() != length)) {
            error = "cannot read record at offset " + std::to_string(offset);
            return std::nullopt;
        }
        std::string_view payload = buffer;
        auto& env = layout.envelope;
        bool ok = true;
        switch (type) {
            case SpoolRecord::Arrival:
                ok = parse_number(payload, env.arrival_ms);
                have_arrival = ok;
                break;
            case SpoolRecord::Listener:
                env.listener = payload;
                break;
            case SpoolRecord::Pool:
                env.pool = payload;
                have_pool = !payload.empty();
                break;
            case SpoolRecord::Sender: {
                if (payload.empty()) {
                    env.sender = Path{.null = true, .mailbox = {}};
                } else {
                    auto path = parse_address(payload, false);
                    ok = path.has_value();
                    if (ok) env.sender = *path;
                }
                have_sender = ok;
                break;
            }
            case SpoolRecord::Params:
                ok = parse_params(payload, env.params);
                break;
            case SpoolRecord::Identity:
                ok = parse_identity(payload, env.identity);
                break;
            case SpoolRecord::RcptDsn:
                ok = !layout.recipients.empty() && layout.recipients.back().params.empty() &&
                     parse_rcpt_params(payload, layout.recipients.back().params);
                break;
            case SpoolRecord::Recipient:
            case SpoolRecord::Delivered:
            case SpoolRecord::Failed:
            case SpoolRecord::Warned: {
                auto path = parse_address(payload, false);
                ok = path.has_value() && layout.recipients.size() < kSpoolMaxRecipients;
                if (ok) layout.recipients.push_back({path->mailbox, offset, type});
                break;
            }
            case SpoolRecord::End: {
                std::uint64_t size = 0;
                ok = parse_number(payload, size) && size == layout.body_size;
                ended = ok;
                break;
            }
            default:
                ok = false;
        }
        if (!ok) {
            error = std::string("bad record '") + static_cast<char>(type) + "' at offset " +
                    std::to_string(offset);
            return std::nullopt;
        }
        offset = payload_at + length;
        if (ended) break;
    }
    if (!ended) {
        error = "no END record: the message was never committed";
        return std::nullopt;
    }
    if (offset != file_size) {
        error = "bytes after the END record";
        return std::nullopt;
    }
    if (!have_arrival || !have_pool || !have_sender || layout.recipients.empty()) {
        error = "envelope incomplete (arrival, pool, sender or recipients missing)";
        return std::nullopt;
    }
    return layout;
}

}  // namespace smtplb::proto
